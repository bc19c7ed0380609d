#!/usr/bin/env bash
# perf.sh: the issue-7 performance points, one fresh server per run, the
# server side pinned to core 0 and `livechat bench` to core 1. Prints one JSON
# result per run (bench -o json) with the server's figures added.
#
#   scripts/perf.sh BIN POINT [RUNS]      POINT: mem1000 | upload1000 | picture1000 | redis1000 | rooms500 | redisrooms500 | idle5000 | haproxy5000 | prod | floor | brokerfloor
#
# Ports: servers 18080/18081, own redis-server 16399, HAProxy 18090.
# haproxy5000: ROOMS=N spreads the clients over N rooms (default 1).
# rooms500, redisrooms500: MSGRATE=N sends N messages a second in all
# (default 23100).
# upload1000: mem1000 for DURATION (default 40s, so that uploads paced at
# 16 MiB/s finish) while UPLOADERS token users (default 20) upload files of
# UPLOAD_SIZE (default 10MiB) to the server over and over during the publishing
# phase (bench --uploaders; TOKENS is forced on). The JSON line adds the
# server's VmRSS (sampled every 0.5 s): "rss_kib_before" (the last sample
# before the uploads can start, 5 s after bench started), "rss_kib_peak" and
# "rss_kib_end". If the server needs flags for files, pass them in SERVER_FLAGS.
# picture1000: mem1000 for 30 s (token users) while one client uploads a 12 MP
# JPEG (scripts/photo) over and over with curl, from 6 s in; PICTURES=0 runs
# the same without the uploads. The JSON line adds "pictures" (uploads
# answered 201).
# prod: the production-shaped point. 4 servers behind HAProxy sharing a broker
# (BROKER=redis|nats|cluster; memory: one server, in-process, the reference)
# and a history (HISTORY=redis|postgres; memory with BROKER=memory), all on
# core 0, on free ports; bench sends MSGRATE (default 500) msg/s over 500 rooms
# of 10 clients plus one room of 1,000 (--big-room), one publisher per room at
# MSGRATE/501 msg/s each. redis/redis is one Redis for both; cluster is six
# redis-servers (--cluster-replicas 1) behind redis+cluster://, and
# cluster/redis keeps the history on that cluster too (a room's traffic and
# history on its shard). SERVERS=N (1-4) runs N servers instead of 4. The JSON line adds "prod": the CPU of each process group
# (servers, broker, history, haproxy) over PROD_WINDOW seconds (default 8) of
# publishing, the deliveries and messages the servers counted in it, and RSS.
# floor: the kernel's cost of one write to one of 6,155 loopback sockets
# (scripts/writefloor; BIN is not used), SIZE bytes (default 500) to each
# socket RATE times a second (default 12).
# brokerfloor: the floor under a shared Redis (scripts/brokerfloor; BIN is not
# used): SERVERS processes (default 4) on core 0 with their own Redis, each
# subscribed to 500 rooms and sending its share of MSGRATE (default 500) msg/s,
# each in one EVALSHA that stores and publishes (MODE=publish: a bare PUBLISH;
# MODE=livechat: through pkg/history and pkg/broker; MODE=none: the pacing only);
# prints the processes' and Redis's CPU per message over PROD_WINDOW seconds.
# SERVER_GOGC=N runs the servers with GOGC=N (the load generator keeps its own).
# SERVER_FLAGS="..." adds flags to every `livechat serve` (e.g. --batch-writes=false).
# BENCH_BIN=PATH runs the load generator from another binary than the servers
# (to compare two servers under the same load generator).
# TOKENS=1 makes every bench client a token user (`bench --tokens`) with a
# fresh secret that the servers get too (LIVECHAT_SECRET_FILE).
# PERF_RECORD=FILE (prod): `perf record -C 0 -g` of every process on core 0 over
# the window, into FILE (`perf report -i FILE --sort comm,dso`).
# PPROF=DIR also takes a 10 s CPU profile and an allocation profile of the
# (first) server during the publishing phase (6 s, from 6 s after start).
set -euo pipefail
BIN=${1:?binary}; POINT=${2:?point}; RUNS=${3:-3}
TMP=$(mktemp -d); trap 'cleanup' EXIT
pids=()
cleanup() {
  # PostgreSQL: fast shutdown (SIGTERM would wait for its clients).
  if [ -n "${pgpid:-}" ]; then kill -INT "$pgpid" 2>/dev/null || true; wait "$pgpid" 2>/dev/null || true; pgpid=; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
waitport() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 not up" >&2; return 1; }
# A server that keeps a data directory (accounts, the token secret) gets a
# fresh one; the in-process points keep their history in memory, as they
# always have (a plain `serve` would write it to SQLite).
DATA=(); "$BIN" serve --help 2>/dev/null | grep -q -- '--data' && DATA=(--data "$TMP/data")
serve() { # port broker [extra...]
  local port=$1 br=$2; shift 2
  local hist=(); [ "$br" = memory:// ] && hist=(--history memory://)
  # shellcheck disable=SC2086 # SERVER_FLAGS is split on purpose
  taskset -c 0 env ${SERVER_GOGC:+GOGC=$SERVER_GOGC} "$BIN" serve --broker "$br" "${hist[@]}" "${DATA[@]}" --addr 127.0.0.1:"$port" --app-id "s$port" --log-level error ${SERVER_FLAGS:-} "$@" &
  pids+=($!); waitport "$port"
}
# cpu PID...: user+system CPU seconds and runnable-but-waiting seconds
# (/proc schedstat) of the processes, summed over their threads.
cpu() { for p in "$@"; do cat /proc/"$p"/task/*/schedstat; done | awk '{r+=$1; w+=$2} END {printf "%.3f %.3f", r/1e9, w/1e9}'; }
# metric NAME: the first server's (port 18080) value of livechat_NAME, 0
# when it cannot be read.
# Series with labels are summed.
metric() { curl -s --max-time 2 http://127.0.0.1:18080/metrics | awk -v m="livechat_$1" '{n = $1; sub(/\{.*/, "", n)} n == m {v += $2; f=1} END {print (f ? v : 0)}'; }
# measured PIDS -- BENCH ARGS: runs bench and prints its JSON with the
# servers' CPU during the run (from 5 s in: connected and joined, warming
# up), and the first server's flusher writes a second and write interval
# over the publishing phase (from 6 s to 14 s); "window" holds the servers'
# CPU, the first server's messages in and flusher writes over that window.
measured() {
  local ps=(); while [ "$1" != -- ]; do ps+=("$1"); shift; done; shift
  bench "$@" > "$TMP/r.json" & local bp=$!
  sleep 5; read -r r0 w0 <<<"$(cpu "${ps[@]}")"
  sleep 1; local fw0 iv0 m0 c0; fw0=$(metric flusher_writes_total); iv0=$(metric write_interval_seconds)
  m0=$(metric messages_in_total); read -r c0 _ <<<"$(cpu "${ps[@]}")"
  sleep 8; local fw1 iv1 m1 c1; fw1=$(metric flusher_writes_total); iv1=$(metric write_interval_seconds)
  m1=$(metric messages_in_total); read -r c1 _ <<<"$(cpu "${ps[@]}")"
  wait $bp; read -r r1 w1 <<<"$(cpu "${ps[@]}")"
  python3 - "$TMP/r.json" "$r0" "$r1" "$w0" "$w1" "$fw0" "$fw1" "$iv0" "$iv1" "$m0" "$m1" "$c0" "$c1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); r0, r1, w0, w1, fw0, fw1, iv0, iv1, m0, m1, c0, c1 = map(float, sys.argv[2:])
d["window"] = {"seconds": 8, "cpu_s": round(c1 - c0, 3), "messages": round(m1 - m0), "writes": round(fw1 - fw0)}
d["server_cpu_s"] = round(r1 - r0, 3); d["server_wait_s"] = round(w1 - w0, 3)
d["server_us_per_delivery"] = round(1e6 * (r1 - r0) / max(d["delivered"], 1), 3)
d["server_writes_per_s"] = round((fw1 - fw0) / 8)
d["server_write_interval_ms"] = [round(1e3 * iv0, 1), round(1e3 * iv1, 1)]
print(json.dumps(d))
PY
}
rss_kib() { awk '/VmRSS/{print $2}' /proc/"$1"/status; }
# rss_sample PID: "EPOCH_SECONDS KIB" of PID's VmRSS every 0.5 s, until PID is gone.
rss_sample() { local k; while k=$(rss_kib "$1" 2>/dev/null) && [ -n "$k" ]; do echo "$(date +%s.%N) $k"; sleep 0.5; done; }
TOK=()
if [ "$POINT" = upload1000 ] || [ "$POINT" = picture1000 ]; then TOKENS=1; fi
if [ "$POINT" = picture1000 ]; then
  (cd "$(dirname "$0")/.." && go run ./scripts/photo "$TMP/photo.jpg")
fi
if [ -n "${TOKENS:-}" ]; then
  head -c 48 /dev/urandom | base64 > "$TMP/secret"
  export LIVECHAT_SECRET_FILE="$TMP/secret"; TOK=(--tokens)
fi
# Exit 1 (a delivery lost or duplicated) still gives the JSON, which counts them.
bench() { taskset -c 1 "${BENCH_BIN:-$BIN}" bench -o json "${TOK[@]}" "$@" || [ $? -eq 1 ]; }
profile() { # pid-port
  [ -n "${PPROF:-}" ] || return 0
  mkdir -p "$PPROF"
  ( sleep "${PPROF_DELAY:-6}"; curl -s -o "$PPROF/cpu.pprof" "http://127.0.0.1:6060/debug/pprof/profile?seconds=6";
    curl -s -o "$PPROF/allocs.pprof" "http://127.0.0.1:6060/debug/pprof/allocs" ) &
  profpid=$!
}
PP=(); [ -n "${PPROF:-}" ] && PP=(--pprof 127.0.0.1:6060)
# freeports N: N free loopback ports, all bound at once so that they differ.
freeports() {
  python3 -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
# clusterports N: N free ports P below 55536 whose cluster bus port P+10000 is free too.
clusterports() {
  python3 -c 'import random,socket,sys
out=[]
for p in random.sample(range(20000, 30000), 2000):
    try:
        ss=[socket.socket() for _ in (0, 1)]; ss[0].bind(("127.0.0.1", p)); ss[1].bind(("127.0.0.1", p + 10000))
    except OSError:
        continue
    finally:
        for s in ss: s.close()
    out.append(p)
    if len(out) == int(sys.argv[1]): break
print(" ".join(map(str, out)))' "$1"
}
# upidport PORT PID: waits for PORT while PID lives; 1 when PID exited.
upidport() { for _ in $(seq 150); do kill -0 "$2" 2>/dev/null || return 1; (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# metric_at PORT NAME: that server's livechat_NAME, 0 when it cannot be read.
metric_at() { curl -s --max-time 5 http://127.0.0.1:"$1"/metrics | awk -v m="livechat_$2" '{k = $1; sub(/\{.*/, "", k)} k == m {v += $2} END {print v + 0}'; }
# group_pids PID...: the processes and their children (PostgreSQL's backends).
cpu_of() { if [ $# -gt 0 ]; then cpu "$@"; else echo "0 0"; fi; }
group_pids() { for p in "$@"; do echo "$p"; pgrep -P "$p" || true; done; }
rss_sum() { for p in "$@"; do awk '/VmRSS/{print $2}' /proc/"$p"/status 2>/dev/null; done | awk '{s+=$1} END {print s+0}'; }
redis_start() { # port [args...]
  local port=$1; shift
  taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning --dir "$TMP" "$@" >/dev/null &
  pids+=($!); waitport "$port"
}
pgpid=
pg_start() { # port: initdb and start a PostgreSQL as the postgres user (fsync on, as in production)
  local port=$1 bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  chmod 711 "$TMP"; mkdir -p "$TMP/pg"; chown postgres: "$TMP/pg" 2>/dev/null || true
  [ -d "$TMP/pg/data" ] || setpriv --reuid postgres --regid postgres --init-groups -- "$bin/initdb" -D "$TMP/pg/data" -A trust -U postgres --no-sync >/dev/null
  taskset -c 0 setpriv --reuid postgres --regid postgres --init-groups -- "$bin/postgres" -D "$TMP/pg/data" -p "$port" -k "$TMP/pg" \
    -c listen_addresses=127.0.0.1 -c logging_collector=off -c max_connections=200 >"$TMP/pg/log" 2>&1 &
  pgpid=$!
  for _ in $(seq 200); do pg_isready -q -h 127.0.0.1 -p "$port" && return 0; sleep 0.1; done
  echo "postgres on $port not up: $(tail -5 "$TMP/pg/log")" >&2; return 1
}
prod_point() {
  local br=${BROKER:-redis} hi=${HISTORY:-redis}; [ "$br" = memory ] && hi=memory
  local ports; read -r -a ports <<<"$(freeports 16)"
  local sp=("${ports[@]:0:4}") hp=${ports[4]} hs=${ports[5]} hstat=${ports[6]} bp=${ports[7]} hip=${ports[8]} pprofp=${ports[9]}
  local burl hurl bpids=() hpids=() spids=()
  case $br in
  memory) burl=memory://; hurl=memory:// ;;
  redis) redis_start "$bp"; bpids=("${pids[-1]}"); burl=redis://127.0.0.1:$bp ;;
  nats) taskset -c 0 nats-server -a 127.0.0.1 -p "$bp" >/dev/null 2>&1 & pids+=($!); bpids=($!); waitport "$bp"; burl=nats://127.0.0.1:$bp ;;
  cluster)
    local cps; read -r -a cps <<<"$(clusterports 6)"
    local nodes=() u=""
    for p in "${cps[@]}"; do
      redis_start "$p" --cluster-enabled yes --cluster-config-file "$TMP/nodes-$p.conf" --cluster-node-timeout 5000
      bpids+=("${pids[-1]}"); nodes+=("127.0.0.1:$p"); u+="${u:+,}127.0.0.1:$p"
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
    for p in "${cps[@]}"; do for _ in $(seq 100); do redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' && break; sleep 0.1; done; done
    burl=redis+cluster://$u ;;
  *) echo "prod: BROKER must be memory, redis, nats or cluster, not $br" >&2; exit 2 ;;
  esac
  case $hi in
  memory) ;;
  redis) if [ "$br" = redis ] || [ "$br" = cluster ]; then hurl=$burl; else redis_start "$hip"; hpids=("${pids[-1]}"); hurl=redis://127.0.0.1:$hip; fi ;;
  postgres) pg_start "$hip"; hpids=("$pgpid"); hurl="postgres://postgres@127.0.0.1:$hip/postgres?sslmode=disable" ;;
  *) echo "prod: HISTORY must be redis or postgres, not $hi" >&2; exit 2 ;;
  esac
  local n=${SERVERS:-4}; [ "$br" = memory ] && n=1
  local i pp
  for i in $(seq 0 $((n - 1))); do
    pp=(); [ "$i" = 0 ] && [ -n "${PPROF:-}" ] && pp=(--pprof 127.0.0.1:"$pprofp")
    # shellcheck disable=SC2086 # SERVER_FLAGS is split on purpose
    taskset -c 0 env ${SERVER_GOGC:+GOGC=$SERVER_GOGC} "$BIN" serve --broker "$burl" --history "$hurl" --data "$TMP/data" \
      --addr 127.0.0.1:"${sp[$i]}" --app-id "s${sp[$i]}" --trust-proxy --log-level error ${SERVER_FLAGS:-} "${pp[@]}" 2>"$TMP/serve$i.log" &
    pids+=($!); spids+=($!)
    if ! upidport "${sp[$i]}" $!; then
      echo "{\"config\": \"$br/$hi\", \"skipped\": \"livechat serve --broker $br: $(head -c 300 "$TMP/serve$i.log" | tr '\n"' '  ')\"}"
      return 0
    fi
  done
  for i in $(seq "$n" 3); do sp[i]=${sp[$((i % n))]}; done # HAProxy's s1..s4
  LIVECHAT_FRONTEND=127.0.0.1:$hp LIVECHAT_FRONTEND_TRUSTED=127.0.0.1:$hs LIVECHAT_HAPROXY_STATS=127.0.0.1:$hstat \
  LIVECHAT_HAPROXY_SOCKET="$TMP/h.sock" LIVECHAT_S1=127.0.0.1:${sp[0]} LIVECHAT_S2=127.0.0.1:${sp[1]} \
  LIVECHAT_S3=127.0.0.1:${sp[2]} LIVECHAT_S4=127.0.0.1:${sp[3]} \
    taskset -c 0 haproxy -db -f "$(dirname "$0")/../haproxy/haproxy.cfg" >/dev/null 2>&1 & pids+=($!); local hapid=$!
  waitport "$hp"; sleep 2 # health checks pass
  bench --url ws://127.0.0.1:"$hp"/ws --clients 6000 --rooms 500 --big-room 1000 --rate "${MSGRATE:-500}" \
    --duration "${PROD_DURATION:-16s}" --warmup 3s --join-timeout 90s > "$TMP/r.json" & local bpid=$!
  # The window starts 2 s after the first message: every connection has
  # joined. Its CPU is divided by bench's delivery rate over its whole
  # publishing phase (the metrics of a loaded server answer too slowly to
  # bound a window).
  local win=${PROD_WINDOW:-8} t0 t1
  for _ in $(seq 600); do
    [ "$(metric_at "${sp[0]}" messages_in_total)" != 0 ] && break
    kill -0 "$bpid" 2>/dev/null || break; sleep 0.25
  done
  sleep 2
  snap() { echo "$(cpu_of "${spids[@]}") $(cpu_of "${bpids[@]}") $(cpu_of $(group_pids "${hpids[@]}")) $(cpu_of "$hapid")"; }
  if [ -n "${PPROF:-}" ]; then # the first server's CPU profile over the window
    mkdir -p "$PPROF"; curl -s -o "$PPROF/cpu.pprof" "http://127.0.0.1:$pprofp/debug/pprof/profile?seconds=$win" & profpid=$!
  fi
  # The Redis that holds the broker or the history: its commands' calls and µs over the window.
  local rport=""; [ "$br" = redis ] && rport=$bp; [ "$hi" = redis ] && [ "$br" != redis ] && [ "$br" != cluster ] && rport=$hip
  cmdstats() { if [ -n "$rport" ]; then redis-cli -p "$rport" info commandstats | tr -d '\r' | grep '^cmdstat_' | tr '\n' ' '; fi; }
  local rs0 rs1; rs0=$(cmdstats)
  t0=$(date +%s.%N); read -r -a c0 <<<"$(snap)"
  if [ -n "${PERF_RECORD:-}" ]; then perf record -q -o "$PERF_RECORD" -C 0 -F 4999 -g -- sleep "$win" >/dev/null 2>&1 & fi
  sleep "$win"
  read -r -a c1 <<<"$(snap)"; t1=$(date +%s.%N)
  rs1=$(cmdstats)
  local rs rb rh; rs=$(rss_sum "${spids[@]}"); rb=$(rss_sum "${bpids[@]}"); rh=$(rss_sum $(group_pids "${hpids[@]}"))
  wait "$bpid" || true
  RS0=$rs0 RS1=$rs1 python3 - "$TMP/r.json" "$br/$hi" "$n" "$t0" "$t1" "$rs" "$rb" "$rh" "${c0[@]}" "${c1[@]}" <<'PY'
import json, os, re, sys
a = sys.argv
d = json.load(open(a[1])); cfg, n = a[2], int(a[3])
def stats(v):
    return {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"cmdstat_(\w+):calls=(\d+),usec=(\d+)", v)}
s0, s1 = stats(os.environ.get("RS0", "")), stats(os.environ.get("RS1", ""))
redis_cmds = {}
for k, (c, u) in s1.items():
    c0_, u0_ = s0.get(k, (0, 0))
    if c - c0_ > 0:
        redis_cmds[k] = {"calls": c - c0_, "usec_per_call": round((u - u0_) / (c - c0_), 2)}
t0, t1, rs, rb, rh = map(float, a[4:9])
c0, c1 = list(map(float, a[9:17])), list(map(float, a[17:25]))
win = t1 - t0
groups = ["servers", "broker", "history", "haproxy"]
cpu = {g: round(c1[2*i] - c0[2*i], 3) for i, g in enumerate(groups)}
wait = {g: round(c1[2*i+1] - c0[2*i+1], 3) for i, g in enumerate(groups)}
dps = max(d["deliveries_per_s"], 1); mps = max(d["acked"] / max(d["publish_s"], 1e-9), 1)
d["prod"] = {"config": cfg, "servers": n, "window_s": round(win, 2), "deliveries_per_s": round(dps), "messages_per_s": round(mps),
  "cpu_s": cpu, "wait_s": wait, "core_share": round(sum(cpu.values()) / win, 3),
  "us_per_delivery": {g: round(1e6 * v / win / dps, 3) for g, v in cpu.items()},
  "us_per_delivery_total": round(1e6 * sum(cpu.values()) / win / dps, 3),
  "us_per_message": {g: round(1e6 * v / win / mps, 2) for g, v in cpu.items()},
  "rss_mib": {"servers": round(rs / 1024, 1), "broker": round(rb / 1024, 1), "history": round(rh / 1024, 1)},
  "redis_cmds": redis_cmds}
print(json.dumps(d))
PY
}
for run in $(seq "$RUNS"); do
  case $POINT in
  mem1000)
    serve 18080 memory:// "${PP[@]}"; profile
    measured "${pids[@]}" -- --url ws://127.0.0.1:18080/ws --clients 1000 --rate 300 --duration 10s --warmup 5s ;;
  upload1000)
    serve 18080 memory:// "${PP[@]}"; spid=${pids[-1]}; profile
    rss_sample "$spid" > "$TMP/rss" & rsp=$!
    t0=$(date +%s.%N)
    measured "${pids[@]}" -- --url ws://127.0.0.1:18080/ws --clients 1000 --rate 300 --duration "${DURATION:-40s}" --warmup 5s \
      --uploaders "${UPLOADERS:-20}" --upload-size "${UPLOAD_SIZE:-10MiB}" > "$TMP/m.json"
    kill "$rsp" 2>/dev/null || true; wait "$rsp" 2>/dev/null || true
    python3 - "$TMP/m.json" "$TMP/rss" "$t0" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); t0 = float(sys.argv[3])
s = [tuple(map(float, l.split())) for l in open(sys.argv[2]) if len(l.split()) == 2]
# Bench starts uploading with publishing: after connecting, joining and the 5 s warm-up.
before = [k for t, k in s if t < t0 + 5]
d["rss_kib_before"] = int(before[-1]) if before else None
d["rss_kib_peak"] = int(max(k for _, k in s)) if s else None
d["rss_kib_end"] = int(s[-1][1]) if s else None
print(json.dumps(d))
PY
    ;;
  picture1000)
    serve 18080 memory:// "${PP[@]}"; profile
    : > "$TMP/codes"
    if [ "${PICTURES:-1}" != 0 ]; then
      tok=$("$BIN" token --user pictures --secret-file "$LIVECHAT_SECRET_FILE" --ttl 1h)
      ( sleep 6; end=$((SECONDS + 30)); while [ $SECONDS -lt $end ]; do
          taskset -c 1 curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $tok" --data-binary @"$TMP/photo.jpg" \
            "http://127.0.0.1:18080/api/files?room=photos&name=photo.jpg" >> "$TMP/codes" || true
        done ) & upl=$!
    fi
    measured "${pids[@]}" -- --url ws://127.0.0.1:18080/ws --clients 1000 --rate 300 --duration 30s --warmup 5s > "$TMP/m.json"
    [ -n "${upl:-}" ] && { kill "$upl" 2>/dev/null || true; wait "$upl" 2>/dev/null || true; }
    python3 - "$TMP/m.json" "$TMP/codes" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); d["pictures"] = open(sys.argv[2]).read().split().count("201")
print(json.dumps(d))
PY
    ;;
  redis1000)
    taskset -c 0 redis-server --port 16399 --save "" --appendonly no --daemonize no --loglevel warning >/dev/null &
    pids+=($!); waitport 16399
    serve 18080 redis://127.0.0.1:16399 "${PP[@]}"; serve 18081 redis://127.0.0.1:16399; profile
    measured "${pids[@]}" -- --url ws://127.0.0.1:18080/ws --url ws://127.0.0.1:18081/ws --clients 1000 --rate 300 --duration 10s --warmup 5s ;;
  redisrooms500)
    taskset -c 0 redis-server --port 16399 --save "" --appendonly no --daemonize no --loglevel warning >/dev/null &
    pids+=($!); waitport 16399
    serve 18080 redis://127.0.0.1:16399 "${PP[@]}"; serve 18081 redis://127.0.0.1:16399; profile
    measured "${pids[@]}" -- --url ws://127.0.0.1:18080/ws --url ws://127.0.0.1:18081/ws --clients 5000 --rooms 500 --rate "${MSGRATE:-23100}" --duration 10s --warmup 5s --join-timeout 60s ;;
  rooms500)
    serve 18080 memory:// "${PP[@]}"; profile
    measured "${pids[@]}" -- --url ws://127.0.0.1:18080/ws --clients 5000 --rooms 500 --rate "${MSGRATE:-23100}" --duration 10s --warmup 5s --join-timeout 60s ;;
  idle5000)
    serve 18080 memory://; spid=${pids[-1]}
    sleep 1; base=$(rss_kib "$spid")
    bench --url ws://127.0.0.1:18080/ws --clients 5000 --rooms 500 --rate 1 --duration 20s --warmup 15s --join-timeout 60s > "$TMP/idle.json" &
    bp=$!
    sleep 25; full=$(rss_kib "$spid"); wait $bp
    python3 - "$TMP/idle.json" "$base" "$full" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); base, full = int(sys.argv[2]), int(sys.argv[3])
n = d["connect"]["established"]
print(json.dumps({"point": "idle", "connections": n, "members": d["members"], "base_rss_kib": base,
                  "rss_kib": full, "kib_per_conn": round((full - base) / n, 2)}))
PY
    ;;
  haproxy5000)
    serve 18080 memory:// --trust-proxy "${PP[@]}"; profile
    LIVECHAT_FRONTEND=127.0.0.1:18090 LIVECHAT_FRONTEND_TRUSTED=127.0.0.1:18091 LIVECHAT_HAPROXY_STATS=127.0.0.1:18404 \
    LIVECHAT_HAPROXY_SOCKET="$TMP/h.sock" LIVECHAT_S1=127.0.0.1:18080 LIVECHAT_S2=127.0.0.1:18080 \
    LIVECHAT_S3=127.0.0.1:18080 LIVECHAT_S4=127.0.0.1:18080 \
      taskset -c 0 haproxy -db -f haproxy/haproxy.cfg >/dev/null 2>&1 & pids+=($!); waitport 18090; sleep 2
    bench --url ws://127.0.0.1:18090/ws --clients 5000 --rooms "${ROOMS:-1}" --rate 1 --duration 2s --warmup 0s --join-timeout 60s ;;
  prod) prod_point ;;
  floor)
    [ -x "$TMP/writefloor" ] || go build -o "$TMP/writefloor" ./scripts/writefloor
    taskset -c 0 "$TMP/writefloor" write -conns 6155 -size "${SIZE:-500}" -rate "${RATE:-12}" & wp=$!
    taskset -c 1 "$TMP/writefloor" read -conns 6155 & pids+=($!)
    wait $wp ;;
  brokerfloor)
    [ -x "$TMP/brokerfloor" ] || go build -o "$TMP/brokerfloor" ./scripts/brokerfloor
    read -r -a fp <<<"$(freeports 1)"; redis_start "${fp[0]}"; rpid=${pids[-1]}
    n=${SERVERS:-4}; win=${PROD_WINDOW:-8}; fpids=()
    st=$(( $(date +%s%3N) + 2000 ))
    for i in $(seq "$n"); do
      taskset -c 0 "$TMP/brokerfloor" -redis 127.0.0.1:"${fp[0]}" -servers "$n" -rate "${MSGRATE:-500}" \
        -mode "${MODE:-append}" -start "$st" -duration "${win}s" > "$TMP/floor$i.json" & fpids+=($!)
    done
    sleep "$(python3 -c "import time; print(max(0, $st/1000 - time.time()))")"
    r0=$(cpu "$rpid"); wait "${fpids[@]}"; r1=$(cpu "$rpid")
    cat "$TMP"/floor*.json | python3 -c 'import json, sys
ls = [json.loads(l) for l in sys.stdin if l.startswith("{")]
redis = float(sys.argv[2].split()[0]) - float(sys.argv[1].split()[0])
sent = sum(l["sent"] for l in ls); got = sum(l["received"] for l in ls); cpu = sum(l["cpu_s"] for l in ls)
print(json.dumps({"point": "brokerfloor", "mode": ls[0]["mode"], "servers": len(ls), "sent": sent, "received": got,
  "cpu_s": {"servers": round(cpu, 3), "redis": round(redis, 3)},
  "us_per_message": {"servers": round(1e6 * cpu / max(sent, 1), 1), "redis": round(1e6 * redis / max(sent, 1), 1)}}))' "$r0" "$r1" ;;
  *) echo "unknown point $POINT" >&2; exit 2 ;;
  esac
  [ -n "${profpid:-}" ] && wait "$profpid"; profpid=
  cleanup
  sleep 1
done

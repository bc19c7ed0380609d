#!/usr/bin/env bash
# perf.sh: the issue-7 performance points, one fresh server per run, the
# server side pinned to core 0 and `livechat bench` to core 1. Prints one JSON
# result per run (bench -o json) with the server's figures added.
#
#   scripts/perf.sh BIN POINT [RUNS]      POINT: mem1000 | upload1000 | picture1000 | redis1000 | rooms500 | redisrooms500 | idle5000 | haproxy5000 | floor
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
# floor: the kernel's cost of one write to one of 6,155 loopback sockets
# (scripts/writefloor; BIN is not used), SIZE bytes (default 500) to each
# socket RATE times a second (default 12).
# SERVER_GOGC=N runs the servers with GOGC=N (the load generator keeps its own).
# SERVER_FLAGS="..." adds flags to every `livechat serve` (e.g. --batch-writes=false).
# BENCH_BIN=PATH runs the load generator from another binary than the servers
# (to compare two servers under the same load generator).
# TOKENS=1 makes every bench client a token user (`bench --tokens`) with a
# fresh secret that the servers get too (LIVECHAT_SECRET_FILE).
# PPROF=DIR also takes a 10 s CPU profile and an allocation profile of the
# (first) server during the publishing phase (6 s, from 6 s after start).
set -euo pipefail
BIN=${1:?binary}; POINT=${2:?point}; RUNS=${3:-3}
TMP=$(mktemp -d); trap 'cleanup' EXIT
pids=()
cleanup() {
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
  floor)
    [ -x "$TMP/writefloor" ] || go build -o "$TMP/writefloor" ./scripts/writefloor
    taskset -c 0 "$TMP/writefloor" write -conns 6155 -size "${SIZE:-500}" -rate "${RATE:-12}" & wp=$!
    taskset -c 1 "$TMP/writefloor" read -conns 6155 & pids+=($!)
    wait $wp ;;
  *) echo "unknown point $POINT" >&2; exit 2 ;;
  esac
  [ -n "${profpid:-}" ] && wait "$profpid"; profpid=
  cleanup
  sleep 1
done

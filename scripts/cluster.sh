#!/usr/bin/env bash
# The reference topology on this machine, without Docker:
#   four `livechat serve` (APPID 1000..4000) on 127.0.0.1:8081-8084,
#   HAProxy on :8080 (stats on 127.0.0.1:8404) with haproxy/haproxy.cfg,
#   nginx on :1007 serving web/ and proxying /ws, with compose/nginx.conf,
#   all against the Redis on 127.0.0.1:6379 (started here if none answers).
#
# Usage: scripts/cluster.sh start|stop|status|restart     (make cluster / make cluster-stop)
#
# Settings (environment):
#   LIVECHAT_CLUSTER_DIR  run directory for pids, logs, rendered configs   default .cluster
#   LIVECHAT_BROKER       broker URL                                       default redis://127.0.0.1:6379
#   LIVECHAT_PREFIX       subject prefix                                   default livechat
#   LIVECHAT_WEB_PORT     nginx port (1007 is privileged: root only)       default 1007 as root, else 8007
#   LIVECHAT_LB_PORT      HAProxy port (its listener for nginx: port+10)   default 8080
#   LIVECHAT_STATS_PORT   HAProxy stats page port                          default 8404
#   LIVECHAT_SERVER_PORTS the servers' ports, space-separated              default "8081 8082 8083 8084"
#   LIVECHAT_BIN          run this livechat binary instead of bin/livechat, which is built
#                         (or brought up to date) with `make build` when this is unset
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=${LIVECHAT_CLUSTER_DIR:-$ROOT/.cluster}
BROKER=${LIVECHAT_BROKER:-redis://127.0.0.1:6379}
PREFIX=${LIVECHAT_PREFIX:-livechat}
LB_PORT=${LIVECHAT_LB_PORT:-8080}
STATS_PORT=${LIVECHAT_STATS_PORT:-8404}
read -r -a PORTS <<<"${LIVECHAT_SERVER_PORTS:-8081 8082 8083 8084}"
if [ "$(id -u)" -eq 0 ]; then WEB_PORT=${LIVECHAT_WEB_PORT:-1007}; else WEB_PORT=${LIVECHAT_WEB_PORT:-8007}; fi
BIN=${LIVECHAT_BIN:-$ROOT/bin/livechat}

log() { echo "cluster: $*"; }
STARTING=0
die() {
  echo "cluster: $*" >&2
  if [ "$STARTING" = 1 ]; then STARTING=0; stop; fi
  exit 1
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_until SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.1
  done
}

http_ok() { curl -fsS -o /dev/null --max-time 1 "$1"; }

# redis_hostport prints "host port" of a redis:// broker URL, or nothing.
redis_hostport() {
  case "$BROKER" in
    redis://*) local hp=${BROKER#redis://}; hp=${hp##*@}; hp=${hp%%/*}
      echo "${hp%%:*} $( [[ $hp == *:* ]] && echo "${hp##*:}" || echo 6379)" ;;
  esac
}

# start_bg NAME CMD...: runs CMD detached (own session), logs to RUN/NAME.log, pid to RUN/NAME.pid.
start_bg() {
  local name=$1; shift
  setsid "$@" >"$RUN/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$name.pid"
}

start() {
  for t in haproxy nginx curl; do command -v $t >/dev/null || die "$t is not installed (apt-get install haproxy nginx curl, or scripts/deps.sh)"; done
  if alive "$RUN/haproxy.pid" || alive "$RUN/server1.pid"; then
    die "already running (scripts/cluster.sh status; stop with make cluster-stop)"
  fi
  mkdir -p "$RUN"
  STARTING=1
  trap 'if [ "$STARTING" = 1 ]; then STARTING=0; echo "cluster: start failed; stopping what was started" >&2; stop; fi' EXIT

  read -r rhost rport < <(redis_hostport) || true
  if [ -n "${rhost:-}" ] && ! redis-cli -h "$rhost" -p "$rport" ping 2>/dev/null | grep -q PONG; then
    command -v redis-server >/dev/null || die "no Redis answers at $BROKER and redis-server is not installed"
    log "no Redis at $rhost:$rport; starting one (stopped with the cluster)"
    start_bg redis redis-server --bind "$rhost" --port "$rport" --save "" --appendonly no --dir "$RUN"
    wait_until 10 redis-cli -h "$rhost" -p "$rport" ping || die "redis-server did not start; see $RUN/redis.log"
  fi

  if [ -n "${LIVECHAT_BIN:-}" ]; then
    [ -x "$BIN" ] || die "LIVECHAT_BIN=$BIN is not an executable"
  else
    # The same build as `make build` (version flags included); make rebuilds
    # only when a source file changed.
    command -v make >/dev/null || die "make is not installed (apt-get install make), or set LIVECHAT_BIN"
    make -s build || die "make build failed"
  fi

  local i=0 port
  for port in "${PORTS[@]}"; do
    i=$((i + 1))
    APPID=$((i * 1000)) start_bg "server$i" "$BIN" serve --addr "127.0.0.1:$port" \
      --broker "$BROKER" --prefix "$PREFIX" --trust-proxy \
      --drain-delay 2s --shutdown-timeout 10s
  done
  i=0
  for port in "${PORTS[@]}"; do
    i=$((i + 1))
    wait_until 15 http_ok "http://127.0.0.1:$port/readyz" || die "server$i (port $port) is not ready; see $RUN/server$i.log"
  done

  local n=0
  for port in "${PORTS[@]}"; do n=$((n + 1)); export "LIVECHAT_S$n=127.0.0.1:$port"; done
  export LIVECHAT_FRONTEND=":$LB_PORT" LIVECHAT_FRONTEND_TRUSTED="127.0.0.1:$((LB_PORT + 10))" \
    LIVECHAT_HAPROXY_STATS="127.0.0.1:$STATS_PORT" LIVECHAT_HAPROXY_SOCKET="$RUN/haproxy.sock"
  haproxy -c -q -f haproxy/haproxy.cfg || die "haproxy/haproxy.cfg does not pass haproxy -c"
  start_bg haproxy haproxy -db -f haproxy/haproxy.cfg
  wait_until 10 http_ok "http://127.0.0.1:$LB_PORT/readyz" || die "HAProxy does not answer on :$LB_PORT; see $RUN/haproxy.log"

  local nd=$RUN/nginx vars='${LIVECHAT_NGINX_DIR} ${LIVECHAT_WEB_LISTEN} ${LIVECHAT_WEB_ROOT} ${LIVECHAT_WS_UPSTREAM}'
  mkdir -p "$nd/tmp"
  export LIVECHAT_NGINX_DIR=$nd LIVECHAT_WEB_LISTEN=$WEB_PORT LIVECHAT_WEB_ROOT=$ROOT/web \
    LIVECHAT_WS_UPSTREAM=127.0.0.1:$((LB_PORT + 10))
  envsubst "$vars" <compose/nginx.conf >"$nd/livechat.conf"
  envsubst "$vars" <compose/nginx-local.conf >"$nd/nginx.conf"
  nginx -t -q -p "$nd" -c "$nd/nginx.conf" || die "nginx config test failed"
  # nginx writes its own pid file (the master's pid) into $nd/nginx.pid.
  setsid nginx -p "$nd" -c "$nd/nginx.conf" -g 'daemon off;' >"$RUN/nginx.log" 2>&1 </dev/null &
  wait_until 10 http_ok "http://127.0.0.1:$WEB_PORT/nginx-health" || die "nginx does not answer on :$WEB_PORT; see $nd/error.log"
  cp "$nd/nginx.pid" "$RUN/nginx.pid"

  STARTING=0
  log "up: chat http://127.0.0.1:$WEB_PORT/  websocket ws://127.0.0.1:$LB_PORT/ws  haproxy stats http://127.0.0.1:$STATS_PORT/"
  log "servers: ${PORTS[*]} (APPID 1000..$((i * 1000))), broker $BROKER, prefix $PREFIX, logs in $RUN/"
  log "watch:   $BIN stats --broker $BROKER --prefix $PREFIX --watch"
}

# stop_one NAME SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL.
stop_one() {
  local pidf=$RUN/$1.pid
  [ -f "$pidf" ] || return 0
  local pid; pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until "$2" bash -c "! kill -0 $pid"; then
      log "$1 (pid $pid) did not stop in $2 s; killing"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$pidf"
}

stop() {
  [ -d "$RUN" ] || { log "not running"; return 0; }
  stop_one nginx 5
  stop_one haproxy 5
  local f pids=()
  for f in "$RUN"/server*.pid; do
    [ -f "$f" ] || continue
    local n; n=$(basename "$f" .pid)
    stop_one "$n" 15 &
    pids+=($!)
  done
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
  stop_one redis 5
  rm -f "$RUN/haproxy.sock"
}

status() {
  local f any=1
  for f in "$RUN"/*.pid; do
    [ -f "$f" ] || continue
    any=0
    local n; n=$(basename "$f" .pid)
    if alive "$f"; then echo "$n: running (pid $(cat "$f"))"; else echo "$n: dead (stale pid $(cat "$f"))"; fi
  done
  [ $any -eq 0 ] || { echo "not running"; return 0; }
  if curl -fsS --max-time 1 "http://127.0.0.1:$STATS_PORT/;csv" 2>/dev/null | awk -F, '$1=="livechat" && $2 ~ /^s[0-9]/ {print "haproxy " $2 ": " $18}'; then :; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac

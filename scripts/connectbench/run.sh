#!/usr/bin/env bash
# One run of the connect burst against livechat or Centrifugo, each server
# fresh, pinned to core 0, connectbench on core 1; prints connectbench's
# JSON line with "server" (what ran) and "server_cpu_s" (the CPU of the
# server that took the burst, or the reconnects) added.
#
#   scripts/connectbench/run.sh livechat|centrifugo MODE [connectbench flags]
#
# MODE: burst (N clients connect and join), storm (then the server is
# killed and every client reconnects to a second one), drop (then every
# connection is dropped and the clients reconnect to the same server).
#
# LC_BIN (default /tmp/livechat), CF_BIN (/tmp/cf/centrifugo), CB_BIN
# (/tmp/connectbench: go build -o /tmp/connectbench ./scripts/connectbench),
# CF_CONFIG (a Centrifugo config; default: anonymous clients, a channel with
# presence, no join/leave pushes; CF_JOIN_LEAVE=1 turns those on),
# SERVER_FLAGS (added to livechat serve), SETTLE (seconds between the
# servers' start and the burst, default 3), PORT (default 28380: servers on
# PORT and PORT+1). Alternate the servers (or two livechat builds) run by
# run, never compare against figures of another hour.
set -euo pipefail
proto=${1:?livechat or centrifugo}
mode=${2:?burst, storm or drop}
shift 2
LC_BIN=${LC_BIN:-/tmp/livechat}
CF_BIN=${CF_BIN:-/tmp/cf/centrifugo}
CB_BIN=${CB_BIN:-/tmp/connectbench}
PORT=${PORT:-28380}
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }

# start PORT: a server on PORT, its pid in $pid
start() {
	local port=$1
	if [ "$proto" = livechat ]; then
		mkdir -p "$work/$port"
		# shellcheck disable=SC2086
		taskset -c 0 "$LC_BIN" serve --history memory:// --broker memory:// --data "$work/$port" \
			--addr "127.0.0.1:$port" ${SERVER_FLAGS:-} >"$work/$port.log" 2>&1 &
		pid=$!
		health="http://127.0.0.1:$port/readyz"
	else
		local cfg=$work/cf$port.json
		if [ -n "${CF_CONFIG:-}" ]; then
			sed "s/\"port\": *[0-9]*/\"port\":$port/" "$CF_CONFIG" >"$cfg"
		else
			jl=false
			[ "${CF_JOIN_LEAVE:-}" = 1 ] && jl=true
			cat >"$cfg" <<EOF
{"http_server":{"address":"127.0.0.1","port":$port},"log":{"level":"error"},
 "client":{"insecure":true,"allowed_origins":["*"],"allow_anonymous_connect_without_token":true},
 "channel":{"without_namespace":{"presence":true,"join_leave":$jl,"force_push_join_leave":$jl,
   "allow_subscribe_for_client":true,"allow_subscribe_for_anonymous":true,
   "allow_presence_for_client":true,"allow_presence_for_anonymous":true}}}
EOF
		fi
		taskset -c 0 "$CF_BIN" -c "$cfg" >"$work/$port.log" 2>&1 &
		pid=$!
		health="http://127.0.0.1:$port/"
	fi
	pids+=("$pid")
	for _ in $(seq 100); do
		# livechat: ready; Centrifugo: any HTTP answer.
		code=$(curl -s -o /dev/null -w '%{http_code}' "$health" || true)
		[ "$code" = 200 ] || { [ "$proto" = centrifugo ] && [ "$code" != 000 ]; } && return 0
		sleep 0.1
	done
	echo "run.sh: server on $port did not start: $(tail -3 "$work/$port.log")" >&2
	exit 1
}

path=/ws
[ "$proto" = centrifugo ] && path=/connection/websocket
url=ws://127.0.0.1:$PORT$path
start "$PORT"
a=$pid
args=(-proto "$proto" -url "$url")
measured=$a
case $mode in
burst) ;;
storm)
	start $((PORT + 1))
	measured=$pid
	args+=(-reconnect "ws://127.0.0.1:$((PORT + 1))$path" -kill-pid "$a")
	;;
drop) args+=(-reconnect "$url") ;;
*)
	echo "run.sh: unknown mode $mode" >&2
	exit 2
	;;
esac
sleep "${SETTLE:-3}" # both servers finish starting (Centrifugo answers HTTP before it is quick)
c0=$(cpu "$measured")
line=$(taskset -c 1 "$CB_BIN" "${args[@]}" "$@") || true
c1=$(cpu "$measured")
name=$proto
[ "$proto" = livechat ] && name="livechat $(basename "$LC_BIN") ${SERVER_FLAGS:-}"
[ "$proto" = centrifugo ] && [ "${CF_JOIN_LEAVE:-}" = 1 ] && name="centrifugo join_leave"
echo "$line" | sed "s|^{|{\"server\":\"$name\",\"mode\":\"$mode\",\"server_cpu_s\":$(awk "BEGIN{printf \"%.2f\", ($c1-$c0)/100}"),|"

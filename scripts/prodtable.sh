#!/usr/bin/env bash
# prodtable.sh: the production-shaped point (scripts/perf.sh BIN prod) for
# every configuration, RUNS times each (default 3), alternating the
# configurations run by run so that the host's hour weighs on all alike, then
# one Markdown table of the medians. With IDLE=1 (the default) each
# configuration also runs once at 1 msg/s in all, connections and rooms the
# same: its CPU is the fixed cost (presence, pings, health checks), and the
# table gives the marginal cost per delivery above it.
#
#   scripts/prodtable.sh BIN [RUNS]
#
# CONFIGS="memory/memory redis/redis ..." picks the configurations
# (BROKER/HISTORY, or BROKER/HISTORY/SERVERS for another server count than 4,
# or BROKER/HISTORY/SERVERS/FLAG for one more flag of the servers, e.g.
# redis/redis/4/--append-publish=false);
# MSGRATE, SERVERS, SERVER_FLAGS, BENCH_BIN go to perf.sh. The raw JSON lines
# are kept in OUT (default /tmp/prodtable.jsonl).
set -euo pipefail
BIN=${1:?binary}; RUNS=${2:-3}
OUT=${OUT:-/tmp/prodtable.jsonl}
CONFIGS=${CONFIGS:-memory/memory redis/redis redis/postgres nats/redis nats/postgres cluster/redis cluster/postgres}
dir=$(dirname "$0")
: > "$OUT"
one() { # config [env...]
  local c=$1; shift
  IFS=/ read -r br hi ns fl <<<"$c"
  env "$@" BROKER="$br" HISTORY="$hi" SERVERS="${ns:-${SERVERS:-4}}" SERVER_FLAGS="${SERVER_FLAGS:-} ${fl:-}" \
    "$dir/perf.sh" "$BIN" prod 1 | tail -1 | python3 -c 'import json, sys
for l in sys.stdin:
    d = json.loads(l); d.setdefault("prod", {})["flag"] = sys.argv[1]; print(json.dumps(d))' "${fl:-}" >> "$OUT" || echo "prodtable: $c failed" >&2
}
if [ "${IDLE:-1}" = 1 ]; then
  for c in $CONFIGS; do echo "prodtable: idle, $c" >&2; one "$c" MSGRATE=1; done
fi
for run in $(seq "$RUNS"); do
  for c in $CONFIGS; do
    echo "prodtable: run $run, $c" >&2
    one "$c"
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = {}
idle = {}
skipped = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    d = json.loads(line)
    if "skipped" in d:
        skipped[d["config"]] = d["skipped"]
        continue
    key = (d["prod"]["config"], d["prod"]["servers"], d["prod"].get("flag", ""))
    if d["rate"] <= 1:
        idle[key] = d["prod"]["core_share"]
    else:
        rows.setdefault(key, []).append(d)
med = lambda xs: statistics.median(xs)
def rng(xs, f):
    return f(med(xs)) + (" (" + "–".join(f(x) for x in (min(xs), max(xs))) + ")" if len(xs) > 1 else "")
print("| broker / history | deliveries/s (expected) | lost | p50 / p99 ms | CPU µs per delivery: total = servers + broker + history + HAProxy | idle: share of the core; µs per delivery above it | RSS MiB: servers / broker / history |")
print("|---|---|---|---|---|---|---|")
for key, ds in rows.items():
    cfg = key[0]
    p = [d["prod"] for d in ds]
    if key in idle:
        marg = med([(x["core_share"] - idle[key]) * 1e6 / x["deliveries_per_s"] for x in p])
        idlecol = f"{idle[key]:.2f}; {marg:.1f}"
    else:
        idlecol = "—"
    u = lambda g: med([x["us_per_delivery"][g] for x in p])
    name = cfg + (" (1 server)" if p[0]["servers"] == 1 else f" ({p[0]['servers']} servers)") + (f", `{key[2]}`" if key[2] else "")
    print(f"| {name} | {med([d['deliveries_per_s'] for d in ds]):,.0f} ({med([d['expected_per_s'] for d in ds]):,.0f}) "
          f"| {sum(d['lost'] for d in ds)} of {sum(d['expected'] for d in ds):,} "
          f"| {med([d['latency']['p50_ms'] for d in ds]):.0f} / {rng([d['latency']['p99_ms'] for d in ds], lambda v: f'{v:,.0f}')} "
          f"| **{rng([x['us_per_delivery_total'] for x in p], lambda v: f'{v:.1f}')}** = {u('servers'):.1f} + {u('broker'):.1f} + {u('history'):.1f} + {u('haproxy'):.1f} "
          f"| {idlecol} | {med([x['rss_mib']['servers'] for x in p]):.0f} / {med([x['rss_mib']['broker'] for x in p]):.0f} / {med([x['rss_mib']['history'] for x in p]):.0f} |")
for cfg, why in skipped.items():
    print(f"| {cfg} | skipped: {why[:120]} | | | | | |")
print()
print("Raw, medians: per server core (servers' CPU only) and per broker/history CPU-second")
for key, ds in rows.items():
    cfg = key[0] + (" " + key[2] if key[2] else "")
    p = [d["prod"] for d in ds]
    n = p[0]["servers"]
    sc = med([x["cpu_s"]["servers"] / x["window_s"] for x in p])
    print(f"- {cfg}: {n} servers, {med([d['connect']['established'] for d in ds]) / n:,.0f} connections each; "
          f"{med([x['messages_per_s'] for x in p]):,.0f} msg/s in, {med([x['deliveries_per_s'] for x in p]):,.0f} deliveries/s; "
          f"servers use {sc:.2f} core: {med([x['messages_per_s'] for x in p]) / max(sc, 1e-9):,.0f} msg/s and "
          f"{med([x['deliveries_per_s'] for x in p]) / max(sc, 1e-9):,.0f} deliveries/s per server core; "
          f"µs per message: broker {med([x['us_per_message']['broker'] for x in p]):.1f}, history {med([x['us_per_message']['history'] for x in p]):.1f}, "
          f"HAProxy {med([x['us_per_message']['haproxy'] for x in p]):.1f}; core 0 share {med([x['core_share'] for x in p]):.2f}"
          + "".join(f"; Redis {k}: {med([x['redis_cmds'].get(k, {}).get('calls', 0) / x['window_s'] for x in p]):,.0f}/s, "
                    f"{med([x['redis_cmds'].get(k, {}).get('usec_per_call', 0) for x in p]):.1f} µs"
                    for k in ("evalsha", "publish") if any(k in x.get("redis_cmds", {}) for x in p)))
PY

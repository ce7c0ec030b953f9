#!/usr/bin/env bash
# Issue 10 item 4: the single-message round trip beside Apache Iggy, same run, ROUNDS rounds
# alternating the order. Rows: closed loop (1 in flight, as fast as acks return) and open loop
# at RATE msg/s (latency from each request's intended send time). shardmq one shard on CPU 1,
# Iggy one shard pinned to CPU 1 by the bench, the bench on CPU 0, 1 KB messages, 8 queues,
# --flush async / Iggy as shipped (both acknowledge from memory). Every request slower than
# SLOW_US is logged with its CLOCK_MONOTONIC send time (bench --log-slow-us), and classified:
# "boundary" when it was sent 75–86 ms into a 100 ms period of CLOCK_MONOTONIC (the host's
# throttling window found in this report), "other" otherwise.
# Every run is driven by the first build's bench (so brokers of older builds meet the same client).
# Usage: IGGY_SERVER=… BUILDS="label=binary ..." perf-reports/2026-12-03-round-trip-tail/run.sh
set -euo pipefail
cd "$(dirname "$0")"
: "${IGGY_SERVER:?path to iggy-server}"
export IGGY_SERVER
ROOT=$(git rev-parse --show-toplevel)
BUILDS=${BUILDS:-shardmq=$ROOT/target/release/shardmq}
ROUNDS=${ROUNDS:-3}; N=${N:-50000}; RATE=${RATE:-10000}; SLOW_US=${SLOW_US:-1500}
DATA=$ROOT/target/perf-rtt
FIRST_BIN=${BUILDS%% *}; FIRST_BIN=${FIRST_BIN#*=}

bench_args() { # row
  case $1 in
    closed) echo produce --messages "$N" --batch 1 --in-flight 1 ;;
    open) echo produce --messages "$N" --batch 1 --in-flight 1 --rate "$RATE" ;;
  esac
}

shardmq_run() { # binary row out
  local b=$1 row=$2 out=$3
  rm -rf "$DATA"; mkdir -p "$DATA"
  "$b" broker --data-dir "$DATA" --shards 1 --cpus 1 --listen 127.0.0.1:0 --remoting-listen off \
    --namesrv-listen off --http-listen off > "$DATA.out" 2> "$DATA.err" &
  local broker=$!
  for _ in $(seq 100); do grep -q ready "$DATA.out" 2>/dev/null && break; sleep 0.1; done
  local addr; addr=$(sed 's/.*native=\([^ ]*\).*/\1/' "$DATA.out")
  "$FIRST_BIN" admin --broker "$addr" topic create --name t --queues 8 > /dev/null
  # shellcheck disable=SC2046
  "$FIRST_BIN" bench --broker "$addr" $(bench_args "$row") --topic t --size 1024 --cpu 0 \
    --log-slow-us "$SLOW_US" --json "$out.json" > "$out.txt" 2>&1
  kill -TERM "$broker"; wait "$broker"
}

iggy_run() { # row out (driven by the first build's bench)
  # shellcheck disable=SC2046
  "$FIRST_BIN" bench $(bench_args "$1") --peer iggy --peer-cpu 1 --peer-queues 8 --topic t \
    --size 1024 --cpu 0 --log-slow-us "$SLOW_US" --json "$2.json" > "$2.txt" 2>&1
}

pgrep -x iggy-server > /dev/null && { echo "an iggy-server is running: stop it first"; exit 1; }
for r in $(seq "$ROUNDS"); do
  d=round-$r; rm -rf "$d"; mkdir -p "$d"
  for row in closed open; do
    runs="$BUILDS iggy=iggy"
    [ $((r % 2)) -eq 0 ] && runs="iggy=iggy $BUILDS"
    for spec in $runs; do
      label=${spec%%=*}; bin=${spec#*=}
      echo "--- round $r $row $label"
      if [ "$label" = iggy ]; then iggy_run "$row" "$d/$label-$row"; else shardmq_run "$bin" "$row" "$d/$label-$row"; fi
    done
  done
done

python3 - "$ROUNDS" "$SLOW_US" > results.md <<'PY'
import glob, json, os, re, sys
rounds, slow_us = int(sys.argv[1]), sys.argv[2]
print("# Single-message round trip beside Apache Iggy, same run\n")
print(f"msg/s; latency per request in µs (send, or intended send, to ack); requests slower than {slow_us} µs, "
      "split by when they were sent: in the host's throttling window (75–86 ms into a 100 ms period of "
      "CLOCK_MONOTONIC) or at any other time.\n")
print("| row | round | run | msg/s | p50 / p99 / p99.9 / p99.99 / max | slow: window / other |")
print("|---|---|---|---|---|---|")
for row in ("closed", "open"):
    for r in range(1, rounds + 1):
        for path in sorted(glob.glob(f"round-{r}/*-{row}.json")):
            label = os.path.basename(path)[: -len(f"-{row}.json")]
            j = json.load(open(path)); l = j["latencyUs"]
            window = other = 0
            for line in open(path[:-5] + ".txt"):
                m = re.search(r"sent_monotonic_s=([0-9.]+)", line)
                if m:
                    phase = (float(m.group(1)) * 10) % 1
                    if 0.75 < phase < 0.86: window += 1
                    else: other += 1
            lat = " / ".join(str(round(l[k])) for k in ("p50", "p99", "p999", "p9999", "max"))
            print(f"| {row} | {r} | {label} | {j['msgPerSec']:,.0f} | {lat} | {window} / {other} |")
PY
cat results.md

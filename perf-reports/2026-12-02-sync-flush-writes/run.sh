#!/usr/bin/env bash
# Issue 10 item 2: under --flush sync, how many bytes reach the device per byte acknowledged,
# before (glommio's DmaStreamWriter, which writes its whole 1 MiB buffer at every fdatasync) and
# after (shards/src/segment_writer.rs). Same run, alternating rounds: OLD and NEW are two release
# binaries (OLD built from the commit before the change, see README). 1 shard on CPU 1, the bench
# on CPU 0, 1 KB messages, batches of 100 and of 1000, 4 in flight, ack after fdatasync.
# Bytes to the device: the broker's /proc/<pid>/io write_bytes across the bench run.
# Usage: OLD=/path/to/old/shardmq NEW=/path/to/new/shardmq perf-reports/2026-12-02-sync-flush-writes/run.sh
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(git rev-parse --show-toplevel)
OLD=${OLD:?the binary before the change}
NEW=${NEW:-$ROOT/target/release/shardmq}
DATA=$ROOT/target/perf-data
ROUNDS=${ROUNDS:-3}
MESSAGES=${MESSAGES:-200000}

one() { # round-dir name binary batch
  local dir=$1 name=$2 bin=$3 batch=$4
  rm -rf "$DATA"; mkdir -p "$DATA"
  "$bin" broker --data-dir "$DATA" --shards 1 --cpus 1 --flush sync --listen 127.0.0.1:0 \
    --remoting-listen off --namesrv-listen off --http-listen off > "$DATA.out" 2> "$DATA.err" &
  local broker=$!
  for _ in $(seq 100); do grep -q ready "$DATA.out" 2>/dev/null && break; sleep 0.1; done
  local addr; addr=$(sed 's/.*native=\([^ ]*\).*/\1/' "$DATA.out")
  "$bin" admin --broker "$addr" topic create --name t --queues 8 > /dev/null
  local before after
  before=$(awk '/^write_bytes/ {print $2}' "/proc/$broker/io")
  "$NEW" bench --broker "$addr" produce --topic t --cpu 0 --messages "$MESSAGES" --size 1024 \
    --batch "$batch" --in-flight 4 --json "$dir/$name-b$batch.json" > /dev/null 2>&1
  after=$(awk '/^write_bytes/ {print $2}' "/proc/$broker/io")
  echo "$name $batch $((after - before))" >> "$dir/device-bytes.txt"
  kill -TERM "$broker"; wait "$broker"
}

for r in $(seq "$ROUNDS"); do
  d=round-$r; rm -rf "$d"; mkdir -p "$d"
  order="old new"; [ $((r % 2)) -eq 0 ] && order="new old"
  for batch in 100 1000; do
    for which in $order; do
      echo "--- round $r $which batch $batch"
      bin=$OLD; [ "$which" = new ] && bin=$NEW
      one "$d" "$which" "$bin" "$batch"
    done
  done
done

python3 - "$ROUNDS" "$MESSAGES" > results.md <<'PY'
import json, sys
rounds, messages = int(sys.argv[1]), int(sys.argv[2])
acked = messages * 1024
print("# Bytes to the device per byte acknowledged under --flush sync: before and after\n")
print(f"{messages:,} messages of 1 KB a run ({acked/1e6:.0f} MB of payload), 4 in flight; 1 shard on CPU 1, bench on CPU 0.\n")
print("| round | batch | old MB to disk | new MB to disk | old ÷ payload | new ÷ payload | old msg/s | new msg/s | new ÷ old msg/s |")
print("|---|---|---|---|---|---|---|---|---|")
for r in range(1, rounds + 1):
    d = f"round-{r}"
    dev = {(n, int(b)): int(v) for n, b, v in (l.split() for l in open(f"{d}/device-bytes.txt"))}
    for batch in (100, 1000):
        rate = {n: json.load(open(f"{d}/{n}-b{batch}.json"))["msgPerSec"] for n in ("old", "new")}
        o, n = dev[("old", batch)], dev[("new", batch)]
        print(f"| {r} | {batch} | {o/1e6:,.0f} | {n/1e6:,.0f} | {o/acked:.2f} | {n/acked:.2f} | {rate['old']:,.0f} | {rate['new']:,.0f} | {rate['new']/rate['old']:.2f} |")
PY
cat results.md

#!/usr/bin/env bash
# The consumption model under load (issue 7's speed targets), through `shardmq bench`, every
# comparison in the same run on the same machine, rendered by `shardmq bench report`. Broker (one
# shard) / peer server on CPU 1, producers on CPU 0, end-to-end consumers on CPU 1. 1 KB, 8 queues.
#   group-100k:   2 producers at 100,000 msg/s in all (batches of 10; group-100k-batch100: of 100),
#                 a group of 3 members consuming (clustering), beside plain consumers (no group)
#                 and rocketmq-rust with the same group run.
#   filter-drain: a 2 GB backlog (2,000,000 x 1 KB) tagged rare:1,common:99; drained whole, then
#                 drained with the tag filter `rare` (20,000 matches); rocketmq-rust the same.
#   commit-cost:  closed-loop produce (batches of 100) with plain consumers vs a committing group,
#                 alternated three times; commit-cpu: the same, counting the broker's CPU per message.
# Usage: perf-reports/2026-12-01-consumption/run.sh [scenario]
#   rocketmq-rust: rocketmq-namesrv-rust and rocketmq-broker-rust on PATH (see ../shared/peers).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(git rev-parse --show-toplevel)
cargo build --release --manifest-path "$ROOT/Cargo.toml" -q
B=$ROOT/target/release/shardmq
DATA=$ROOT/target/perf-data
QUEUES=8

broker() { # flags...
  rm -rf "$DATA"; mkdir -p "$DATA"
  "$B" broker --listen 127.0.0.1:0 --data-dir "$DATA" --shards 1 --cpus 1 "$@" > "$DATA.out" 2> "$DATA.err" &
  BROKER=$!
  for _ in $(seq 100); do grep -q ready "$DATA.out" 2>/dev/null && break; sleep 0.1; done
  ADDR=$(sed 's/.*native=\([^ ]*\).*/\1/' "$DATA.out")
  "$B" admin --broker "$ADDR" topic create --name t --queues $QUEUES > /dev/null
}
stop() { kill -TERM "$BROKER"; wait "$BROKER"; }

group_100k() { # batch size
  local batch=$1 dir=group-100k; [ "$1" = 100 ] && dir=group-100k-batch100
  local E2E="--duration-s 20 --warmup-s 2 --size 1024 --rate 100000 --batch $batch --producers 2 --threads 2 --in-flight 64 --consumer-cpu 1 --consumers 3"
  mkdir -p $dir
  broker
  echo "--- $dir shardmq, group of 3"
  "$B" bench --broker "$ADDR" end-to-end --topic t --cpus 0 $E2E --group bench-g --json $dir/shardmq-group.json 2>/dev/null | tail -4
  stop
  broker
  echo "--- $dir shardmq, plain consumers"
  "$B" bench --broker "$ADDR" end-to-end --topic t --cpus 0 $E2E --json $dir/shardmq-plain.json 2>/dev/null | tail -3
  stop
  local files=($dir/shardmq-group.json $dir/shardmq-plain.json)
  if command -v rocketmq-broker-rust > /dev/null; then
    echo "--- $dir rocketmq-rust, group of 3"
    "$B" bench end-to-end --peer rocketmq-rust --peer-cpu 1 --peer-queues $QUEUES --topic t --cpus 0 $E2E \
      --group bench-g --json $dir/rocketmq-rust-group.json 2>/dev/null | tail -4 || true
    [ -f $dir/rocketmq-rust-group.json ] && files+=($dir/rocketmq-rust-group.json)
  fi
  "$B" bench report --title "$dir: a group of 3 at 100,000 msg/s in batches of $batch, plain consumers and rocketmq-rust beside it, same run" --out $dir "${files[@]}"
}

N=2000000
RARE=20000 # 1 producer, batches of 100 over 8 queues: rare on rounds 0, 100, … of 2500 -> 25 x 8 x 100
filter_drain() {
  local dir=filter-drain
  mkdir -p $dir
  broker
  echo "--- $dir shardmq fill"
  "$B" bench --broker "$ADDR" produce --topic t --cpu 0 --messages $N --size 1024 --batch 100 --in-flight 4 --tags rare:1,common:99 2>/dev/null | tail -2
  echo "--- $dir shardmq unfiltered"
  "$B" bench --broker "$ADDR" consume --topic t --cpu 0 --messages $N --json $dir/shardmq-all.json 2>/dev/null | tail -3
  echo "--- $dir shardmq filtered"
  "$B" bench --broker "$ADDR" consume --topic t --cpu 0 --messages $RARE --filter-tags rare --json $dir/shardmq-rare.json 2>/dev/null | tail -4
  stop
  local files=($dir/shardmq-all.json $dir/shardmq-rare.json)
  if command -v rocketmq-broker-rust > /dev/null; then
    for f in all rare; do
      local filter=""; [ $f = rare ] && filter="--filter-tags rare"
      echo "--- $dir rocketmq-rust $f"
      "$B" bench consume --peer rocketmq-rust --peer-cpu 1 --peer-queues $QUEUES --cpu 0 --topic t --messages $N \
        --size 1024 --fill-batch 100 --fill-tags rare:1,common:99 $filter --idle-timeout-ms 20000 \
        --json $dir/rocketmq-rust-$f.json 2>/dev/null | tail -4 || true
      [ -f $dir/rocketmq-rust-$f.json ] && files+=($dir/rocketmq-rust-$f.json)
    done
  fi
  "$B" bench report --title "$dir: drain 2 GB whole vs through a 1-in-100 tag filter, same run" --out $dir "${files[@]}"
}

COMMIT="--duration-s 10 --warmup-s 2 --size 1024 --batch 100 --producers 2 --in-flight 4 --cpus 0 --consumer-cpu 1 --consumers 3"
commit_cost() {
  local dir=commit-cost
  mkdir -p $dir
  local files=()
  for round in 1 2 3; do
    for mode in plain group; do
      local extra=""; [ $mode = group ] && extra="--group commit-g"
      broker
      echo "--- $dir round $round $mode"
      "$B" bench --broker "$ADDR" end-to-end --topic t $COMMIT $extra --json $dir/$mode-$round.json 2>/dev/null | tail -4
      stop
      files+=($dir/$mode-$round.json)
    done
  done
  "$B" bench report --title "$dir: closed-loop produce with plain consumers vs a committing group of 3, alternated" --out $dir "${files[@]}"
}

# The broker's own CPU per message in the commit-cost workload: its utime + stime ticks around
# each run (/proc/PID/stat), so the bench's noise does not enter the comparison.
commit_cpu() {
  local dir=commit-cost out=commit-cost/broker-cpu.txt
  : > $out
  for round in 1 2 3; do
    for mode in plain group; do
      local extra=""; [ $mode = group ] && extra="--group commit-g"
      broker
      local t0 c0 t1 c1
      t0=$(date +%s.%N); c0=$(awk '{print $14+$15}' /proc/$BROKER/stat)
      "$B" bench --broker "$ADDR" end-to-end --topic t $COMMIT $extra --json $dir/cpu-$mode-$round.json > /dev/null 2>&1
      t1=$(date +%s.%N); c1=$(awk '{print $14+$15}' /proc/$BROKER/stat)
      stop
      python3 - "$mode-$round" "$c0" "$c1" "$t0" "$t1" "$dir/cpu-$mode-$round.json" >> $out <<'PY'
import json, sys
label, c0, c1, t0, t1, path = sys.argv[1], *map(int, sys.argv[2:4]), *map(float, sys.argv[4:6]), sys.argv[6]
run = json.load(open(path))
acked = run["acked"]
cpu_s = (c1 - c0) / 100
print(f"{label}: acked {acked}  broker CPU {cpu_s:.2f} s over {t1 - t0:.1f} s  = {cpu_s / acked * 1e6:.3f} CPU-s per million messages")
PY
      rm $dir/cpu-$mode-$round.json
    done
  done
  cat $out
}

{
echo "loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
case "${1:-all}" in
  group-100k) group_100k 10 ;;
  group-100k-batch100) group_100k 100 ;;
  filter-drain) filter_drain ;;
  commit-cost) commit_cost ;;
  commit-cpu) commit_cpu ;;
  all) group_100k 10; group_100k 100; filter_drain; commit_cost; commit_cpu ;;
esac
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee -a run.log

#!/usr/bin/env bash
# shardmq against Redis Streams, the same workload through `shardmq bench` in the same run,
# rendered by `shardmq bench report`. Broker / redis-server on CPU 1, bench on CPU 0, 1 KB.
# Usage: perf-reports/2026-11-25-bench-vs-redis/run.sh   (needs redis-server)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(git rev-parse --show-toplevel)
cargo build --release --manifest-path "$ROOT/Cargo.toml" -q
B=$ROOT/target/release/shardmq
DATA=$ROOT/target/perf-data

broker() { # flags...
  rm -rf "$DATA"; mkdir -p "$DATA"
  "$B" broker --listen 127.0.0.1:0 --data-dir "$DATA" --shards 1 --cpus 1 "$@" > "$DATA.out" 2> "$DATA.err" &
  BROKER=$!
  for _ in $(seq 100); do grep -q ready "$DATA.out" 2>/dev/null && break; sleep 0.1; done
  ADDR=$(sed 's/.*native=\([^ ]*\).*/\1/' "$DATA.out")
  "$B" admin --broker "$ADDR" topic create --name t --queues 1 > /dev/null
}
stop() { kill -TERM "$BROKER"; wait "$BROKER"; }

scenario() { # dir broker-flags peer -- workload...
  local dir=$1 flags=$2 peer=$3; shift 4
  mkdir -p "$dir"
  broker $flags
  "$B" bench --broker "$ADDR" produce --topic t --cpu 0 "$@" --json "$dir/shardmq.json" | tail -2
  stop
  "$B" bench produce --peer "$peer" --peer-cpu 1 --cpu 0 --topic t "$@" --json "$dir/$peer.json" | tail -2
  "$B" bench report --title "$dir: shardmq vs $peer, same workload, same run" --out "$dir" "$dir/shardmq.json" "$dir/$peer.json"
}

{
echo "loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
scenario batch100 "" redis -- --messages 1000000 --size 1024 --batch 100
scenario roundtrip "--spin-before-park-us 0" redis -- --messages 30000 --size 1024 --batch 1
scenario durable-batch100 "--flush sync" redis-always -- --messages 200000 --size 1024 --batch 100
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee run.log

#!/usr/bin/env bash
# shardmq against NATS JetStream, Redis Streams and rocketmq-rust: the same workloads through
# `shardmq bench` (one engine, one driver per system), in the same run, rendered by
# `shardmq bench report`. Broker / peer server pinned to CPU 1, bench executors on CPU 0
# (end-to-end consumers on CPU 1, next to the server). 1 KB messages, 4 queues, duration mode
# with a warm-up that is measured nowhere.
# Usage: perf-reports/2026-11-25-peers-all/run.sh [drain]   (drain: only the drain scenario)
#   needs redis-server, nats-server (Debian) and rocketmq-namesrv-rust, rocketmq-broker-rust on
#   PATH (cargo install --locked rocketmq-namesrv rocketmq-broker; see ../shared/peers/README.md).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(git rev-parse --show-toplevel)
cargo build --release --manifest-path "$ROOT/Cargo.toml" -q
B=$ROOT/target/release/shardmq
DATA=$ROOT/target/perf-data
QUEUES=4

broker() { # flags...
  rm -rf "$DATA"; mkdir -p "$DATA"
  "$B" broker --listen 127.0.0.1:0 --data-dir "$DATA" --shards 1 --cpus 1 "$@" > "$DATA.out" 2> "$DATA.err" &
  BROKER=$!
  for _ in $(seq 100); do grep -q ready "$DATA.out" 2>/dev/null && break; sleep 0.1; done
  ADDR=$(sed 's/.*native=\([^ ]*\).*/\1/' "$DATA.out")
  "$B" admin --broker "$ADDR" topic create --name t --queues $QUEUES > /dev/null
}
stop() { kill -TERM "$BROKER"; wait "$BROKER"; }

scenario() { # dir kind broker-flags shardmq-only-flags "peers" -- workload...
  local dir=$1 kind=$2 flags=$3 ours=$4 peers=$5; shift 6
  mkdir -p "$dir"
  broker $flags
  echo "--- $dir shardmq $ours"
  "$B" bench --broker "$ADDR" "$kind" --topic t --cpu 0 "$@" $ours --json "$dir/shardmq.json" 2>/dev/null | tail -3
  stop
  local files=("$dir/shardmq.json")
  for peer in $peers; do
    echo "--- $dir $peer"
    "$B" bench "$kind" --peer "$peer" --peer-cpu 1 --peer-queues $QUEUES --cpu 0 --topic t "$@" \
      --json "$dir/$peer.json" 2>/dev/null | tail -3
    files+=("$dir/$peer.json")
  done
  "$B" bench report --title "$dir: shardmq vs $peers, same workload, same run" --out "$dir" "${files[@]}"
}

drain() { # messages: fill a backlog untimed, then drain it from the start (timed)
  local dir=drain n=$1
  mkdir -p "$dir"
  broker
  echo "--- $dir shardmq"
  "$B" bench --broker "$ADDR" produce --topic t --cpu 0 --messages "$n" --size 1024 --batch 100 --in-flight 4 > /dev/null 2>&1
  "$B" bench --broker "$ADDR" consume --topic t --cpu 0 --messages "$n" --json "$dir/shardmq.json" 2>/dev/null | tail -3
  stop
  local files=("$dir/shardmq.json")
  for peer in $ALL; do
    echo "--- $dir $peer"
    "$B" bench consume --peer "$peer" --peer-cpu 1 --peer-queues $QUEUES --cpu 0 --topic t --messages "$n" \
      --size 1024 --fill-batch 100 --json "$dir/$peer.json" 2>/dev/null | tail -3
    files+=("$dir/$peer.json")
  done
  "$B" bench report --title "$dir: shardmq vs $ALL, drain a backlog of $n x 1 KB, same run" --out "$dir" "${files[@]}"
}

TIMED="--duration-s 10 --warmup-s 2 --size 1024"
ALL="nats redis rocketmq-rust"
if [ "${1:-}" = drain ]; then drain 1000000; exit; fi
{
echo "loadavg before: $(cut -d' ' -f1-3 /proc/loadavg)"
# One request per message, 64 outstanding.
scenario batch1 produce "" "" "$ALL" -- $TIMED --batch 1 --producers 4 --in-flight 16
# The application hands over one message at a time, 1024 outstanding; shardmq's client Producer
# coalesces them per queue (linger 100 µs), the peers send each as it comes.
scenario one-at-a-time produce "" "--linger-us 100" "$ALL" -- $TIMED --batch 1 --producers 4 --in-flight 256
scenario batch100 produce "" "" "$ALL" -- $TIMED --batch 100 --producers 2 --in-flight 4
scenario roundtrip produce "" "" "$ALL" -- $TIMED --batch 1 --producers 1 --in-flight 1
scenario e2e-50k end-to-end "" "" "$ALL" -- --duration-s 20 --warmup-s 2 --size 1024 \
  --rate 50000 --batch 10 --producers 2 --threads 2 --in-flight 64 --consumer-cpu 1
scenario durable-batch100 produce "--flush sync" "" "redis-always rocketmq-rust-sync" -- $TIMED --batch 100 --producers 2 --in-flight 4
drain 1000000
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee run.log

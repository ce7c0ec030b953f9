#!/usr/bin/env bash
# Reproduces this report: shardmq (release build) against Redis Streams on the same machine, in
# the same run. Broker / server on CPU 1, load generator on CPU 0, loopback, 1 KB messages.
# Usage: perf-reports/2026-11-25-foundation/run.sh [rounds]   (needs redis-server, redis-tools)
set -euo pipefail
cd "$(dirname "$0")"
OUT=$PWD/results; mkdir -p "$OUT"
ROUNDS=${1:-3}
ROOT=$(git rev-parse --show-toplevel)
cargo build --release --manifest-path "$ROOT/Cargo.toml" -q
cargo build --release --manifest-path "$ROOT/Cargo.toml" -q -p shardmq-bench --example glommio_pingpong
PINGPONG=$ROOT/target/release/examples/glommio_pingpong
B=$ROOT/target/release/shardmq
DATA=${DATA:-$ROOT/target/perf-data}

machine() {
  echo "date: $(date -u +%FT%TZ)"; echo "commit: $(git rev-parse --short HEAD)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) x $(nproc)"
  echo "kernel: $(uname -r)"; echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "fs: $(df -T "$ROOT" | awk 'NR==2 {print $2}')"; echo "memlock: $(ulimit -l)"
  echo "loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"
}

start_broker() { # flags...
  rm -rf "$DATA"; mkdir -p "$DATA"
  "$B" broker --listen 127.0.0.1:0 --data-dir "$DATA" --shards 1 --cpus 1 "$@" > "$OUT/broker.out" 2> "$OUT/broker.err" &
  BROKER=$!
  for _ in $(seq 100); do grep -q ready "$OUT/broker.out" 2>/dev/null && break; sleep 0.1; done
  ADDR=$(sed 's/.*native=\([^ ]*\).*/\1/' "$OUT/broker.out")
  "$B" admin --broker "$ADDR" topic create --name t --queues 1 > /dev/null
  "$B" admin --broker "$ADDR" topic create --name t4 --queues 4 > /dev/null
}

stop_broker() {
  echo "broker peak RSS: $(grep VmHWM /proc/$BROKER/status | awk '{print $2, $3}')"
  kill -TERM "$BROKER"; wait "$BROKER"
  rm -f "$OUT/broker.out" "$OUT/broker.err"
}

bench() { # name args...
  local name=$1; shift
  echo "--- $name"; "$B" bench --broker "$ADDR" "$@" --cpu 0 --json "$OUT/$name.json" | tail -2
}

redis() { # name appendfsync redis-benchmark-args...
  local name=$1 fsync=$2; shift 2
  rm -rf "$DATA/redis"; mkdir -p "$DATA/redis"
  taskset -c 1 redis-server --bind 127.0.0.1 --port 6390 --dir "$DATA/redis" --appendonly yes \
    --appendfsync "$fsync" --save '' --daemonize no > "$OUT/redis.log" 2>&1 &
  local pid=$!; sleep 0.5
  echo "--- $name (redis appendfsync=$fsync)"
  taskset -c 0 redis-benchmark -p 6390 "$@" XADD s '*' f "$(head -c 1024 /dev/zero | tr '\0' x)" 2>&1 \
    | tr '\r' '\n' | grep -v 'rps=' | sed -n '/Summary/,$p' > "$OUT/$name.txt" || true
  grep -E "throughput summary|requests per second" "$OUT/$name.txt" | tail -1
  grep -A2 "latency summary" "$OUT/$name.txt" | tail -1 | sed 's/^/avg min p50 p95 p99 max (ms): /'
  echo "redis peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print $2, $3}')"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$OUT/redis.log"
}

{
STEAL0=$(awk '/^cpu /{print $9}' /proc/stat)
machine
echo "disk O_DIRECT sequential read, 1 MiB, QD1: $(dd if=/dev/zero of="$ROOT/target/dd.tmp" bs=1M count=1024 oflag=direct 2>&1 | tail -1 | awk '{print $(NF-1), $NF}') write; $(dd if="$ROOT/target/dd.tmp" of=/dev/null bs=1M iflag=direct 2>&1 | tail -1 | awk '{print $(NF-1), $NF}') read"
rm -f "$ROOT/target/dd.tmp"
for round in $(seq "$ROUNDS"); do
  echo "=== round $round"
  start_broker
  bench "produce-batch1000-r$round" produce --topic t --messages 2000000 --size 1024 --batch 1000 --in-flight 2
  bench "consume-backlog-r$round" consume --topic t --messages 2000000
  stop_broker
  start_broker --hot-tail 3GiB
  bench "produce-hot-tail-3GiB-r$round" produce --topic t --messages 2000000 --size 1024 --batch 1000 --in-flight 2
  bench "consume-from-memory-r$round" consume --topic t --messages 2000000
  stop_broker
  start_broker
  bench "produce-4queues-r$round" produce --topic t4 --messages 2000000 --size 1024 --batch 1000 --in-flight 2
  bench "consume-4queues-r$round" consume --topic t4 --messages 2000000
  stop_broker
  echo "--- floor-pingpong-r$round"; "$PINGPONG" 50 1100 50000; "$PINGPONG" 0 1100 20000
  start_broker --spin-before-park-us 50
  bench "roundtrip-spin-r$round" produce --topic t --messages 50000 --size 1024 --batch 1 --spin-us 50
  stop_broker
  start_broker
  bench "roundtrip-nospin-r$round" produce --topic t --messages 20000 --size 1024 --batch 1
  stop_broker
  start_broker --flush sync
  bench "sync-batch100-r$round" produce --topic t --messages 200000 --size 1024 --batch 100
  stop_broker
  redis "redis-pipeline1000-r$round" everysec -n 2000000 -c 1 -P 1000
  redis "redis-roundtrip-r$round" everysec -n 50000 -c 1 -P 1
  redis "redis-always-pipeline100-r$round" always -n 200000 -c 1 -P 100
done
echo "steal ticks during the run: $(( $(awk '/^cpu /{print $9}' /proc/stat) - STEAL0 )) (USER_HZ)"
echo "loadavg after: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$OUT/run.log"

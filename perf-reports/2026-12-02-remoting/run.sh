#!/usr/bin/env bash
# RocketMQ remoting (issue 8's speed targets): the same bench workload against shardmq's native
# protocol, shardmq's remoting port (driven from its name server like a stock client: each shard a
# broker of its own in the route) and rocketmq-rust, in one run on one machine, rendered by
# `shardmq bench report`. 1 KB messages, 8 queues, TCP_NODELAY everywhere.
#   rt:      single-message sync sends, one in flight (round trip), 1 shard on CPU 1, bench CPU 0
#   batch:   produce in batches of 100 and of 1000, 4 in flight, 1 shard on CPU 1, bench CPU 0
#   shards2: a 2-shard broker (CPUs 0,1), batches of 100, 2 producers x 4 in flight on both CPUs:
#            native (shard-aware) vs remoting (no shard awareness, routes only)
#   cpu:     the broker's own CPU (utime + stime from /proc) per million messages, batches of 100,
#            native and remoting alternated ROUNDS times in one broker: what the translation costs,
#            less at the mercy of this VM's throughput swings than msg/s
# Each scenario runs ROUNDS (3) alternating rounds; results under <scenario>/round-<r>/.
# Usage: perf-reports/2026-12-02-remoting/run.sh [scenario...]
#   rocketmq-rust: rocketmq-namesrv-rust and rocketmq-broker-rust on PATH (../shared/peers).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(git rev-parse --show-toplevel)
cargo build --release --manifest-path "$ROOT/Cargo.toml" -q
B=$ROOT/target/release/shardmq
DATA=$ROOT/target/perf-data
QUEUES=8
ROUNDS=${ROUNDS:-3}

broker() { # flags...
  rm -rf "$DATA"; mkdir -p "$DATA"
  "$B" broker --listen 127.0.0.1:0 --remoting-listen 127.0.0.1:0 --namesrv-listen 127.0.0.1:0 \
    --data-dir "$DATA" "$@" > "$DATA.out" 2> "$DATA.err" &
  BROKER=$!
  for _ in $(seq 100); do grep -q ready "$DATA.out" 2>/dev/null && break; sleep 0.1; done
  ADDR=$(sed 's/.*native=\([^ ]*\).*/\1/' "$DATA.out")
  NAMESRV=$(sed 's/.*namesrv=\([^ ]*\).*/\1/' "$DATA.out")
  "$B" admin --broker "$ADDR" topic create --name t --queues $QUEUES > /dev/null
}
stop() { kill -TERM "$BROKER"; wait "$BROKER"; }
have_rocketmq() { command -v rocketmq-broker-rust > /dev/null; }

# run <dir> <name> <bench args...>: one bench run, its JSON in <dir>/<name>.json
run() {
  local dir=$1 name=$2; shift 2
  echo "--- $dir $name"
  "$B" bench "$@" --json "$dir/$name.json" 2>/dev/null | tail -3 || echo "(failed)"
}

produce_scenario() { # dir, shard flags, bench cpu flags, produce flags
  local dir=$1 shards=$2 cpus=$3 flags=$4 r
  for r in $(seq "$ROUNDS"); do
    local d=$dir/round-$r; mkdir -p "$d"
    broker $shards
    run "$d" shardmq-native --broker "$ADDR" produce --topic t $cpus $flags
    # The remoting topic is created by the driver through the route (8 queues over the shards).
    run "$d" shardmq-remoting produce --peer shardmq-remoting --peer-namesrv "$NAMESRV" \
      --peer-queues $QUEUES --topic tr $cpus $flags
    stop
    if have_rocketmq && [ "$dir" != shards2 ]; then
      run "$d" rocketmq-rust produce --peer rocketmq-rust --peer-cpu 1 --peer-queues $QUEUES \
        --topic t $cpus $flags
    fi
    "$B" bench report --title "$dir round $r: shardmq native, shardmq remoting, rocketmq-rust, same run" \
      --out "$d" "$d"/*.json > /dev/null
  done
}

rt() { produce_scenario rt "--shards 1 --cpus 1" "--cpu 0" "--messages 50000 --size 1024 --batch 1 --in-flight 1"; }
batch() {
  produce_scenario batch100 "--shards 1 --cpus 1" "--cpu 0" "--messages 2000000 --size 1024 --batch 100 --in-flight 4"
  produce_scenario batch1000 "--shards 1 --cpus 1" "--cpu 0" "--messages 2000000 --size 1024 --batch 1000 --in-flight 4"
}
shards2() { produce_scenario shards2 "--shards 2 --cpus 0,1" "--threads 2 --producers 2 --cpus 0,1" "--messages 2000000 --size 1024 --batch 100 --in-flight 4"; }

cpu() {
  mkdir -p cpu; : > cpu/broker-cpu.txt
  broker --shards 1 --cpus 1
  local r sys
  for r in $(seq "$ROUNDS"); do
    for sys in native remoting; do
      local before after
      before=$(awk '{print $14 + $15}' /proc/$BROKER/stat)
      if [ $sys = native ]; then
        "$B" bench --broker "$ADDR" produce --topic t --cpu 0 --messages 2000000 --size 1024 --batch 100 --in-flight 4 > /dev/null 2>&1
      else
        "$B" bench produce --peer shardmq-remoting --peer-namesrv "$NAMESRV" --peer-queues $QUEUES --topic tr \
          --cpu 0 --messages 2000000 --size 1024 --batch 100 --in-flight 4 > /dev/null 2>&1
      fi
      after=$(awk '{print $14 + $15}' /proc/$BROKER/stat)
      echo "round $r $sys broker CPU-s per million messages: $(echo "scale=3; ($after - $before) / $(getconf CLK_TCK) / 2" | bc)" | tee -a cpu/broker-cpu.txt
    done
  done
  stop
}

for scenario in "${@:-rt batch shards2}"; do
  for s in $scenario; do $s; done
done

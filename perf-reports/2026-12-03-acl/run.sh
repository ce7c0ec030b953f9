#!/usr/bin/env bash
# What ACL costs (issue 11, item 5: at most 5% of produce throughput with batches of 100):
# the same produce workload against a broker without ACL and one with `--acl`, alternated
# ROUNDS (3) times in one run, on the native protocol (Hello signed once, each produce checked
# against the account's topic permission) and on the RocketMQ remoting port (every request signed
# by the bench's driver as Java's AclClientRPCHook does — HMAC-SHA1 over headers and body — and
# verified by the broker). 1 KB messages, batches of 100, 4 in flight, 8 queues, 1 shard on CPU 1,
# the bench on CPU 0, --flush async. Per run: msg/s from the bench and the broker's own CPU
# (utime + stime from /proc) per million messages, which this VM's throughput swings disturb less.
# Usage: perf-reports/2026-12-03-acl/run.sh   (results in results.txt, JSON under json/)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(git rev-parse --show-toplevel)
cargo build --release --manifest-path "$ROOT/Cargo.toml" -q --bin shardmq
B=$ROOT/target/release/shardmq
DATA=$ROOT/target/perf-data
ROUNDS=${ROUNDS:-3}
MESSAGES=${MESSAGES:-2000000}
cat > "$ROOT/target/perf-acl.toml" <<'ACL'
[[accounts]]
accessKey = "bench-admin"
secretKey = "bench-admin-secret"
admin = true
[[accounts]]
accessKey = "bench-user"
secretKey = "bench-user-secret"
# admin: the remoting driver creates its topic itself (UPDATE_AND_CREATE_TOPIC); an admin that
# lists topics is still held to them, so every send takes the full permission check.
admin = true
defaultGroupPerm = "SUB"
topicPerms = ["t=PUB|SUB", "tr=PUB|SUB"]
ACL

broker() { # acl|plain
  rm -rf "$DATA"; mkdir -p "$DATA"
  local acl=()
  [ "$1" = acl ] && acl=(--acl "$ROOT/target/perf-acl.toml")
  "$B" broker --listen 127.0.0.1:0 --remoting-listen 127.0.0.1:0 --namesrv-listen 127.0.0.1:0 \
    --http-listen off --shards 1 --cpus 1 --data-dir "$DATA" "${acl[@]}" > "$DATA.out" 2> "$DATA.err" &
  BROKER=$!
  for _ in $(seq 100); do grep -q ready "$DATA.out" 2>/dev/null && break; sleep 0.1; done
  ADDR=$(sed 's/.*native=\([^ ]*\).*/\1/' "$DATA.out")
  NAMESRV=$(sed 's/.*namesrv=\([^ ]*\).*/\1/' "$DATA.out")
  SHARDMQ_ACCESS_KEY=bench-admin SHARDMQ_SECRET_KEY=bench-admin-secret \
    "$B" admin --broker "$ADDR" topic create --name t --queues 8 > /dev/null
  SHARDMQ_ACCESS_KEY=bench-admin SHARDMQ_SECRET_KEY=bench-admin-secret \
    "$B" admin --broker "$ADDR" topic create --name tr --queues 8 > /dev/null
}
stop() { kill -TERM "$BROKER"; wait "$BROKER" || true; }
cpu_ticks() { awk '{print $14 + $15}' /proc/$BROKER/stat; }

# one <round> <acl|plain> <native|remoting>
one() {
  local r=$1 mode=$2 proto=$3
  local json=json/$proto-$mode-round$r.json before after
  local flags=(--cpu 0 --messages "$MESSAGES" --size 1024 --batch 100 --in-flight 4)
  local env=()
  [ "$mode" = acl ] && env=(SHARDMQ_ACCESS_KEY=bench-user SHARDMQ_SECRET_KEY=bench-user-secret)
  broker "$mode"
  before=$(cpu_ticks)
  if [ "$proto" = native ]; then
    env "${env[@]}" "$B" bench --broker "$ADDR" produce --topic t "${flags[@]}" --json "$json" > /dev/null 2>&1 || echo "(native $mode failed)"
  else
    env "${env[@]}" "$B" bench produce --peer shardmq-remoting --peer-namesrv "$NAMESRV" \
      --peer-queues 8 --topic tr "${flags[@]}" --json "$json" > /dev/null 2>&1 || echo "(remoting $mode failed)"
  fi
  after=$(cpu_ticks)
  stop
  local rate cpu
  rate=$(python3 -c "import json;print(round(json.load(open('$json'))['msgPerSec']))" 2>/dev/null || echo "?")
  cpu=$(echo "scale=3; ($after - $before) / $(getconf CLK_TCK) / ($MESSAGES / 1000000)" | bc)
  echo "round $r $proto $mode: $rate msg/s, broker CPU-s per million messages $cpu" | tee -a results.txt
}

mkdir -p json; : > results.txt
echo "commit $(git rev-parse --short HEAD), $(nproc) CPUs, $(uname -r), $(date -u +%F)" | tee -a results.txt
for r in $(seq "$ROUNDS"); do
  for proto in native remoting; do
    one "$r" plain "$proto"
    one "$r" acl "$proto"
  done
done

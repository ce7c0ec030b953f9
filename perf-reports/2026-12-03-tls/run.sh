#!/usr/bin/env bash
# TLS beside plaintext on the native protocol (issue 11, item 6): the same workloads against one
# broker's plaintext listener and its TLS listener (--tls-listen; rustls with ring, TLS 1.3,
# an ECDSA P-256 certificate made here with openssl), alternated ROUNDS (3) times in one run:
#   produce: 1 KB messages, batches of 100, 4 in flight, 8 queues  -> msg/s
#   rt:      single 1 KB messages, 1 in flight (round trip)          -> msg/s, p50, p99, p99.99
# One shard on CPU 1, the bench on CPU 0, --flush async. Also the broker's CPU per million
# messages (utime + stime from /proc) for produce. Results in results.txt, JSON under json/.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(git rev-parse --show-toplevel)
cargo build --release --manifest-path "$ROOT/Cargo.toml" -q --bin shardmq
B=$ROOT/target/release/shardmq
DATA=$ROOT/target/perf-data
ROUNDS=${ROUNDS:-3}
CERT=$ROOT/target/perf-tls.pem KEY=$ROOT/target/perf-tls.key
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
  -addext keyUsage=digitalSignature -addext extendedKeyUsage=serverAuth -keyout "$KEY" -out "$CERT" 2> /dev/null

rm -rf "$DATA"; mkdir -p "$DATA"
"$B" broker --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --tls-cert "$CERT" --tls-key "$KEY" \
  --remoting-listen off --http-listen off --shards 1 --cpus 1 --data-dir "$DATA" > "$DATA.out" 2> "$DATA.err" &
BROKER=$!
trap 'kill -TERM $BROKER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q ready "$DATA.out" 2>/dev/null && break; sleep 0.1; done
PLAIN=$(sed 's/.*native=\([^ ]*\).*/\1/' "$DATA.out")
TLS=$(sed 's/.* tls=\([^ ]*\).*/\1/' "$DATA.out")
"$B" admin --broker "$PLAIN" topic create --name t --queues 8 > /dev/null
cpu_ticks() { awk '{print $14 + $15}' /proc/$BROKER/stat; }
field() { python3 -c "import json;d=json.load(open('$1'));print(d['$2'])"; }

# one <round> <plain|tls> <produce|rt>
one() {
  local r=$1 mode=$2 kind=$3
  local json=json/$kind-$mode-round$r.json addr=$PLAIN tls=() flags before after
  [ "$mode" = tls ] && addr=$TLS && tls=(--tls-ca "$CERT")
  if [ "$kind" = produce ]; then
    flags=(--messages 2000000 --size 1024 --batch 100 --in-flight 4)
  else
    flags=(--messages 50000 --size 1024 --batch 1 --in-flight 1)
  fi
  before=$(cpu_ticks)
  "$B" bench --broker "$addr" produce --topic t --cpu 0 "${flags[@]}" "${tls[@]}" --json "$json" > /dev/null 2>&1 \
    || echo "($kind $mode failed)"
  after=$(cpu_ticks)
  local cpu
  cpu=$(echo "scale=3; ($after - $before) / $(getconf CLK_TCK) / ($(field "$json" acked) / 1000000)" | bc)
  echo "round $r $kind $mode: $(field "$json" msgPerSec | cut -d. -f1) msg/s, p50 $(field "$json" publishLatency50pct) ms, p99 $(field "$json" publishLatency99pct) ms, p99.99 $(field "$json" publishLatency9999pct) ms, broker CPU-s per 10^6 msgs $cpu" | tee -a results.txt
}

mkdir -p json; : > results.txt
echo "commit $(git rev-parse --short HEAD), $(nproc) CPUs, $(uname -r), $(date -u +%F)" | tee -a results.txt
for r in $(seq "$ROUNDS"); do
  for kind in produce rt; do
    one "$r" plain "$kind"
    one "$r" tls "$kind"
  done
done

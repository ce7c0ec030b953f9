#!/usr/bin/env bash
# Issue 9's "speed to show": metrics and retention cost the produce path nothing measurable.
# The same produce workload against a broker without them (--http-listen off --retention off)
# and with them (the metrics endpoint scraped every second by curl, and a 512 MiB size limit per
# shard so retention deletes 64 MiB segments all through the run), in ROUNDS (5) rounds that
# alternate which goes first. 1 shard on CPU 1, the bench on CPU 0, 1 KB messages in batches of
# 100, 4 in flight, 8 M messages a run (8 GB), --flush async. Also the broker's own CPU time
# (utime + stime from /proc) per million messages, which this VM's disk swings move less.
# Results: <round>/{plain,ops}.json and results.md (written by this script).
# Usage: perf-reports/2026-12-02-operations/run.sh
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(git rev-parse --show-toplevel)
cargo build --release --manifest-path "$ROOT/Cargo.toml" -q
B=$ROOT/target/release/shardmq
DATA=$ROOT/target/perf-data
ROUNDS=${ROUNDS:-5}
MESSAGES=${MESSAGES:-8000000}
# SEGMENT and RETENTION_BYTES: 64MiB and 512MiB make retention delete far more often than a
# deployment would; SEGMENT=1GiB RETENTION_BYTES=4GiB is the broker's default segment size.
SEGMENT=${SEGMENT:-64MiB}
RETENTION_BYTES=${RETENTION_BYTES:-512MiB}
COMMON=(--shards 1 --cpus 1 --segment-size "$SEGMENT" --listen 127.0.0.1:0 --remoting-listen off --namesrv-listen off)

broker() { # flags...
  rm -rf "$DATA"; mkdir -p "$DATA"
  "$B" broker --data-dir "$DATA" "${COMMON[@]}" "$@" > "$DATA.out" 2> "$DATA.err" &
  BROKER=$!
  for _ in $(seq 100); do grep -q ready "$DATA.out" 2>/dev/null && break; sleep 0.1; done
  ADDR=$(sed 's/.*native=\([^ ]*\).*/\1/' "$DATA.out")
  HTTP=$(grep -o 'http=[^ ]*' "$DATA.out" | cut -d= -f2 || true)
  "$B" admin --broker "$ADDR" topic create --name t --queues 8 > /dev/null
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$BROKER/stat"; }

one() { # round-dir name flags...
  local dir=$1 name=$2; shift 2
  broker "$@"
  local scraper="" before after
  if [ -n "$HTTP" ]; then
    (while sleep 1; do curl -s "http://$HTTP/metrics" > "$DATA.metrics" || true; done) &
    scraper=$!
  fi
  before=$(cpu_ticks)
  "$B" bench --broker "$ADDR" produce --topic t --cpu 0 --messages "$MESSAGES" --size 1024 \
    --batch 100 --in-flight 4 --json "$dir/$name.json" > /dev/null 2>&1
  after=$(cpu_ticks)
  if [ -n "$scraper" ]; then
    kill "$scraper"; wait "$scraper" 2>/dev/null || true
    curl -s "http://$HTTP/metrics" > "$dir/$name.metrics.txt"
  fi
  echo "$name $((after - before))" >> "$dir/cpu-ticks.txt"
  kill -TERM "$BROKER"; wait "$BROKER"
  echo "$name $(grep -c 'retention deleted a segment' "$DATA.out" "$DATA.err" | awk -F: '{n += $2} END {print n}')" >> "$dir/deleted.txt"
}

# VARIANTS: plain (neither), ops (both), and to tell the two apart metrics (scraped, no
# retention) and retention (deleting, no HTTP listener).
VARIANTS=${VARIANTS:-plain ops}
flags_of() {
  case $1 in
    plain) echo --http-listen off --retention off ;;
    ops) echo --http-listen 127.0.0.1:0 --retention-bytes "$RETENTION_BYTES" --retention-interval-ms 1000 ;;
    metrics) echo --http-listen 127.0.0.1:0 --retention off ;;
    retention) echo --http-listen off --retention-bytes "$RETENTION_BYTES" --retention-interval-ms 1000 ;;
  esac
}
for r in $(seq "$ROUNDS"); do
  d=round-$r; rm -rf "$d"; mkdir -p "$d"
  order=$VARIANTS; [ $((r % 2)) -eq 0 ] && order=$(echo "$VARIANTS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for which in $order; do
    echo "--- round $r $which"
    # shellcheck disable=SC2046
    one "$d" "$which" $(flags_of "$which")
  done
done

SEGMENT=$SEGMENT RETENTION_BYTES=$RETENTION_BYTES python3 - "$ROUNDS" "$MESSAGES" $VARIANTS > results.md <<'PY'
import json, os, sys, statistics
rounds, messages, variants = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
others = [v for v in variants if v != "plain"]
print("# Metrics and retention on the produce path: same run, with and without\n")
print(f"{messages:,} messages of 1 KB a run, batches of 100, 4 in flight; 1 shard on CPU 1, bench on CPU 0; segments of {os.environ.get('SEGMENT', '64MiB')}, retention at {os.environ.get('RETENTION_BYTES', '512MiB')}.")
print("msg/s per variant; ÷ plain within the round; broker CPU seconds per million messages.\n")
print("| round | " + " | ".join(f"{v} msg/s" for v in variants) + " | " + " | ".join(f"{v} ÷ plain" for v in others) + " | " + " | ".join(f"{v} CPU" for v in variants) + " | segments deleted |")
print("|" + "---|" * (2 + 2 * len(variants) + len(others)))
ratios = {v: [] for v in others}; cpu_ratios = {v: [] for v in others}
for r in range(1, rounds + 1):
    d = f"round-{r}"
    rate = {v: json.load(open(f"{d}/{v}.json"))["msgPerSec"] for v in variants}
    ticks = dict(l.split() for l in open(f"{d}/cpu-ticks.txt"))
    cpu = {v: int(ticks[v]) / 100 / (messages / 1e6) for v in variants}
    deleted = []
    try:  # counted from the broker's log (every variant), else from its last scrape
        deleted = [f"{v}: {n}" for v, n in (l.split() for l in open(f"{d}/deleted.txt"))]
    except FileNotFoundError:
        for v in variants:
            try:
                for line in open(f"{d}/{v}.metrics.txt"):
                    if line.startswith("shardmq_segments_deleted_total"):
                        deleted.append(f"{v}: {int(float(line.split()[-1]))}")
            except FileNotFoundError:
                pass
    for v in others:
        ratios[v].append(rate[v] / rate["plain"]); cpu_ratios[v].append(cpu[v] / cpu["plain"])
    print(f"| {r} | " + " | ".join(f"{rate[v]:,.0f}" for v in variants) + " | " + " | ".join(f"{rate[v]/rate['plain']:.3f}" for v in others) + " | " + " | ".join(f"{cpu[v]:.3f}" for v in variants) + f" | {', '.join(deleted) or '-'} |")
print()
for v in others:
    print(f"- median {v} ÷ plain: throughput {statistics.median(ratios[v]):.3f}, broker CPU per message {statistics.median(cpu_ratios[v]):.3f}")
PY
cat results.md

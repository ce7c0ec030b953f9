#!/usr/bin/env bash
# Issue 10's table, shardmq beside Apache Iggy in one run: each server on CPU 1 (shardmq one
# shard, Iggy one shard), the bench on CPU 0, 1 KB messages, the same workload engine for both
# (`shardmq bench … --peer iggy|iggy-fsync`), ROUNDS rounds alternating which goes first.
# Rows (bench command; shardmq flag; Iggy peer):
#   async-b1000   produce, batches of 1000, 4 in flight   --flush async   iggy        (both ack from memory)
#   drain         consume: fill DRAIN messages, drain every queue from its start at once (both
#                 as shipped: Iggy reads its page cache, shardmq its 64 MiB hot tail and the disk
#                 while its writer still writes the fill's backlog)
#   drain-disk    the same, from disk on both: shardmq's writer done (3 s), then the page cache
#                 written back and dropped (`bench consume --drop-caches`)
#   drain-memory  the same, from memory on both: shardmq with --hot-tail 3GiB (the whole fill),
#                 Iggy from its page cache
#   rtt           produce, batches of 1, 1 in flight (round trip, send to ack)  --flush async  iggy
#   sync-b100     produce, batches of 100, 4 in flight    --flush sync    iggy-fsync  (ack after fdatasync on both)
#   sync-b1000    produce, batches of 1000, 4 in flight   --flush sync    iggy-fsync
# Bytes to the device per run: the server's /proc/<pid>/io write_bytes (shardmq; Iggy's
# server is started by the bench, its bytes are read the same way from its pid).
# Needs: a release build (cargo build --release) and IGGY_SERVER=path/to/iggy-server (README).
# The disk of this VM differs from day to day (2026-12-03: 1 MiB write + fdatasync ~0.6 GB/s;
# 2026-12-04: ~1.7 GB/s), so the run starts by recording it with fio (Debian's fio) in disk.txt.
# Usage: IGGY_SERVER=… [HOT_TAIL=auto] [ROWS=…] perf-reports/2026-12-04-hot-tail-auto/run.sh
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(git rev-parse --show-toplevel)
B=$ROOT/target/release/shardmq
: "${IGGY_SERVER:?path to iggy-server}"
export IGGY_SERVER
DATA=$ROOT/target/perf-data
ROUNDS=${ROUNDS:-3}
ROWS=${ROWS:-async-b1000 drain drain-disk drain-memory rtt sync-b100 sync-b1000}
N_ASYNC=${N_ASYNC:-3000000}; N_DRAIN=${N_DRAIN:-2000000}; N_RTT=${N_RTT:-50000}
N_SYNC100=${N_SYNC100:-1500000}; N_SYNC1000=${N_SYNC1000:-3000000}

# The bench's arguments of a row: command and workload.
workload() {
  case $1 in
    async-b1000) echo produce --messages "$N_ASYNC" --batch 1000 --in-flight 4 ;;
    drain | drain-memory) echo consume --messages "$N_DRAIN" --fill-batch 1000 ;;
    drain-disk) echo consume --messages "$N_DRAIN" --fill-batch 1000 --drop-caches ;;
    rtt) echo produce --messages "$N_RTT" --batch 1 --in-flight 1 ;;
    sync-b100) echo produce --messages "$N_SYNC100" --batch 100 --in-flight 4 ;;
    sync-b1000) echo produce --messages "$N_SYNC1000" --batch 1000 --in-flight 4 ;;
  esac
}
flush_of() { case $1 in sync-*) echo sync ;; *) echo async ;; esac; }
iggy_of() { case $1 in sync-*) echo iggy-fsync ;; *) echo iggy ;; esac; }
hot_tail_of() { case $1 in drain-memory) echo 3GiB ;; *) echo "${HOT_TAIL:-auto}" ;; esac; }

# Sums write_bytes of the newest process named $1 while "$@" runs in the background.
watch_io() { # name outfile cmd...
  local name=$1 out=$2; shift 2
  "$@" & local job=$!
  local pid="" last=0
  while kill -0 "$job" 2>/dev/null; do
    [ -z "$pid" ] && pid=$(pgrep -n -x "$name" || true)
    if [ -n "$pid" ] && [ -r "/proc/$pid/io" ]; then
      last=$(awk '/^write_bytes/ {print $2}' "/proc/$pid/io" 2>/dev/null || echo "$last")
    fi
    sleep 0.2
  done
  wait "$job"
  echo "$last" > "$out"
}

shardmq_row() { # dir row
  local dir=$1 row=$2
  rm -rf "$DATA"; mkdir -p "$DATA"
  "$B" broker --data-dir "$DATA" --shards 1 --cpus 1 --flush "$(flush_of "$row")" --hot-tail "$(hot_tail_of "$row")" \
    --listen 127.0.0.1:0 --remoting-listen off --namesrv-listen off --http-listen off \
    > "$DATA.out" 2> "$DATA.err" &
  local broker=$!
  for _ in $(seq 100); do grep -q ready "$DATA.out" 2>/dev/null && break; sleep 0.1; done
  local addr; addr=$(sed 's/.*native=\([^ ]*\).*/\1/' "$DATA.out")
  "$B" admin --broker "$addr" topic create --name t --queues 8 > /dev/null
  case $row in drain*) # the peer fills as part of its consume run; shardmq first
    "$B" bench --broker "$addr" produce --messages "$N_DRAIN" --batch 1000 --in-flight 4 \
      --topic t --size 1024 --cpu 0 > "$dir/shardmq-$row-fill.txt" 2>&1 ;;
  esac
  [ "$row" = drain-disk ] && sleep 3 # the writer's backlog (at most the 1 GiB write-behind)
  local before; before=$(awk '/^write_bytes/ {print $2}' "/proc/$broker/io")
  # shellcheck disable=SC2046
  "$B" bench --broker "$addr" $(workload "$row") --topic t --size 1024 --cpu 0 \
    --json "$dir/shardmq-$row.json" > "$dir/shardmq-$row.txt" 2>&1
  local after; after=$(awk '/^write_bytes/ {print $2}' "/proc/$broker/io")
  echo $((after - before)) > "$dir/shardmq-$row.io"
  kill -TERM "$broker"; wait "$broker"
}

iggy_row() { # dir row
  local dir=$1 row=$2
  # shellcheck disable=SC2046
  watch_io iggy-server "$dir/iggy-$row.io" "$B" bench $(workload "$row") --peer "$(iggy_of "$row")" \
    --peer-cpu 1 --peer-queues 8 --topic t --size 1024 --cpu 0 --json "$dir/iggy-$row.json" \
    > "$dir/iggy-$row.txt" 2>&1
}

pgrep -x iggy-server > /dev/null && { echo "an iggy-server is running: stop it first"; exit 1; }

# The disk as fio sees it: sequential O_DIRECT writes of 1 MiB and of 128 KiB at queue depth 1,
# each followed by an fdatasync, into a fresh fallocated file (unwritten extents, as a spare
# segment is) and into one already written (overwrite).
disk_probe() {
  local f=$DATA.fio
  for bs in 1m 128k; do for ow in 0 1; do
    rm -f "$f"
    fio --name=probe --filename="$f" --size=1g --bs=$bs --rw=write --direct=1 --ioengine=io_uring \
      --iodepth=1 --fallocate=native --overwrite=$ow --fdatasync=1 --output-format=json |
      python3 -c "import json,sys; w=json.load(sys.stdin)['jobs'][0]['write']; print('$bs', 'overwrite' if $ow else 'fallocated', round(w['bw_bytes']/1e6), 'MB/s with an fdatasync after each write')"
  done; done
  rm -f "$f"
}
mkdir -p "$(dirname "$DATA")"
disk_probe | tee disk.txt
for r in $(seq "$ROUNDS"); do
  d=round-$r; rm -rf "$d"; mkdir -p "$d"
  for row in $ROWS; do
    order="shardmq iggy"; [ $((r % 2)) -eq 0 ] && order="iggy shardmq"
    for which in $order; do
      echo "--- round $r $row $which"
      "${which}_row" "$d" "$row"
    done
  done
done

python3 - "$ROUNDS" $ROWS > results.md <<'PY'
import json, sys
rounds, rows = int(sys.argv[1]), sys.argv[2:]
print("# shardmq beside Apache Iggy, same run\n")
print("msg/s of each; shardmq ÷ Iggy; latency per request (send to ack; per pull for the drain) in µs; MB written to the device by the server.\n")
print("| row | round | shardmq msg/s | Iggy msg/s | ÷ | shardmq p50 / p99 / p99.99 / max | Iggy p50 / p99 / p99.99 / max | MB to disk shardmq / Iggy |")
print("|---|---|---|---|---|---|---|---|")
def lat(j):
    l = j.get("latencyUs", {})
    return " / ".join(str(round(l.get(k, 0))) for k in ("p50", "p99", "p9999", "max"))
for row in rows:
    for r in range(1, rounds + 1):
        d = f"round-{r}"
        s = json.load(open(f"{d}/shardmq-{row}.json")); i = json.load(open(f"{d}/iggy-{row}.json"))
        io = [int(open(f"{d}/{w}-{row}.io").read().strip() or 0) / 1e6 for w in ("shardmq", "iggy")]
        print(f"| {row} | {r} | {s['msgPerSec']:,.0f} | {i['msgPerSec']:,.0f} | {s['msgPerSec']/i['msgPerSec']:.2f} | {lat(s)} | {lat(i)} | {io[0]:,.0f} / {io[1]:,.0f} |")
PY
cat results.md

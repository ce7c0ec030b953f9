#!/usr/bin/env bash
# Used for the A/Bs in README.md: BIN FLUSH N BATCH [broker flags]; PRE_SLEEP=s waits before the bench (a spare being zeroed).
# Read its output with grep, not head: a closed pipe stops the script before it stops the broker.
# one.sh BIN FLUSH N BATCH [extra broker flags...] : one shardmq produce run, prints summary + io
set -u
B=$1; FLUSH=$2; N=$3; BATCH=$4; shift 4
DATA=${DATA:-$(git rev-parse --show-toplevel)/target/perf-one}
rm -rf $DATA; mkdir -p $DATA
$B broker --data-dir $DATA --shards 1 --cpus 1 --flush $FLUSH --listen 127.0.0.1:0 --remoting-listen off --namesrv-listen off --http-listen off "$@" > $DATA.out 2> $DATA.err &
broker=$!
for _ in $(seq 100); do grep -q ready $DATA.out 2>/dev/null && break; sleep 0.1; done
addr=$(sed 's/.*native=\([^ ]*\).*/\1/' $DATA.out)
$B admin --broker $addr topic create --name t --queues 8 > /dev/null
[ -n "${PRE_SLEEP:-}" ] && sleep $PRE_SLEEP
before=$(awk '/^write_bytes/ {print $2}' /proc/$broker/io)
$B bench --broker $addr produce --messages $N --batch $BATCH --in-flight 4 --topic t --size 1024 --cpu 0 ${BENCH_EXTRA:-} 2>&1 | tail -2
after=$(awk '/^write_bytes/ {print $2}' /proc/$broker/io)
echo "MB to disk $(( (after-before)/1000000 ))"
[ -n "${HOLD:-}" ] && { echo "broker pid $broker"; eval "$HOLD"; }
kill -TERM $broker; wait $broker

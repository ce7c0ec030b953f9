#!/usr/bin/env bash
# One run: <binary> <label> <messages> <batch>; 1 KB messages, 4 in flight, 8 queues, 1 shard on
# CPU 1, bench on CPU 0, --flush async, --write-behind auto (1 GiB here), default 1 GiB segments.
# Prints msg/s, latency (ms), the broker's peak RSS and its "slow request" (>= 100 ms) count.
B=$1; ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel); DATA=$ROOT/target/perf-spares
rm -rf $DATA; mkdir -p $DATA
$B broker --listen 127.0.0.1:0 --remoting-listen off --namesrv-listen off --http-listen off --shards 1 --cpus 1 --data-dir $DATA --write-behind auto > $DATA.out 2>$DATA.err &
BP=$!; for _ in $(seq 100); do grep -q ready $DATA.out 2>/dev/null && break; sleep 0.1; done
A=$(sed 's/.*native=\([^ ]*\).*/\1/' $DATA.out)
$B admin --broker $A topic create --name t --queues 8 >/dev/null
$B bench --broker $A produce --topic t --cpu 0 --messages $3 --size 1024 --batch $4 --in-flight 4 --json /tmp/spares.json >/dev/null 2>&1
echo "$2 msgs=$3 batch=$4: $(python3 -c "import json;d=json.load(open('/tmp/spares.json'));print(round(d['msgPerSec']),'msg/s p99',d['publishLatency99pct'],'p99.99',d['publishLatency9999pct'],'max',d['publishLatencyMax'])") peakRSS=$(grep VmHWM /proc/$BP/status | awk '{print $2/1024 " MiB"}') slow=$(grep -c 'slow request' $DATA.err)"
kill -TERM $BP; wait $BP

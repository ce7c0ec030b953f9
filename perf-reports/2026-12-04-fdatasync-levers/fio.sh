#!/usr/bin/env bash
# Device costs behind durable produce: 1 MiB (and 100 KiB) O_DIRECT appends, each followed by
# an fdatasync, into (a) a fresh fallocated file (unwritten extents, what shardmq's spares are),
# (b) a file already written (overwrite, what a recycled or pre-zeroed segment is); and the
# same with O_DSYNC writes instead of a separate fdatasync.
set -u
D=${D:-$(git rev-parse --show-toplevel)/target/fio}
mkdir -p $D
for bs in 1m 128k; do
for layout in fallocated overwrite; do
for mode in fdatasync dsync; do
  rm -f $D/f
  ow=0; [ $layout = overwrite ] && ow=1
  extra="--fdatasync=1"; [ $mode = dsync ] && extra="--sync=dsync"
  out=$(fio --name=j --filename=$D/f --size=1g --bs=$bs --rw=write --direct=1 --ioengine=io_uring \
     --iodepth=1 --fallocate=native --overwrite=$ow $extra --output-format=json 2>/dev/null)
  echo "$out" | python3 -c "
import json,sys
j=json.load(sys.stdin)['jobs'][0]['write']
print('$bs $layout $mode', round(j['bw_bytes']/1e6), 'MB/s', 'iops', round(j['iops']), 'clat p50/p99 us', round(j['clat_ns']['percentile']['50.000000']/1e3), round(j['clat_ns']['percentile']['99.000000']/1e3))
"
done; done; done
rm -f $D/f

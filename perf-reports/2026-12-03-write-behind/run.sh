#!/usr/bin/env bash
# The write-behind budget (issue 10, item 3): the old bound (half the 64 MiB hot tail, 32 MiB)
# against `--write-behind auto` (1 GiB per shard on this 24 GiB machine with 1 shard), alternated,
# on a 500 MB burst in batches of 100 and a 2 GB run in batches of 1000.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release -q --bin shardmq
for r in 1 2; do for wb in 32MiB auto; do ./one.sh 500000 100 $wb; done; done | tee results.txt
for r in 1 2; do for wb in 32MiB auto; do ./one.sh 2000000 1000 $wb; done; done | tee -a results.txt

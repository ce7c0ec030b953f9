#!/usr/bin/env bash
# Spares made by their own task (issue 10, item 3) against spares made in the writer's queue:
# OLD and NEW are two builds of `shardmq` (see README.md for the commits), alternated, 3 rounds,
# 3 GB in batches of 1000 (past the 1 GiB budget, 2 rolls) per run.
set -euo pipefail
cd "$(dirname "$0")"
: "${OLD:?path of the old build}" "${NEW:?path of the new build}"
for r in 1 2 3; do ./one.sh "$OLD" old 3000000 1000; ./one.sh "$NEW" new 3000000 1000; done | tee results.txt

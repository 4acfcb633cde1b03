#!/usr/bin/env bash
# Run molecule scenarios in order; the lab engine, images and registry are prepared first.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
"$repo/lab/bin/lab.sh" prepare
for s in "$@"; do
  echo "=== molecule test -s $s"
  start=$(date +%s)
  molecule test -s "$s"
  echo "=== molecule $s: $(( $(date +%s) - start )) s"
done

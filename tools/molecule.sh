#!/usr/bin/env bash
# Run molecule scenarios in order; the lab engine, images and registry are prepared first.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# Build only the lab images the scenarios need: the host and registry images, plus the
# folders a scenario lists in molecule/<scenario>/lab-images (one name per line).
images="host registry"
for s in "$@"; do
  [ -f "molecule/$s/lab-images" ] && images="$images $(tr '\n' ' ' < "molecule/$s/lab-images")"
done
# shellcheck disable=SC2086
"$repo/lab/bin/lab.sh" prepare $images
for s in "$@"; do
  echo "=== molecule test -s $s"
  start=$(date +%s)
  # The instance's /var/lib/docker volume must start empty and not outlive the scenario.
  docker volume rm -f "aistack-mol-$s-docker" >/dev/null 2>&1 || true
  molecule test -s "$s"
  docker volume rm -f "aistack-mol-$s-docker" >/dev/null 2>&1 || true
  echo "=== molecule $s: $(( $(date +%s) - start )) s"
done

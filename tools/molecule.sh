#!/usr/bin/env bash
# Run molecule scenarios (`molecule test -s <scenario>`); the lab engine, images and registry are
# prepared first.
#   tools/molecule.sh [--prepare-only] SCENARIO...
# MOLECULE_JOBS (default 2) scenarios run at the same time, started in the order given (list the
# long ones first); MOLECULE_JOBS_LATER at a time once the file MOLECULE_JOBS_WHEN exists. Most of a scenario's time is spent waiting (apt, image pulls, services
# starting, health checks), so two at a time shorten the stage on a 2-core machine. With more
# than one job, each scenario's output goes to build/molecule/<scenario>.log and is printed
# when it ends; MOLECULE_JOBS=1 streams it. Every scenario runs; the exit status is non-zero
# when any failed, and the summary names them.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# --prepare-only: build and push the scenarios' lab images, run nothing (bench/run.sh).
prepare_only=0
if [ "${1:-}" = "--prepare-only" ]; then prepare_only=1; shift; fi
[ $# -gt 0 ] || { echo "usage: tools/molecule.sh [--prepare-only] SCENARIO..." >&2; exit 2; }
for s in "$@"; do
  [ -f "molecule/$s/molecule.yml" ] || { echo "no molecule scenario '$s' (molecule/$s/molecule.yml)" >&2; exit 2; }
done
# Build only the lab images the scenarios need: the host and registry images, plus the
# folders a scenario lists in molecule/<scenario>/lab-images (one name per line).
# Images listed in molecule/<scenario>/lab-images-slow (llama-server: a cold cache compiles
# llama.cpp for minutes) are prepared in the background while the other scenarios run; only the
# scenarios that list them wait for that build.
images="host registry"
slow=""
for s in "$@"; do
  [ -f "molecule/$s/lab-images" ] && images="$images $(tr '\n' ' ' < "molecule/$s/lab-images")"
  [ -f "molecule/$s/lab-images-slow" ] && slow="$slow $(tr '\n' ' ' < "molecule/$s/lab-images-slow")"
done
if [ "$prepare_only" = 1 ]; then
  # shellcheck disable=SC2086
  exec "$repo/lab/bin/lab.sh" prepare $images $slow
fi
# shellcheck disable=SC2086
"$repo/lab/bin/lab.sh" prepare $images

jobs=${MOLECULE_JOBS:-2}
logdir="$repo/build/molecule"
mkdir -p "$logdir"
slow_rc="$logdir/.slow-images.rc"
rm -f "$slow_rc"
if [ -n "${slow// }" ]; then
  echo "=== molecule: preparing the slow lab images in the background:$slow (log: build/molecule/slow-images.log)"
  # shellcheck disable=SC2086
  ( rc=0; "$repo/lab/bin/lab.sh" prepare $slow >"$logdir/slow-images.log" 2>&1 || rc=$?; echo "$rc" >"$slow_rc" ) &
fi
wait_slow_images() { # a scenario that lists slow images waits for their background build
  while [ ! -f "$slow_rc" ]; do sleep 5; done
  [ "$(cat "$slow_rc")" = 0 ] || { echo "the slow lab images failed to build: build/molecule/slow-images.log" >&2; tail -n 30 "$logdir/slow-images.log" >&2; return 1; }
}

remove_volumes() { # the /var/lib/docker volumes of a scenario's instances: aistack-mol-<s>[-<name>]-docker
  docker volume ls -q | grep -E "^aistack-mol-$1(-[a-z0-9]+)?-docker\$" | xargs -r docker volume rm -f >/dev/null 2>&1 || true
}

run_one() { # run_one SCENARIO: the whole molecule test of one scenario, timed
  local s=$1 start rc=0
  start=$(date +%s)
  # The instance's /var/lib/docker volume must start empty and not outlive the scenario (an
  # aborted run may have left the instance, which would keep its volume in use).
  if [ -f "molecule/$s/lab-images-slow" ]; then
    wait_slow_images || { echo "$(( $(date +%s) - start ))" >"$logdir/$s.time"; return 1; }
    echo "=== molecule $s: slow lab images ready after $(( $(date +%s) - start )) s"
  fi
  docker rm -f "aistack-mol-$s" >/dev/null 2>&1 || true
  remove_volumes "$s"
  molecule test -s "$s" || rc=$?
  remove_volumes "$s"
  echo "$(( $(date +%s) - start ))" >"$logdir/$s.time"
  return "$rc"
}

failed=()
excerpt() { # excerpt SCENARIO: the last failed task of its log, repeated after the summary so that a
  # CI log's tail says why (ignored failures come earlier in a log; the one that stopped it is last)
  local log="$logdir/$1.log" n
  [ -f "$log" ] || return 0
  n=$(grep -n -E 'FAILED! =>|(fatal|failed): \[' "$log" | tail -n 1 | cut -d: -f1)
  if [ -z "$n" ]; then
    echo "=== molecule $1: last 40 lines of build/molecule/$1.log"; tail -n 40 "$log"
  else
    echo "=== molecule $1: its last failure, build/molecule/$1.log line $n"
    sed -n "$(( n > 30 ? n - 30 : 1 )),$(( n + 15 ))p" "$log" | cut -c1-3000
  fi
}
report() { # report SCENARIO RC: its result line; a failure joins the summary
  if [ "$2" -eq 0 ]; then echo "=== molecule $1: ok in $(cat "$logdir/$1.time") s"
  else echo "=== molecule $1: FAILED after $(cat "$logdir/$1.time") s"; failed+=("$1"); fi
}
if [ "$jobs" -le 1 ]; then
  for s in "$@"; do
    echo "=== molecule test -s $s (log: build/molecule/$s.log)"
    rc=0; run_one "$s" > >(tee "$logdir/$s.log") 2>&1 || rc=$?
    report "$s" "$rc"
  done
else
  # MOLECULE_JOBS_LATER scenarios at a time once the file MOLECULE_JOBS_WHEN exists: tools/test.sh
  # runs pytest beside molecule and lets molecule take pytest's share when pytest ends.
  limit() {
    if [ -n "${MOLECULE_JOBS_WHEN:-}" ] && [ -e "$MOLECULE_JOBS_WHEN" ]; then echo "${MOLECULE_JOBS_LATER:-$jobs}"
    else echo "$jobs"; fi
  }
  declare -A pids=()
  # reap: wait until a scenario ends, then print its log and result; reap free: also return when
  # the limit rose above the running count. Either way it sleeps between looks (a loop that
  # returned at once whenever fewer ran than the limit spun a core through the list's tail).
  reap() {
    local pid rc s
    while :; do
      for pid in "${!pids[@]}"; do
        kill -0 "$pid" 2>/dev/null && continue
        rc=0; wait "$pid" || rc=$?
        s=${pids[$pid]}
        unset "pids[$pid]"
        echo "=== molecule test -s $s (log: build/molecule/$s.log)"
        cat "$logdir/$s.log"
        report "$s" "$rc"
        return 0
      done
      [ "${1:-}" = free ] && [ "${#pids[@]}" -lt "$(limit)" ] && return 0
      sleep 5
    done
  }
  for s in "$@"; do
    while [ "${#pids[@]}" -ge "$(limit)" ]; do reap free; done
    echo "=== molecule $s: started ($(date +%H:%M:%S), ${#pids[@]} running)"
    run_one "$s" >"$logdir/$s.log" 2>&1 &
    pids[$!]=$s
  done
  while [ "${#pids[@]}" -gt 0 ]; do reap; done
fi
if [ "${#failed[@]}" -gt 0 ]; then
  for s in "${failed[@]}"; do excerpt "$s"; done
  echo "=== molecule: failed: ${failed[*]}"
  exit 1
fi
echo "=== molecule: all ok: $*"

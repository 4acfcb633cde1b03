#!/usr/bin/env bash
# `make test`: every gate, non-zero when any fails. Times each stage.
# The quick gates run in order and stop at the first failure. Then pytest and molecule run side
# by side: both spend much of their time waiting on services (servers starting, health checks,
# package downloads), so on a 2-core machine the pair ends well before the two in sequence would.
# Molecule streams its summary lines; pytest's output is printed whole when it ends
# (build/test/pytest.log). PYTEST_SERIAL=1 runs them one after the other instead.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
passed=0
t0=$(date +%s)
stage() {
  local name=$1; shift
  local start; start=$(date +%s)
  echo "=== [$name] $*"
  if ! "$@"; then
    echo "=== [$name] FAILED after $(( $(date +%s) - start )) s"
    echo "stages: $passed passed, 1 failed"
    exit 1
  fi
  passed=$((passed + 1))
  echo "=== [$name] ok in $(( $(date +%s) - start )) s"
}
stage yamllint yamllint -s .
stage ansible-lint ansible-lint --profile production
stage argument-specs python tools/check_argument_specs.py
stage sanity tools/sanity.sh
stage build tools/build_check.sh

# The Kubernetes tier's tests (tests/integration/test_k8s_chart.py) need a control plane built from
# the Go module proxy; they run when lab/artifacts/k8s/build.sh's binaries are cached (make
# k8s-artifacts builds them once) and are skipped, saying so, when they are not.
if K8S_CACHED_ONLY=1 lab/artifacts/k8s/build.sh >/dev/null 2>&1; then
  echo "=== [k8s] control plane cached: the Kubernetes tier's tests run"
else
  echo "=== [k8s] control plane not built: the Kubernetes tier's tests are skipped (make k8s-artifacts builds it)"
fi

scenarios=${MOLECULE_SCENARIOS:-logpipeline registry split bluegreen pgvector milvus monitoring llm_server nfs docker nginx mariadb redis base gpu}
pytest_cmd=(python -m pytest -p no:cacheprovider tests/unit tests/integration ${PYTEST_ARGS:-})
# shellcheck disable=SC2086
molecule_cmd=(tools/molecule.sh $scenarios)
if [ "${PYTEST_SERIAL:-0}" = 1 ]; then
  stage pytest "${pytest_cmd[@]}"
  stage molecule "${molecule_cmd[@]}"
else
  logdir="$repo/build/test"
  mkdir -p "$logdir"
  rm -f "$logdir/pytest.rc" "$logdir/pytest.time"
  start=$(date +%s)
  echo "=== [pytest] ${pytest_cmd[*]} (beside molecule; log: build/test/pytest.log)"
  (
    rc=0
    "${pytest_cmd[@]}" >"$logdir/pytest.log" 2>&1 || rc=$?
    echo "$rc" >"$logdir/pytest.rc"
    echo "$(( $(date +%s) - start ))" >"$logdir/pytest.time"
    { echo "=== [pytest] output"; cat "$logdir/pytest.log"; } | sed 's/^/[pytest] /'
  ) &
  pytest_pid=$!
  echo "=== [molecule] ${molecule_cmd[*]}"
  # pytest's share of the machine goes to one more molecule scenario when pytest ends.
  mrc=0
  MOLECULE_JOBS_WHEN="$logdir/pytest.rc" MOLECULE_JOBS_LATER=$(( ${MOLECULE_JOBS:-2} + 1 )) \
    "${molecule_cmd[@]}" || mrc=$?
  mtime=$(( $(date +%s) - start ))
  wait "$pytest_pid" || true
  prc=$(cat "$logdir/pytest.rc" 2>/dev/null || echo 1)
  failed=0
  if [ "$prc" -eq 0 ]; then passed=$((passed + 1)); echo "=== [pytest] ok in $(cat "$logdir/pytest.time") s"
  else failed=$((failed + 1)); echo "=== [pytest] FAILED after $(cat "$logdir/pytest.time" 2>/dev/null || echo '?') s"; fi
  if [ "$mrc" -eq 0 ]; then passed=$((passed + 1)); echo "=== [molecule] ok in $mtime s"
  else failed=$((failed + 1)); echo "=== [molecule] FAILED after $mtime s"; fi
  if [ "$failed" -gt 0 ]; then
    echo "stages: $passed passed, $failed failed"
    exit 1
  fi
fi
echo "=== make test: all stages ok in $(( $(date +%s) - t0 )) s"
echo "stages: $passed passed, 0 failed"

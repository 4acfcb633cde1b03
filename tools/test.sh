#!/usr/bin/env bash
# `make test`: every gate, in order, non-zero on the first failure. Times each stage.
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
stage pytest python -m pytest -p no:cacheprovider tests/unit tests/integration ${PYTEST_ARGS:-}
stage molecule tools/molecule.sh ${MOLECULE_SCENARIOS:-logpipeline bluegreen pgvector milvus monitoring docker nginx mariadb redis base}
echo "=== make test: all stages ok in $(( $(date +%s) - t0 )) s"
echo "stages: $passed passed, 0 failed"

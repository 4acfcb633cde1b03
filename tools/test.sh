#!/usr/bin/env bash
# `make test`: every gate, in order, non-zero on the first failure. Times each stage.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
stage() {
  local name=$1; shift
  local start; start=$(date +%s)
  echo "=== [$name] $*"
  "$@"
  echo "=== [$name] ok in $(( $(date +%s) - start )) s"
}
stage yamllint yamllint -s .
stage ansible-lint ansible-lint --profile production
stage argument-specs python tools/check_argument_specs.py
stage sanity tools/sanity.sh
stage build make -s build
stage pytest python -m pytest -p no:cacheprovider tests/unit tests/integration ${PYTEST_ARGS:-}
stage molecule tools/molecule.sh ${MOLECULE_SCENARIOS:-base docker}

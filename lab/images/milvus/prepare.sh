#!/usr/bin/env bash
# Fill the build context: the PyPI `milvus` wheel (Milvus 2.3.5 "lite", a real Milvus server
# binary and its libraries, lzma-compressed). Downloaded on the host, whose pip reaches the
# package mirror; the image build itself never touches the network for it. *.whl is gitignored.
set -euo pipefail
cd "$(dirname "$0")"
version=2.3.5
if ls wheels/milvus-"$version"-*.whl >/dev/null 2>&1; then exit 0; fi
pip=pip
[ -x ../../../.venv/bin/pip ] && pip=../../../.venv/bin/pip
mkdir -p wheels
"$pip" download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.11 \
  -d wheels "milvus==$version"
ls wheels/milvus-"$version"-*.whl >/dev/null

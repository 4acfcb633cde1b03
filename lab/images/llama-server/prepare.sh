#!/usr/bin/env bash
# Fill the build context (./context, gitignored) with the llama-server binary that
# lab/artifacts/llama/build.sh compiles from PyPI's llama-cpp-python sdist (vendor/llama.cpp),
# cached under ${AISTACK_CACHE:-/var/cache/aistack}/llama/<inputs hash>/: a rebuild of the image
# does not compile again while the inputs are unchanged. The copy is refreshed only when the
# compiled binary changes, so the image's input hash stays stable across runs.
set -euo pipefail
cd "$(dirname "$0")"
build=../../artifacts/llama/build.sh
[ -x "$build" ] || { echo "missing $build (the llama-server build)" >&2; exit 1; }
src=$("$build" | tail -n 1)
[ -x "$src/app/llama-server" ] && [ -f "$src/VERSION" ] || { echo "$build printed '$src', which has no app/llama-server or VERSION" >&2; exit 1; }
want=$(sha256sum "$src/app/llama-server" | cut -c1-16)
if [ -f context/.source ] && [ "$(cat context/.source)" = "$want" ]; then exit 0; fi
rm -rf context.tmp
mkdir -p context.tmp/app
cp "$src/app/llama-server" context.tmp/app/llama-server
cp "$src/VERSION" context.tmp/VERSION
echo "$want" >context.tmp/.source
rm -rf context
mv context.tmp context

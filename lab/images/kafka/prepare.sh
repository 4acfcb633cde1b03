#!/usr/bin/env bash
# Fill the build context (./context, gitignored): the Kafka jars, logging configuration and
# VERSION that lab/artifacts/kafka/build.sh assembles from Maven Central (cached under
# ${AISTACK_CACHE:-/var/cache/aistack}, keyed by version). The copy is refreshed only when the
# assembled directory's file list changes, so the image's input hash stays stable across runs.
set -euo pipefail
cd "$(dirname "$0")"
build=../../artifacts/kafka/build.sh
[ -x "$build" ] || { echo "missing $build (the Kafka artifact build)" >&2; exit 1; }
src=$("$build" | tail -n 1)
[ -d "$src/libs" ] && [ -f "$src/VERSION" ] || { echo "$build printed '$src', which has no libs/ or VERSION" >&2; exit 1; }
want=$(cd "$src" && find libs config VERSION -type f -printf '%p %s\n' | sort | sha256sum | cut -c1-16)
if [ -f context/.source ] && [ "$(cat context/.source)" = "$want" ]; then exit 0; fi
rm -rf context.tmp
mkdir -p context.tmp
cp -r "$src/libs" context.tmp/libs
mkdir -p context.tmp/config
cp "$src"/config/log4j2.yaml "$src"/config/tools-log4j2.yaml context.tmp/config/
cp "$src/VERSION" context.tmp/VERSION
echo "$want" >context.tmp/.source
rm -rf context
mv context.tmp context

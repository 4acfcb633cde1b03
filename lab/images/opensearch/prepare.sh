#!/usr/bin/env bash
# Fill the build context (./context, gitignored): the OpenSearch home with the k-NN plugin that
# lab/artifacts/opensearch/build.sh assembles from Maven Central (cached under
# ${AISTACK_CACHE:-/var/cache/aistack}), and the Java runtime its JAVA_HOME_HINT names (a JDK of this
# machine: Debian 12 has only OpenJDK 17, and OpenSearch 3.x needs 21+). Copied again only when the
# source's file list changes, so the image's input hash stays stable across runs.
set -euo pipefail
cd "$(dirname "$0")"
build=../../artifacts/opensearch/build.sh
[ -x "$build" ] || { echo "missing $build (the OpenSearch artifact build)" >&2; exit 1; }
src=$("$build" | tail -n 1)
[ -x "$src/bin/opensearch" ] || { echo "$build printed '$src', which has no bin/opensearch" >&2; exit 1; }
hint=$(cat "$src/JAVA_HOME_HINT" 2>/dev/null || true)
jdk=${hint:-/usr/lib/jvm/temurin-25-jdk-amd64}
[ -x "$jdk/bin/java" ] || { echo "no Java runtime at $jdk (JAVA_HOME_HINT of $src)" >&2; exit 1; }
want=$( { (cd "$src" && find . -type f -printf '%p %s\n' | sort); (cd "$jdk" && find . -type f -printf '%p %s\n' | sort); } \
  | sha256sum | cut -c1-16)
if [ -f context/.source ] && [ "$(cat context/.source)" = "$want" ]; then exit 0; fi
rm -rf context.tmp
mkdir -p context.tmp/jdk
cp -r "$src" context.tmp/opensearch
rm -f context.tmp/opensearch/JAVA_HOME_HINT
# The runtime without its sources and debug symbols.
tar -C "$jdk" --exclude=./lib/src.zip --exclude='*.debuginfo' -cf - . | tar -C context.tmp/jdk -xf -
echo "$want" >context.tmp/.source
rm -rf context
mv context.tmp context

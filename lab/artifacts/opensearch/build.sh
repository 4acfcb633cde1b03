#!/usr/bin/env bash
# Assemble a runnable OpenSearch home with the k-NN plugin from Maven Central (pom.xml beside
# this script) and our own configuration.
#
#   OPENSEARCH_VERSION=3.5.0 lab/artifacts/opensearch/build.sh
#
# Result, under ${AISTACK_CACHE:-/var/cache/aistack}/opensearch/<version>-<inputs hash>/:
#   bin/opensearch, lib/, agent/ (3.x)   from the distribution's integration-test zip
#   modules/                             the zip's modules; lang-painless (which k-NN extends) is
#                                        assembled from its jars with our descriptor when the zip
#                                        has none
#   plugins/opensearch-knn/              the k-NN plugin zip (Java only: no faiss/nmslib natives,
#                                        so the lucene engine is the one that works)
#   config/                              opensearch.yml, jvm.options, log4j2.properties (ours)
#   VERSION, KNN_VERSION                 the versions inside
#   JAVA_HOME_HINT                       a JDK that runs it (OPENSEARCH_JAVA_HOME=$(cat JAVA_HOME_HINT))
#   JAVA_VERSION_MIN, JAVA_VERSION_MAX   the Java feature releases it runs on (2.x: 17..23, 3.x: 21..)
# The last line on stdout is that directory's absolute path (everything else goes to stderr).
# An assembled home is reused as it is; a new version or changed inputs make a new one. The home
# is never written to at run time: start the node with OPENSEARCH_PATH_CONF pointing at a copy of
# config/ and path.data/path.logs outside it. OpenSearch refuses to run as root.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Default: the newest release whose k-NN plugin Maven Central serves (3.5.0.0; 2.19.1 also works on Java 17).
OPENSEARCH_VERSION=${OPENSEARCH_VERSION:-3.5.0}
CACHE=${AISTACK_CACHE:-/var/cache/aistack}

log() { printf '[opensearch-artifacts] %s\n' "$*" >&2; }
die() { printf '[opensearch-artifacts] FAILED: %s\n' "$*" >&2; exit 1; }

[[ $OPENSEARCH_VERSION =~ ^([23])\.[0-9]+\.[0-9]+$ ]] \
  || die "OPENSEARCH_VERSION '$OPENSEARCH_VERSION' is not an OpenSearch 2.x or 3.x release (MAJOR.MINOR.PATCH)"
major=${BASH_REMATCH[1]}
# 3.x needs Java 21+; 2.x needs 17+ and the Java security manager, which Java 24 removed.
if [ "$major" = 3 ]; then java_min=21; java_max=99; else java_min=17; java_max=23; fi
command -v mvn >/dev/null || die "mvn is not installed (Debian package maven; tools/system-deps.sh installs it)"
command -v unzip >/dev/null || die "unzip is not installed (Debian package unzip)"

java_feature() {  # feature release of the JDK at $1, or nothing
  local release="$1/release" v
  [ -x "$1/bin/java" ] && [ -f "$release" ] || return 0
  v=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$release")
  echo "${v:-0}"
}
find_jdk() {  # the first JDK with feature release in [$1, $2]: OPENSEARCH_JAVA_HOME, JAVA_HOME, then the usual paths
  local candidate v
  for candidate in "${OPENSEARCH_JAVA_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 \
      /usr/lib/jvm/java-21-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-amd64; do
    [ -n "$candidate" ] || continue
    v=$(java_feature "$candidate")
    if [ -n "$v" ] && [ "$v" -ge "$1" ] && [ "$v" -le "$2" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

hash=$({ (cd "$HERE" && find . -type f ! -name README.md -print0 | sort -z | xargs -0 sha256sum); echo "$OPENSEARCH_VERSION"; } \
  | sha256sum | cut -c1-12)
dest="$CACHE/opensearch/$OPENSEARCH_VERSION-$hash"

if [ ! -f "$dest/VERSION" ]; then
  mkdir -p "$CACHE/opensearch"
  # One build at a time per cache (tests and the lab image may ask at once).
  exec 9>"$CACHE/opensearch/.lock"
  flock 9
fi
if [ ! -f "$dest/VERSION" ]; then
  tmp=$(mktemp -d "$CACHE/opensearch/.build-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "resolving OpenSearch $OPENSEARCH_VERSION and k-NN $OPENSEARCH_VERSION.0 from Maven into $dest"
  mvn -B -q -Dstyle.color=never -f "$HERE/pom.xml" -Dmaven.repo.local="$CACHE/maven" -Dopensearch.version="$OPENSEARCH_VERSION" \
      dependency:copy-dependencies -DoutputDirectory="$tmp/deps" >&2 \
    || die "mvn dependency:copy-dependencies failed for OpenSearch $OPENSEARCH_VERSION (is the Maven registry reachable? \
Maven Central serves the k-NN plugin for 2.19.1 and 3.5.0 only)"
  dist_zip="$tmp/deps/opensearch-$OPENSEARCH_VERSION.zip"
  knn_zip="$tmp/deps/opensearch-knn-$OPENSEARCH_VERSION.0.zip"
  [ -f "$dist_zip" ] && [ -f "$knn_zip" ] || die "the distribution or k-NN zip was not copied into $tmp/deps"

  home="$tmp/home"
  unzip -q "$dist_zip" -d "$tmp/unzipped"
  mv "$tmp/unzipped/opensearch-$OPENSEARCH_VERSION" "$home"
  [ -x "$home/bin/opensearch" ] || die "$dist_zip has no opensearch-$OPENSEARCH_VERSION/bin/opensearch"
  [ -d "$home/modules/transport-netty4" ] || die "$dist_zip has no transport-netty4 module"

  painless="$home/modules/lang-painless"
  if [ ! -f "$painless/plugin-descriptor.properties" ]; then
    log "assembling modules/lang-painless from its jars"
    mkdir -p "$painless"
    for jar in "$tmp"/deps/*.jar; do cp "$jar" "$painless/"; done
    main_jar="$painless/lang-painless-$OPENSEARCH_VERSION.jar"
    [ -f "$main_jar" ] || die "lang-painless-$OPENSEARCH_VERSION.jar was not copied"
    # The plugin class: PainlessModulePlugin (OpenSearch) or PainlessPlugin (older names).
    classname=$(unzip -Z1 "$main_jar" | sed -n 's#^\(org/opensearch/painless/Painless[A-Za-z]*Plugin\)\.class$#\1#p' \
      | tr / . | head -n1)
    [ -n "$classname" ] || die "no org.opensearch.painless.*Plugin class in $main_jar"
    cat >"$painless/plugin-descriptor.properties" <<PROPS
# Written by aistack.infra lab/artifacts/opensearch/build.sh
description=Painless scripting language, assembled from its Maven artifacts
version=$OPENSEARCH_VERSION
name=lang-painless
classname=$classname
java.version=$java_min
opensearch.version=$OPENSEARCH_VERSION
custom.foldername=
extended.plugins=
has.native.controller=false
PROPS
    cp "$HERE/painless-security.policy" "$painless/plugin-security.policy"
  fi

  knn="$home/plugins/opensearch-knn"
  mkdir -p "$knn"
  unzip -q "$knn_zip" -d "$knn"
  [ -f "$knn/plugin-descriptor.properties" ] || die "$knn_zip has no plugin-descriptor.properties"
  # Every plugin this one extends must be there, or the node refuses to start.
  extended=$(sed -n 's/^extended\.plugins=//p' "$knn/plugin-descriptor.properties" | tr ',' ' ')
  for name in $extended; do
    [ -d "$home/modules/$name" ] || [ -d "$home/plugins/$name" ] \
      || die "the k-NN plugin extends '$name', which is neither a module nor a plugin of this home"
  done

  # Our configuration replaces the zip's (its jvm.options writes GC logs and heap dumps below the home).
  rm -rf "$home/config" "$home/logs"
  mkdir -p "$home/config/jvm.options.d"
  cp "$HERE"/config/* "$home/config/"
  if [ -f "$home/agent/opensearch-agent.jar" ]; then
    # OpenSearch 3.x enforces plugin permissions with its Java agent instead of the security manager.
    printf '%s\n' '# OpenSearch 3.x: the permission-enforcing agent' '-javaagent:agent/opensearch-agent.jar' \
      >>"$home/config/jvm.options"
  fi

  echo "$OPENSEARCH_VERSION" >"$home/VERSION"
  echo "$OPENSEARCH_VERSION.0" >"$home/KNN_VERSION"
  echo "$java_min" >"$home/JAVA_VERSION_MIN"
  echo "$java_max" >"$home/JAVA_VERSION_MAX"
  if [ "$major" = 3 ]; then fallback=/usr/lib/jvm/temurin-25-jdk-amd64; else fallback=/usr/lib/jvm/java-17-openjdk-amd64; fi
  jdk=$(find_jdk "$java_min" "$java_max") || jdk=""
  [ -n "$jdk" ] || log "WARNING: no JDK $java_min..$java_max found here; JAVA_HOME_HINT names $fallback"
  echo "${jdk:-$fallback}" >"$home/JAVA_HOME_HINT"
  chmod -R a+rX,go-w "$home"
  rm -rf "$dest"
  mv "$home" "$dest"
  rm -rf "$tmp"
  trap - EXIT
  log "assembled OpenSearch $OPENSEARCH_VERSION with k-NN in $dest (Java $java_min..$java_max: $(cat "$dest/JAVA_HOME_HINT"))"
fi
echo "$dest"

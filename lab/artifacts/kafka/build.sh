#!/usr/bin/env bash
# Assemble a Kafka (KRaft) distribution from Maven Central: the server, its tools and a log4j2
# binding as jars (pom.xml beside this script), plus our own logging configuration.
#
#   KAFKA_VERSION=4.3.1 lab/artifacts/kafka/build.sh
#
# Result, under ${AISTACK_CACHE:-/var/cache/aistack}/kafka/<version>-<inputs hash>/:
#   libs/*.jar   the classpath (java -cp 'libs/*' kafka.Kafka server.properties)
#   config/      log4j2.yaml (server, console) and tools-log4j2.yaml (tools, stderr)
#   VERSION      the Kafka version
# The last line on stdout is that directory's absolute path (everything else goes to stderr).
# An assembled directory is reused as it is; a new version or changed inputs make a new one.
# The Maven local repository lives in the same cache, so a second build downloads nothing.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Default: the newest Kafka 4.x release that kafka-python (requirements-test.txt) knows (4.3).
KAFKA_VERSION=${KAFKA_VERSION:-4.3.1}
CACHE=${AISTACK_CACHE:-/var/cache/aistack}

log() { printf '[kafka-artifacts] %s\n' "$*" >&2; }
die() { printf '[kafka-artifacts] FAILED: %s\n' "$*" >&2; exit 1; }

[[ $KAFKA_VERSION =~ ^4\.[0-9]+\.[0-9]+$ ]] || die "KAFKA_VERSION '$KAFKA_VERSION' is not a Kafka 4.x release (4.MINOR.PATCH)"
command -v mvn >/dev/null || die "mvn is not installed (Debian package maven; tools/system-deps.sh installs it)"
command -v java >/dev/null || die "java is not installed (Debian package openjdk-17-jre-headless)"

hash=$({ (cd "$HERE" && find . -type f -print0 | sort -z | xargs -0 sha256sum); echo "$KAFKA_VERSION"; } \
  | sha256sum | cut -c1-12)
dest="$CACHE/kafka/$KAFKA_VERSION-$hash"

if [ ! -f "$dest/VERSION" ]; then
  mkdir -p "$CACHE/kafka"
  # One build at a time per cache (tests and the lab image may ask at once).
  exec 9>"$CACHE/kafka/.lock"
  flock 9
fi
if [ ! -f "$dest/VERSION" ]; then
  tmp=$(mktemp -d "$CACHE/kafka/.build-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "resolving Kafka $KAFKA_VERSION from Maven into $dest"
  mvn -B -q -f "$HERE/pom.xml" -Dmaven.repo.local="$CACHE/maven" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >&2 \
    || die "mvn dependency:copy-dependencies failed for Kafka $KAFKA_VERSION (is the Maven registry reachable?)"
  ls "$tmp"/libs/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || die "kafka_2.13-$KAFKA_VERSION.jar was not copied"
  mkdir -p "$tmp/config"
  cp "$HERE"/config/* "$tmp/config/"
  echo "$KAFKA_VERSION" >"$tmp/VERSION"
  chmod -R a+rX "$tmp"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
  log "assembled $(find "$dest/libs" -name '*.jar' | wc -l) jars"
fi
echo "$dest"

#!/usr/bin/env bash
# Install the Debian packages that `make lab` and `make test` need on the control machine.
# Idempotent: only installs what is missing. Runs as root (as on the project's machines) or via sudo.
set -euo pipefail
pkgs=(docker.io debootstrap openssh-client git jq ca-certificates redis-server)
# A Java runtime and Maven: Kafka from Maven Central for the tests (lab/artifacts/kafka/build.sh).
pkgs+=(openjdk-17-jre-headless maven)
# unzip: OpenSearch + k-NN zips from Maven Central (lab/artifacts/opensearch/build.sh). OpenSearch 3.x needs
# Java 21+, which Debian 12 lacks: the machine kind's Temurin 25 JDK runs it; without one the tests fall
# back to OpenSearch 2.19.1 on the Java 17 above.
pkgs+=(unzip)
# promtool and amtool for the monitoring role's unit tests (rule tests, config checks).
pkgs+=(prometheus prometheus-alertmanager)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "system-deps: installing ${missing[*]}"
$SUDO apt-get update -qq || { echo "system-deps: apt-get update failed: no Debian mirror reachable?" >&2; exit 1; }
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || { echo "system-deps: could not install ${missing[*]}" >&2; exit 1; }

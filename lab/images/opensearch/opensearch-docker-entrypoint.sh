#!/usr/bin/env bash
# Start OpenSearch with the official image's interface: every environment variable whose name is a
# lower-case dotted setting (cluster.name, discovery.type, bootstrap.memory_lock, ...) becomes a
# -E<name>=<value> option; OPENSEARCH_JAVA_OPTS is read by bin/opensearch itself;
# DISABLE_SECURITY_PLUGIN=true disables the security plugin when the image carries one (this one
# does not). Any other command runs as given.
set -euo pipefail
cd /usr/share/opensearch
if [ "${1:-opensearch}" != "opensearch" ]; then exec "$@"; fi
shift || true
opts=()
while IFS='=' read -r -d '' name value; do
  if [[ "$name" =~ ^[a-z0-9_]+\.[a-z0-9_.]+$ ]]; then opts+=("-E$name=$value"); fi
done < <(env -0)
if [ "${DISABLE_SECURITY_PLUGIN:-false}" = "true" ] && [ -d plugins/opensearch-security ]; then
  opts+=("-Eplugins.security.disabled=true")
fi
exec bin/opensearch "${opts[@]}" "$@"

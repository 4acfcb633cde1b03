#!/usr/bin/env bash
# Build the collection tarball, install it into an empty path and use it from there:
# the installed collection must resolve its playbooks, roles and modules by FQCN.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
mkdir -p build
ansible-galaxy collection build --force --output-path build . >/dev/null
tarball=$(ls -t build/aistack-infra-*.tar.gz | head -n 1)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Only the installed copy may be visible from here on (not the checkout's .collections link).
unset ANSIBLE_CONFIG
export ANSIBLE_COLLECTIONS_PATH="$tmp" ANSIBLE_ROLES_PATH="$tmp"
(cd "$tmp" && ansible-galaxy collection install --offline --no-deps --force -p "$tmp" "$repo/$tarball" >/dev/null) \
  || { echo "build: install of $tarball failed" >&2; exit 1; }
# Leftovers of the checkout must not be in the tarball.
if tar -tzf "$tarball" | grep -E '^(\.venv|\.collections|lab/state|build)/' >/dev/null; then
  echo "build: the tarball contains checkout-only paths" >&2; exit 1
fi
# The collection, not the lab's build inputs: a checkout after `make lab` holds hundreds of MB of
# wheels and jars under lab/images, which build_ignore in galaxy.yml keeps out.
max_bytes=$((2 * 1024 * 1024))
size=$(stat -c %s "$tarball")
if [ "$size" -gt "$max_bytes" ]; then
  echo "build: $tarball is $size bytes, more than $max_bytes: the largest entries are" >&2
  tar -tvzf "$tarball" | sort -k3 -n -r | head -n 10 >&2
  exit 1
fi
cd "$tmp"
ansible-playbook aistack.infra.site -i "$repo/inventories/prod/hosts.yml" --syntax-check >/dev/null
for m in "$tmp"/ansible_collections/aistack/infra/plugins/modules/*.py; do
  [ -e "$m" ] || continue
  ansible-doc -t module "aistack.infra.$(basename "$m" .py)" >/dev/null
done
echo "build: $(basename "$tarball") ($size bytes) installs; aistack.infra.site and $(ls "$tmp"/ansible_collections/aistack/infra/plugins/modules/*.py 2>/dev/null | wc -l) module doc(s) resolve from it"

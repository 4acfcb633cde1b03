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
# execution-environment.yml: ansible-builder validates it against its version 3 schema and writes
# the build context (no image is built); the context must carry this tarball and the same
# requirements, and the environment's ansible-core must be the one tested here.
ansible-builder create -f execution-environment.yml -c "$tmp/ee" --output-filename Containerfile >/dev/null \
  || { echo "build: ansible-builder create rejected execution-environment.yml" >&2; exit 1; }
[ -f "$tmp/ee/_build/collections/$(basename "$tarball")" ] \
  || { echo "build: the execution environment's context lacks $(basename "$tarball")" >&2; exit 1; }
cmp -s requirements.txt "$tmp/ee/_build/requirements.txt" \
  || { echo "build: the execution environment's requirements differ from requirements.txt" >&2; exit 1; }
core=$(python -c 'import ansible.release as r; print(r.__version__)')
grep -q "ansible-core==$core\b" "$tmp/ee/Containerfile" \
  || { echo "build: execution-environment.yml does not pin ansible-core==$core (the tested one)" >&2; exit 1; }
# The changelog fragments pass antsibull-changelog lint and make the next release's notes.
tools/changelog.sh >/dev/null || exit 1
cd "$tmp"
ansible-playbook aistack.infra.site -i "$repo/inventories/prod/hosts.yml" --syntax-check >/dev/null
for m in "$tmp"/ansible_collections/aistack/infra/plugins/modules/*.py; do
  [ -e "$m" ] || continue
  ansible-doc -t module "aistack.infra.$(basename "$m" .py)" >/dev/null
done
echo "build: $(basename "$tarball") ($size bytes) installs, execution-environment.yml is valid, the changelog fragments lint and generate; aistack.infra.site and $(ls "$tmp"/ansible_collections/aistack/infra/plugins/modules/*.py 2>/dev/null | wc -l) module doc(s) resolve from it"

#!/usr/bin/env bash
# ansible-test sanity for plugins/, run offline in a temporary ansible_collections/aistack/infra tree.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$(ls "$repo"/plugins/modules/*.py 2>/dev/null)" ]; then echo "sanity: no modules yet, skipped"; exit 0; fi
# ansible-test bootstraps each test venv from a get-pip script it would download; the host is
# unreachable, so give it a stand-in that uses ensurepip and the local pip configuration.
cache="$HOME/.ansible/test/cache"; mkdir -p "$cache"
for v in 24_2 24_3 25_0 25_1 25_2 25_3; do
  cat > "$cache/get_pip_${v}.py" <<'PY'
import ensurepip, subprocess, sys
ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--cert", "/etc/ssl/certs/ca-certificates.crt"] + args))
PY
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
dest="$tmp/ansible_collections/aistack/infra"; mkdir -p "$dest"
cd "$repo"
# Copy what git would ship (tracked + untracked-but-not-ignored), not the venv or lab state.
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -C "$dest" -xf -
cd "$dest"
git init -q && git add -A >/dev/null 2>&1 && git -c user.email=ci@aistack -c user.name=ci commit -qm sanity
ansible-test sanity --python 3.11 --local --color no "$@" plugins/

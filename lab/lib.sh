# shellcheck shell=bash
# Shared helpers for the lab scripts. Sourced, not run.
set -euo pipefail
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LAB_DIR/.." && pwd)
STATE_DIR="$LAB_DIR/state"
# The lab's private Docker network: the registry and the lab hosts live on it.
LAB_NET=${LAB_NET:-aistack-lab}
LAB_SUBNET=${LAB_SUBNET:-172.31.213.0/24}
LAB_REGISTRY_IP=${LAB_REGISTRY_IP:-172.31.213.2}
LAB_REGISTRY_PORT=5000
LAB_REGISTRY_PUSH="127.0.0.1:${LAB_REGISTRY_HOST_PORT:-5000}"
LAB_SUITE=bookworm
LAB_BASE_IMAGE=aistack-lab/debian:bookworm
LAB_HOST_IMAGE=aistack-lab/host:bookworm
LAB_LABEL=io.aistack.lab
mkdir -p "$STATE_DIR"

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# die STEP MESSAGE: a lab step that cannot run says which step and why.
die() { local step=$1; shift; printf '[lab] FAILED at step "%s": %s\n' "$step" "$*" >&2; exit 1; }

need_disk() { # need_disk STEP MiB PATH
  local avail; avail=$(df -Pm "$3" | awk 'NR==2 {print $4}')
  [ "$avail" -ge "$2" ] || die "$1" "only ${avail} MiB free under $3, ${2} MiB needed (free disk space or run 'make lab-down')"
}

# Hash of files (content and names) plus extra strings: decides whether an image must be rebuilt.
inputs_hash() { # inputs_hash DIR [EXTRA...]
  local dir=$1; shift
  { (cd "$dir" && find . -type f ! -name '*.whl' -print0 | sort -z | xargs -0 sha256sum); printf '%s\n' "$@"; } | sha256sum | cut -c1-16
}
image_label() { docker image inspect -f "{{ index .Config.Labels \"$LAB_LABEL.hash\" }}" "$1" 2>/dev/null || true; }

debian_mirror() {
  local m
  m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$m" ] || die debootstrap "no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  echo "$m"
}

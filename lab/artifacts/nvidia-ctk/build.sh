#!/usr/bin/env bash
# Build NVIDIA Container Toolkit's `nvidia-ctk` (Apache-2.0) from the Go module proxy, for the
# daemon.json merge tests (tests/unit/roles/test_gpu_role.py): its `runtime configure
# --runtime=docker` is the step the gpu role must agree with. It needs no GPU.
#
#   NVIDIA_CTK_VERSION=1.17.8 lab/artifacts/nvidia-ctk/build.sh
#
# Result: ${AISTACK_CACHE:-/var/cache/aistack}/nvidia-ctk/<version>/nvidia-ctk, reused once built
# (about 3 minutes on a loaded 2-core machine; the module cache stays beside it). The last line
# on stdout is the binary's absolute path (everything else goes to stderr).
set -euo pipefail
NVIDIA_CTK_VERSION=${NVIDIA_CTK_VERSION:-1.17.8}
CACHE=${AISTACK_CACHE:-/var/cache/aistack}

die() { printf '[nvidia-ctk-artifacts] FAILED: %s\n' "$*" >&2; exit 1; }
[[ $NVIDIA_CTK_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "NVIDIA_CTK_VERSION '$NVIDIA_CTK_VERSION' is not MAJOR.MINOR.PATCH"
GO=$(command -v go || echo /usr/local/go/bin/go)
[ -x "$GO" ] || die "go is not installed (it builds nvidia-ctk from the Go module proxy)"
command -v gcc >/dev/null || die "gcc is not installed (nvidia-ctk links go-nvml through cgo)"

dest="$CACHE/nvidia-ctk/$NVIDIA_CTK_VERSION"
if [ ! -x "$dest/nvidia-ctk" ]; then
  mkdir -p "$CACHE/nvidia-ctk"
  exec 9>"$CACHE/nvidia-ctk/.lock"
  flock 9
fi
if [ ! -x "$dest/nvidia-ctk" ]; then
  printf '[nvidia-ctk-artifacts] building nvidia-ctk %s into %s\n' "$NVIDIA_CTK_VERSION" "$dest" >&2
  tmp=$(mktemp -d "$CACHE/nvidia-ctk/.build-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # cgo stays on: go-nvml's types come from cgo files (CGO_ENABLED=0 does not compile).
  GOPATH="$CACHE/nvidia-ctk/gopath" GOBIN="$tmp" GOFLAGS=-mod=mod CGO_ENABLED=1 \
    "$GO" install "github.com/NVIDIA/nvidia-container-toolkit/cmd/nvidia-ctk@v$NVIDIA_CTK_VERSION" >&2
  mkdir -p "$dest"
  mv "$tmp/nvidia-ctk" "$dest/nvidia-ctk"
fi
echo "$dest/nvidia-ctk"

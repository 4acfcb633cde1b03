#!/usr/bin/env bash
# Build a Kubernetes control plane and its clients from Go modules (the Go module proxy is the only
# source: no release downloads): etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# helm and kwok (simulated nodes). One small module of ours per upstream module, beside this
# script, pins the versions (go.mod, with the `tool` directive naming the commands) and their
# checksums (go.sum, made here with `go mod tidy` against the proxy):
#
#   kubernetes/   k8s.io/kubernetes v1.37.2, every k8s.io/* staging module replaced by its v0.37.2
#   etcd/         go.etcd.io/etcd/server/v3 v3.7.3 (the etcd that Kubernetes 1.37 requires)
#   helm/         helm.sh/helm/v3 v3.22.0
#   kwok/         sigs.k8s.io/kwok v0.8.0
#
#   lab/artifacts/k8s/build.sh          # everything
#   lab/artifacts/k8s/build.sh helm     # helm alone (minutes, not the control plane's hour), in <hash>-helm/
#   K8S_CACHED_ONLY=1 lab/artifacts/k8s/build.sh   # the directory if already built, else exit 3 (builds nothing)
#
# Result, under ${AISTACK_CACHE:-/var/cache/aistack}/k8s/<inputs hash>/:
#   bin/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler,helm,kwok}
#   VERSIONS   one "name version" line per binary, and the Go version
# The last line on stdout is that directory's absolute path (everything else goes to stderr).
# The hash covers this directory's files but README.md (go.mod, go.sum, this recipe), the Go version and the
# platform: while they do not change, the binaries are reused. Go's module and build caches live
# under ${AISTACK_CACHE}/go (GOMODCACHE, GOCACHE, GOPATH) so that CI reuses them too; a new recipe
# then recompiles only what changed.
#
# The helm-diff plugin (github.com/databus23/helm-diff/v3) is NOT built: the module proxy answers
# 403 for it (checked 2026-12-01).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${AISTACK_CACHE:-/var/cache/aistack}
JOBS=${K8S_BUILD_JOBS:-2}
# RECIPE names the build steps below: change it when they change in a way that alters the binaries.
RECIPE=k8s-cgo0-trimpath-stripped-1

log() { printf '[k8s-artifacts] %s\n' "$*" >&2; }
die() { printf '[k8s-artifacts] FAILED: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not installed (Go >= 1.26 is needed: the modules declare go 1.26.0)"
export GOPATH="$CACHE/go/path" GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build"
# -mod=mod: use go.mod/go.sum as they are (no vendor directory). The checksum database is not
# reachable here; go.sum beside each go.mod is the pin that every download is checked against.
export GOFLAGS=-mod=mod GOSUMDB=off GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
go_version=$(go env GOVERSION)
[[ $go_version =~ ^go1\.(2[6-9]|[3-9][0-9]) ]] || die "Go $go_version is too old: the modules declare go 1.26.0"

# version MODULE_DIR MODULE_PATH: the version that our go.mod requires.
version() { awk -v m="$2" '$1 == "require" && $2 == m {print $3} $1 == m && $2 ~ /^v/ {print $2}' "$HERE/$1/go.mod" | head -1; }
K8S_VERSION=$(version kubernetes k8s.io/kubernetes)
ETCD_VERSION=$(version etcd go.etcd.io/etcd/server/v3)
HELM_VERSION=$(version helm helm.sh/helm/v3)
KWOK_VERSION=$(version kwok sigs.k8s.io/kwok)
for v in K8S_VERSION ETCD_VERSION HELM_VERSION KWOK_VERSION; do
  [[ ${!v} =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$v '${!v}' read from lab/artifacts/k8s/*/go.mod is not a release vMAJOR.MINOR.PATCH"
done
# Every staging module must be pinned to v0.<minor>.<patch> of the same Kubernetes release.
staging=${K8S_VERSION/#v1./v0.}
bad=$(awk -v want="$staging" '$2 == "=>" && $1 ~ /^k8s\.io\// && $4 != want {print $1 " " $4}' "$HERE/kubernetes/go.mod")
[ -z "$bad" ] || die "kubernetes/go.mod: staging modules not pinned to $staging (for k8s.io/kubernetes $K8S_VERSION): $bad"

hash=$({ echo "$RECIPE"; (cd "$HERE" && find . -type f ! -name '*.md' -print0 | sort -z | xargs -0 sha256sum); echo "$go_version $(go env GOOS)/$(go env GOARCH)"; } \
  | sha256sum | cut -c1-12)
case "${1:-all}" in
  all) dest="$CACHE/k8s/$hash"; BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler helm kwok) ;;
  helm) dest="$CACHE/k8s/$hash-helm"; BINARIES=(helm) ;;
  *) die "unknown argument '$1' (none: every binary; helm: helm alone)" ;;
esac
want() { [[ " ${BINARIES[*]} " == *" $1 "* ]]; }

complete() { [ -f "$dest/VERSIONS" ] && for b in "${BINARIES[@]}"; do [ -x "$dest/bin/$b" ] || return 1; done; }

# K8S_CACHED_ONLY=1: answer from the cache only (exit 3 when these inputs were never built); the test
# fixture uses it to run the control-plane tests whenever the binaries exist, without building them.
if [ "${K8S_CACHED_ONLY:-0}" = 1 ] && ! complete; then
  log "not built yet for these inputs: $dest (run lab/artifacts/k8s/build.sh ${1:-})"
  exit 3
fi
if ! complete; then
  mkdir -p "$CACHE/k8s"
  # One build of each kind at a time per cache (several test sessions may ask at once).
  exec 9>"$CACHE/k8s/.lock-${1:-all}"
  flock 9
fi
if ! complete; then
  tmp=$(mktemp -d "$CACHE/k8s/.build-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/bin"
  started=$(date +%s)
  # build MODULE_DIR LDFLAGS PACKAGE... : binaries named after the package's last element.
  build() {
    local dir=$1 ldflags=$2; shift 2
    log "go build in $dir: $*"
    (cd "$HERE/$dir" && nice -n "${K8S_BUILD_NICE:-15}" go build -p "$JOBS" -trimpath -ldflags "-s -w $ldflags" -o "$tmp/bin/" "$@") >&2 \
      || die "go build failed in lab/artifacts/k8s/$dir (is the Go module proxy reachable? see the messages above)"
  }
  # Smallest first, Kubernetes last (most of the compile time): an interrupted build keeps what it
  # compiled in GOCACHE, and the next run goes on from there.
  # Kubernetes reads its version from these variables (/version, --version, compatibility version).
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  kv="k8s.io/component-base/version"
  k8s_ld="-X $kv.gitVersion=$K8S_VERSION -X $kv.gitMajor=1 -X $kv.gitMinor=$minor -X $kv.gitTreeState=clean"
  k8s_ld+=" -X $kv.buildDate=1970-01-01T00:00:00Z"
  # As helm's Makefile does: the Kubernetes version that `helm template` and `helm lint` assume is the
  # minor of the client-go that helm is built with (without it, v1.20, which charts' kubeVersion refuse).
  helm_k8s_minor=$(version helm k8s.io/client-go); helm_k8s_minor=${helm_k8s_minor#v0.}; helm_k8s_minor=${helm_k8s_minor%%.*}
  helm_ld="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    helm_ld+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$helm_k8s_minor"
  done
  build helm "$helm_ld" helm.sh/helm/v3/cmd/helm
  if want etcd; then
    build etcd "" go.etcd.io/etcd/server/v3
    mv "$tmp/bin/server" "$tmp/bin/etcd" 2>/dev/null || mv "$tmp/bin/v3" "$tmp/bin/etcd"
  fi
  want kwok && build kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
  if want kube-apiserver; then
    build kubernetes "$k8s_ld" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler
    "$tmp/bin/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes $K8S_VERSION" \
      || die "kube-apiserver --version does not say Kubernetes $K8S_VERSION"
  fi
  for b in "${BINARIES[@]}"; do [ -x "$tmp/bin/$b" ] || die "bin/$b was not built"; done
  [ "$(HOME="$tmp" "$tmp/bin/helm" version --template '{{.Version}}')" = "$HELM_VERSION" ] || die "helm version does not say $HELM_VERSION"
  printf '%s %s\n' kubernetes "$K8S_VERSION" etcd "$ETCD_VERSION" helm "$HELM_VERSION" kwok "$KWOK_VERSION" go "$go_version" \
    recipe "$RECIPE" >"$tmp/VERSIONS"
  chmod -R a+rX "$tmp"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT
  log "built ${BINARIES[*]} in $(( $(date +%s) - started )) s into $dest"
fi
echo "$dest"

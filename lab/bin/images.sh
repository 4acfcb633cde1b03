#!/usr/bin/env bash
# Build the lab images: the debootstrap root filesystem, the systemd host image, the registry image
# and every service image under lab/images/<name>/ (Dockerfile + image.env). Each is rebuilt only
# when its inputs change (a hash label on the image), so reruns take seconds.
#
# Adding a service image: create lab/images/<name>/ with
#   Dockerfile   FROM aistack-lab/debian:bookworm ...
#   image.env    IMAGE=aistack-lab/<name>:<tag>   UPSTREAM=<upstream repository>:<tag> (pushed to the lab registry)
#                (or VARIANTS="1.0.0 1.1.0" with untagged IMAGE/UPSTREAM: one build per variant, --build-arg VARIANT)
#   prepare.sh   (optional) fills the build context, e.g. `pip download` of wheels into ./wheels
source "$(dirname "$0")/../lib.sh"

unmount_under() { # unmount_under DIR: every mount point below DIR, deepest first
  local mp
  awk -v root="$1/" 'index($2, root) == 1 {print $2}' /proc/mounts | sort -r | while read -r mp; do
    umount "$mp" 2>/dev/null || umount -l "$mp"
  done
}

build_base() {
  local dir="$LAB_DIR/images/base" mirror hash rootfs
  mirror=$(debian_mirror)
  hash=$(inputs_hash "$dir" "$LAB_SUITE" "$mirror")
  if [ "$(image_label "$LAB_BASE_IMAGE")" = "$hash" ]; then log "base image up to date ($hash)"; return; fi
  command -v debootstrap >/dev/null || "$REPO_DIR/tools/system-deps.sh" || die debootstrap "debootstrap is not installed and could not be"
  need_disk debootstrap 2000 "$STATE_DIR"
  rootfs="$STATE_DIR/rootfs"; [ -d "$rootfs" ] && unmount_under "$rootfs"; rm -rf "$rootfs"; mkdir -p "$rootfs"
  log "debootstrap $LAB_SUITE from $mirror (about 1 minute)"
  debootstrap --variant=minbase --include="$(paste -sd, "$dir/packages.txt")" "$LAB_SUITE" "$rootfs" "$mirror" \
    >"$STATE_DIR/debootstrap.log" 2>&1 || die debootstrap "see $STATE_DIR/debootstrap.log: $(tail -n 3 "$STATE_DIR/debootstrap.log" | tr '\n' ' ')"
  chroot "$rootfs" apt-get clean
  # debootstrap 1.0.128 can leave /proc mounted inside the new root (seen on the 2026-12 machines):
  # unmount everything under it before it is archived (tar fails on a live /proc) or removed.
  unmount_under "$rootfs"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  tar -C "$rootfs" -c . | docker import --change "LABEL $LAB_LABEL.hash=$hash" --change 'CMD ["/bin/bash"]' - "$LAB_BASE_IMAGE" >/dev/null \
    || die "import base image" "docker import failed"
  rm -rf "$rootfs"
  log "built $LAB_BASE_IMAGE ($hash)"
}

# build_dir NAME: build lab/images/NAME if its inputs (or the base image) changed.
# image.env may set VARIANTS="v1 v2 ...": then IMAGE and UPSTREAM name repositories without a
# tag, and one image is built per variant with --build-arg VARIANT=<v>, tagged <v>.
build_dir() {
  local name=$1 dir="$LAB_DIR/images/$1" IMAGE="" UPSTREAM="" VARIANTS="" hash v
  # shellcheck disable=SC1091
  source "$dir/image.env"
  [ -n "$IMAGE" ] || die "image $name" "$dir/image.env sets no IMAGE"
  if [ -x "$dir/prepare.sh" ]; then
    (cd "$dir" && ./prepare.sh) >"$STATE_DIR/prepare-$name.log" 2>&1 || die "prepare image $name" "see $STATE_DIR/prepare-$name.log"
  fi
  hash=$(inputs_hash "$dir" "$(docker image inspect -f '{{.Id}}' "$LAB_BASE_IMAGE")" \
    "$( (cd "$dir" && find . -name '*.whl' -printf '%f\n' | sort) )")
  if [ -z "$VARIANTS" ]; then build_one "$name" "$dir" "$IMAGE" "$hash"; return; fi
  for v in $VARIANTS; do build_one "$name" "$dir" "$IMAGE:$v" "$hash" --build-arg "VARIANT=$v"; done
}

build_one() { # build_one NAME DIR IMAGE HASH [docker build args...]
  local name=$1 dir=$2 image=$3 hash=$4; shift 4
  if [ "$(image_label "$image")" = "$hash" ]; then log "$image up to date"; return; fi
  need_disk "image $name" 3000 /var/lib/docker
  log "building $image"
  docker build "$@" --label "$LAB_LABEL.hash=$hash" -t "$image" "$dir" >"$STATE_DIR/build-$name.log" 2>&1 \
    || die "image $name" "docker build failed, see $STATE_DIR/build-$name.log: $(tail -n 5 "$STATE_DIR/build-$name.log" | tr '\n' ' ')"
}

# The images to push to the lab registry: "local-image upstream-name" lines.
push_list() {
  local d IMAGE UPSTREAM VARIANTS v
  for d in "$LAB_DIR"/images/*/; do
    [ -f "$d/image.env" ] || continue
    IMAGE=""; UPSTREAM=""; VARIANTS=""
    # shellcheck disable=SC1091
    source "$d/image.env"
    [ -n "$UPSTREAM" ] || continue
    if [ -z "$VARIANTS" ]; then echo "$IMAGE $UPSTREAM"; continue; fi
    for v in $VARIANTS; do echo "$IMAGE:$v $UPSTREAM:$v"; done
  done
  return 0
}

main() { # main [NAME...]: the named image folders (default: all of them); base always
  local d want=" $* "
  # One build at a time on this machine: molecule scenarios, tests and `make lab` may all ask for
  # images at once, and two debootstraps into the same root would break each other.
  exec 9>"$STATE_DIR/images.lock"
  flock 9
  build_base
  for d in "$LAB_DIR"/images/*/; do
    d=$(basename "$d")
    [ "$d" = base ] && continue
    [ -f "$LAB_DIR/images/$d/image.env" ] || continue
    if [ $# -eq 0 ] || [[ "$want" == *" $d "* ]]; then build_dir "$d"; fi
  done
}

case "${1:-}" in
  push-list) push_list ;;
  *) main "$@" ;;
esac

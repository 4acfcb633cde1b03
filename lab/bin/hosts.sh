#!/usr/bin/env bash
# Lab hosts: Debian 12 systemd containers that Ansible reaches over SSH like servers.
# Which hosts and which ports they forward to 127.0.0.1 come from the lab inventory
# (host vars lab_container_ip and lab_forward_ports), so adding a port is one inventory line.
#   hosts.sh up | down | ssh-check
source "$(dirname "$0")/../lib.sh"
INV="$REPO_DIR/inventories/lab/hosts.yml"
KEY="$STATE_DIR/ssh/id_ed25519"

lab_hosts() { ansible-inventory -i "$INV" --list 2>/dev/null | jq -r '._meta.hostvars | to_entries[] | select(.value.lab_container_ip) | .key'; }
hostvar() { ansible-inventory -i "$INV" --host "$1" 2>/dev/null | jq -r "$2"; }

up() {
  mkdir -p "$STATE_DIR/ssh"
  [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C aistack-lab -f "$KEY"
  local h ip ports args spec name want
  for h in $(lab_hosts); do
    name="aistack-lab-$h"
    ip=$(hostvar "$h" .lab_container_ip)
    ports=$(hostvar "$h" '.lab_forward_ports | join(" ")')
    args=(); for spec in $ports; do args+=(-p "127.0.0.1:$spec"); done
    want="$(docker image inspect -f '{{.Id}}' "$LAB_HOST_IMAGE") $ip $ports caps:SYS_ADMIN,NET_ADMIN,SYS_PTRACE"
    if [ "$(docker inspect -f "{{ index .Config.Labels \"$LAB_LABEL.spec\" }}" "$name" 2>/dev/null)" != "$want" ]; then
      docker rm -f "$name" >/dev/null 2>&1 || true
      log "starting lab host $h ($ip; forwards ${ports:-nothing})"
      # systemd as PID 1 without --privileged (see shared/LAB.md); /var/lib/docker on a volume so
      # the inner Docker engine can use overlay2 instead of vfs.
      docker run -d --name "$name" --hostname "$h" --label "$LAB_LABEL=1" --label "$LAB_LABEL.spec=$want" \
        --network "$LAB_NET" --ip "$ip" "${args[@]}" \
        --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add SYS_PTRACE --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:rw --cgroupns host \
        -v "$name-docker:/var/lib/docker" \
        "$LAB_HOST_IMAGE" >/dev/null || die "lab host $h" "docker run failed (ports taken? $ports)"
    fi
    docker start "$name" >/dev/null
    for _ in $(seq 1 30); do docker exec "$name" test -d /home/debian/.ssh 2>/dev/null && break; sleep 1; done
    docker exec -i "$name" sh -c 'cat > /home/debian/.ssh/authorized_keys && chown debian:debian /home/debian/.ssh/authorized_keys && chmod 0600 /home/debian/.ssh/authorized_keys' < "$KEY.pub"
  done
  for h in $(lab_hosts); do wait_ssh "$h"; done
  refresh_images
}

# The lab rebuilds its images under the same tags when their inputs change, while the roles treat
# a tag as an immutable release (pull: missing). So a lab host that pulled an older build keeps it:
# untag every lab registry image on the hosts whose id is no longer the registry's, and the next
# deploy pulls the current build. A container already running on an old build keeps it until it is
# recreated (a changed definition, a release, or `make lab-down`).
refresh_images() {
  local h name ref id current n
  for h in $(lab_hosts); do
    name="aistack-lab-$h"; n=0
    while read -r ref id; do
      [ -n "$ref" ] || continue
      current=$(docker image inspect -f '{{.Id}}' "$LAB_REGISTRY_PUSH/${ref#*/}" 2>/dev/null || true)
      if [ -n "$current" ] && [ "$current" != "$id" ]; then
        docker exec "$name" docker rmi -f "$ref" >/dev/null 2>&1 && n=$((n + 1))
      fi
    done < <(docker exec "$name" docker images --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}' 2>/dev/null \
             | grep "^$LAB_REGISTRY_IP:$LAB_REGISTRY_PORT/" || true)
    [ "$n" -eq 0 ] || log "lab host $h: untagged $n image(s) older than the lab registry's build (the next deploy pulls the current one)"
  done
}

wait_ssh() {
  local h=$1 port i
  port=$(hostvar "$h" .ansible_port)
  for i in $(seq 1 60); do
    ssh -q -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=2 \
      -i "$KEY" -p "$port" debian@127.0.0.1 true 2>/dev/null && return 0
    sleep 1
  done
  die "lab host $h" "SSH on 127.0.0.1:$port did not answer within 60 s (docker logs aistack-lab-$h)"
}

down() {
  docker ps -aq --filter "label=$LAB_LABEL.spec" | xargs -r docker rm -f >/dev/null
  docker volume ls -q | grep '^aistack-lab-' | grep -v registry | xargs -r docker volume rm >/dev/null || true
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) die hosts "usage: hosts.sh up|down" ;;
esac

#!/usr/bin/env bash
# The lab network and registry: create them if missing, then push every service image under its
# upstream repository name (lab/images/*/image.env UPSTREAM=...).
source "$(dirname "$0")/../lib.sh"
if ! docker network inspect "$LAB_NET" >/dev/null 2>&1; then
  docker network create --subnet "$LAB_SUBNET" --label "$LAB_LABEL=1" "$LAB_NET" >/dev/null \
    || die network "could not create network $LAB_NET ($LAB_SUBNET): is the subnet used by another network?"
fi
name=aistack-lab-registry
if [ "$(docker inspect -f '{{.Config.Image}}' "$name" 2>/dev/null)" != "aistack-lab/registry:2.8" ] \
   || [ "$(docker inspect -f '{{.Image}}' "$name" 2>/dev/null)" != "$(docker image inspect -f '{{.Id}}' aistack-lab/registry:2.8)" ]; then
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker run -d --name "$name" --label "$LAB_LABEL=1" --restart unless-stopped \
    --network "$LAB_NET" --ip "$LAB_REGISTRY_IP" -p "$LAB_REGISTRY_PUSH:5000" \
    -v aistack-lab-registry:/var/lib/docker-registry aistack-lab/registry:2.8 >/dev/null \
    || die registry "could not start the registry container (is 127.0.0.1:5000 taken?)"
fi
docker start "$name" >/dev/null
for _ in $(seq 1 30); do curl -fsS "http://$LAB_REGISTRY_PUSH/v2/" >/dev/null 2>&1 && break; sleep 1; done
curl -fsS "http://$LAB_REGISTRY_PUSH/v2/" >/dev/null || die registry "registry not answering on $LAB_REGISTRY_PUSH"
"$LAB_DIR/bin/images.sh" push-list | while read -r image upstream; do
  id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null) || continue  # not built in this run
  marker="$STATE_DIR/pushed-$(echo "$upstream" | tr '/:' '__')"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$id" ] \
     && curl -fsS -o /dev/null "http://$LAB_REGISTRY_PUSH/v2/${upstream%:*}/manifests/${upstream##*:}"; then
    continue
  fi
  log "pushing $image as $LAB_REGISTRY_IP:$LAB_REGISTRY_PORT/$upstream"
  docker tag "$image" "$LAB_REGISTRY_PUSH/$upstream"
  docker push -q "$LAB_REGISTRY_PUSH/$upstream" >/dev/null || die "push $upstream" "docker push to $LAB_REGISTRY_PUSH failed"
  echo "$id" > "$marker"
done

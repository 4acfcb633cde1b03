#!/usr/bin/env bash
# Make sure a Docker engine answers: install docker.io and start dockerd in the background if needed.
source "$(dirname "$0")/../lib.sh"
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  log "installing docker.io"
  "$REPO_DIR/tools/system-deps.sh" || die engine "could not install docker.io from the Debian mirror"
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl start docker || true
fi
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (no systemd here): log in /var/log/aistack-dockerd.log"
  nohup dockerd >/var/log/aistack-dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done
die engine "dockerd did not answer within 60 s; see /var/log/aistack-dockerd.log: $(tail -n 5 /var/log/aistack-dockerd.log 2>/dev/null | tr '\n' ' ')"

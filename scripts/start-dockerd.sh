#!/usr/bin/env bash
# Makes a Docker daemon answer, if this machine allows it, for the Docker test tier and
# `make images`. A no-op when one already answers. As root it installs docker.io when missing
# and starts dockerd with its data under /tmp (no systemd needed; --iptables=false because the
# containers use the host network). Never fails: when no daemon can be started it says why on
# stderr and exits 0, and the Docker tier then skips with that reason.
set -uo pipefail

DATA_ROOT="${GENOPIPE_DOCKER_DATA_ROOT:-/tmp/docker-data}"
LOG="${GENOPIPE_DOCKER_LOG:-/tmp/dockerd.log}"

answers() { docker info >/dev/null 2>&1; }

if answers; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "start-dockerd: no Docker daemon answers and not root: Docker tier will be skipped" >&2
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "start-dockerd: installing docker.io from Debian"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get install -y -q --no-install-recommends docker.io >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 &&
      apt-get install -y -q --no-install-recommends docker.io >/dev/null 2>&1; }; }; then
    echo "start-dockerd: apt-get install docker.io failed: Docker tier will be skipped" >&2
    exit 0
  fi
fi

mkdir -p "$DATA_ROOT"
# setsid: the daemon outlives this script and the make that called it
setsid dockerd --data-root "$DATA_ROOT" --iptables=false >"$LOG" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  if answers; then
    echo "start-dockerd: dockerd is up (data root $DATA_ROOT, log $LOG)"
    exit 0
  fi
  sleep 0.5
done
echo "start-dockerd: dockerd did not answer within 30 s (see $LOG): Docker tier will be skipped" >&2
exit 0

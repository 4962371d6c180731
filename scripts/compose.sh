#!/usr/bin/env bash
# The docker compose deployment (issue 6): `make images`, `make compose-up`, `make compose-down`.
#   deps     install docker.io, docker-compose and debootstrap (Debian) when missing
#   client   deps, then print the engine's own docker client that the other actions use
#   dockerd  start dockerd in the background (log .skiff/dockerd.log) unless a daemon answers
#   base     build the local Debian base image (debootstrap -> docker import) unless present
#   images   all of the above, then build every Skiff image
#   up       images, `docker-compose up -d`, wait for a Ready node, write .skiff/compose.kubeconfig
#   down     `docker-compose down -v` and remove what `up` wrote
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${SKIFF_STATE:-$ROOT/.skiff}
BASE_IMAGE=${SKIFF_BASE_IMAGE:-skiff/debian:bookworm}
MIRROR=${SKIFF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
TAG=${SKIFF_IMAGE_TAG:-dev}
CA_BUNDLE=${SKIFF_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-skiff}
export SKIFF_IMAGE_TAG=$TAG
export SKIFF_COMPOSE_OUT=$STATE/compose
# The engine's own client (Debian's docker.io): BuildKit (build secrets) needs it. It is
# resolved only after `deps` has installed it (engine_client): a fresh machine may have
# another `docker` first on PATH (a newer CLI without buildx, which fails every build).
ENGINE_CLIENT=${SKIFF_ENGINE_DOCKER:-/usr/bin/docker}
DOCKER=${DOCKER:-}
export DOCKER_BUILDKIT=1
COMPOSE=(docker-compose -f "$ROOT/compose.yaml")
# TRACING=1: the `tracing` profile (Jaeger; the components export to it once it resolves).
PROFILES=()
if [ "${TRACING:-0}" = 1 ]; then PROFILES=(--profile tracing); fi
KUBECTL=${KUBECTL:-kubectl}

log() { echo "[compose] $*"; }

engine_client() {
  if [ -n "$DOCKER" ]; then return; fi
  if [ -x "$ENGINE_CLIENT" ]; then DOCKER=$ENGINE_CLIENT; else DOCKER=docker; fi
}

deps() {
  local missing=""
  for p in docker.io docker-compose debootstrap; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    log "installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
  fi
}

dockerd_start() {
  if "$DOCKER" info >/dev/null 2>&1; then return; fi
  mkdir -p "$STATE"
  if [ -f "$STATE/dockerd.pid" ] && kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null; then
    log "dockerd (pid $(cat "$STATE/dockerd.pid")) starting"
  else
    log "starting dockerd (log $STATE/dockerd.log)"
    nohup dockerd >"$STATE/dockerd.log" 2>&1 &
    echo $! >"$STATE/dockerd.pid"
  fi
  for _ in $(seq 1 120); do
    if [ -S /var/run/docker.sock ] && "$DOCKER" info >/dev/null 2>&1; then return; fi
    sleep 0.5
  done
  echo "dockerd did not come up; see $STATE/dockerd.log" >&2
  exit 1
}

base() {
  if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  local dir; dir=$(mktemp -d /tmp/skiff-base.XXXXXX)
  log "debootstrap bookworm into $dir"
  debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >"$STATE/debootstrap.log" 2>&1 \
    || { echo "debootstrap failed; see $STATE/debootstrap.log" >&2; rm -rf "$dir"; exit 1; }
  # Keep the image small: no apt lists, caches, docs or man pages.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/*
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\npath-include /usr/share/doc/*/copyright\n' \
    >"$dir/etc/dpkg/dpkg.cfg.d/01-nodoc"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$dir/etc/apt/apt.conf.d/01-norecommends"
  tar -C "$dir" -c . | "$DOCKER" import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
  log "imported $BASE_IMAGE"
}

build() { # image, dockerfile
  log "building $1"
  "$DOCKER" build -q -t "$1" -f "$ROOT/$2" \
    --build-arg BASE="$BASE_IMAGE" --build-arg PYTHON_IMAGE="skiff/python:$TAG" \
    --build-arg NETTOOLS_IMAGE="skiff/nettools:$TAG" \
    --secret id=ca,src="$CA_BUNDLE" "$ROOT" >/dev/null
}

images() {
  mkdir -p "$STATE"
  deps
  engine_client
  dockerd_start
  base
  build "skiff/etcd:$TAG" docker/etcd/Dockerfile
  build "skiff/nats:$TAG" docker/nats/Dockerfile
  build "skiff/python:$TAG" docker/python/Dockerfile
  build "skiff/apiserver:$TAG" services/apiserver/Dockerfile
  build "skiff/scheduler:$TAG" services/scheduler/Dockerfile
  build "skiff/controller-manager:$TAG" services/controller-manager/Dockerfile
  build "skiff/nettools:$TAG" docker/nettools/Dockerfile
  build "skiff/node:$TAG" services/kubelet/Dockerfile
  # The add-ons' images (deploy/*.yaml name them :dev), exported for the nodes'
  # containerd: there is no registry for their kubelets to pull from.
  build skiff/proxy:dev services/proxy/Dockerfile
  build skiff/netagent:dev services/netagent/Dockerfile
  build skiff/dns:dev services/dns/Dockerfile
  export_node_images skiff/proxy:dev skiff/netagent:dev skiff/dns:dev
  "$DOCKER" images --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep '^skiff/' | sort
}

# `docker save` of the node add-ons into $SKIFF_COMPOSE_OUT/images (mounted into every node, which
# imports it at start); written again only when an image changed.
export_node_images() { # image...
  local dir=$SKIFF_COMPOSE_OUT/images ids
  mkdir -p "$dir"
  ids=$("$DOCKER" image inspect --format '{{.Id}}' "$@" | tr '\n' ' ')
  if [ -s "$dir/node-addons.tar" ] && [ "$(cat "$dir/.ids" 2>/dev/null)" = "$ids" ]; then
    return
  fi
  log "exporting $* for the nodes"
  "$DOCKER" save -o "$dir/.node-addons.tar" "$@"
  mv "$dir/.node-addons.tar" "$dir/node-addons.tar"
  echo "$ids" >"$dir/.ids"
}

wait_ready() { # seconds
  local kc=$STATE/compose.kubeconfig
  for _ in $(seq 1 "$1"); do
    if [ -s "$STATE/compose/kubeconfig" ]; then
      cp "$STATE/compose/kubeconfig" "$kc"
      if "$KUBECTL" --kubeconfig "$kc" get nodes --no-headers 2>/dev/null | grep -qw Ready; then
        return 0
      fi
    fi
    sleep 1
  done
  echo "timed out waiting for a Ready node" >&2
  "${COMPOSE[@]}" ps >&2 || true
  return 1
}

up() {
  images
  mkdir -p "$STATE/compose"
  rm -f "$STATE/compose/kubeconfig" "$STATE/compose.kubeconfig"
  local start=$SECONDS
  "${COMPOSE[@]}" "${PROFILES[@]}" up -d ${SKIFF_NODES:+--scale node=$SKIFF_NODES}
  wait_ready "${SKIFF_READY_TIMEOUT:-180}"
  log "a node is Ready $((SECONDS - start)) s after 'up'"
  cat <<MSG

Skiff runs in docker compose (project $COMPOSE_PROJECT_NAME). Use it with kubectl:
  export KUBECONFIG=$STATE/compose.kubeconfig
  kubectl get nodes
Stop it with: make compose-down
MSG
  if [ ${#PROFILES[@]} -gt 0 ]; then echo "Traces: http://127.0.0.1:${SKIFF_JAEGER_UI_PORT:-16686}"; fi
}

down() {
  engine_client
  if command -v docker-compose >/dev/null && "$DOCKER" info >/dev/null 2>&1; then
    # Anonymous volumes (containerd's data of each node) that a recreated container left
    # behind are not removed by `down -v`: note every volume of the project's containers.
    local vols
    vols=$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
      | xargs -r "$DOCKER" inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}')
    # Every profile, so that a Jaeger started with --profile tracing goes too.
    "${COMPOSE[@]}" --profile tracing down -v --remove-orphans
    for v in $vols; do "$DOCKER" volume rm "$v" >/dev/null 2>&1 || true; done
  fi
  rm -rf "$STATE/compose" "$STATE/compose.kubeconfig"
}

case "${1:-}" in
  deps) deps ;;
  client) deps >&2; engine_client; echo "$DOCKER" ;;
  dockerd) mkdir -p "$STATE"; deps; engine_client; dockerd_start ;;
  base) mkdir -p "$STATE"; deps; engine_client; dockerd_start; base ;;
  images) images ;;
  up) up ;;
  down) down ;;
  *) echo "usage: $0 deps|client|dockerd|base|images|up|down" >&2; exit 2 ;;
esac

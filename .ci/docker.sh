#!/usr/bin/env bash
# Docker engine for CI and local development, on machines without a public container registry.
#
#   source <(.ci/docker.sh start)   # install + start dockerd when needed, build/cache base images,
#                                   # print `export` lines (the only thing written to stdout)
#   .ci/docker.sh stop              # stop the daemon this shell's `start` started (never another)
#   .ci/docker.sh mirror            # print the Debian mirror debootstrap would use
#
# Why this shape (see shared ENVIRONMENT.md): Debian's docker.io runs here without a bridge network
# (no iptables), so everything uses host networking; no registry is reachable, so base images come
# from a debootstrap root file system and are cached in the engine's data root: a second `start` on
# the same machine reuses them.
#
# Who stops the daemon: `start` prints `export AMLPIPE_DOCKERD_PID=<pid>` only when it started
# dockerd itself, and `stop` stops only that pid. A second checkout (or CI clone) on the same machine
# that found the engine already running gets an empty value, so its `stop` leaves the daemon to
# whoever started it (the pid file is shared machine state and says nothing about who is asking).
set -euo pipefail

STATE_DIR="${AMLPIPE_DOCKER_STATE:-/var/tmp/amlpipe-docker}"
PID_FILE="$STATE_DIR/dockerd.pid"
LOG_FILE="$STATE_DIR/dockerd.log"
SOCKET="/var/run/docker.sock"
# The Debian archive for debootstrap: DEBIAN_MIRROR, else the host's own apt sources (a company
# mirror or proxy works as it does for the host's apt; no package host is written here).
APT_ETC="${AMLPIPE_APT_ETC:-/etc/apt}"
OS_RELEASE="${AMLPIPE_OS_RELEASE:-/etc/os-release}"
SUITE="bookworm"
# Bare Debian: what a step would start from without the custom image (used by bench/cold_start.py).
BARE_IMAGE="${AMLPIPE_BARE_BASE_IMAGE:-local/debian-minbase:bookworm}"
# Debian with Python and R and the R packages the samples need: stands in for the Azure ML base
# image when building docker/Dockerfile here (`--build-arg BASE_IMAGE=...`).
BASE_IMAGE="${AMLPIPE_TEST_BASE_IMAGE:-local/azureml-base:bookworm}"
# Host packages: the engine, debootstrap, and Python + R for `amlpipe run --executor process` tests.
HOST_PACKAGES=(docker.io debootstrap python3 r-base-core r-cran-gbm r-cran-caret r-cran-optparse
  r-cran-jsonlite)
BASE_PACKAGES=(python3 python3-venv ca-certificates r-base-core r-cran-gbm r-cran-caret r-cran-optparse
  r-cran-jsonlite)

log() { echo "docker.sh: $*" >&2; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "$1 needs root (run as root, or start Docker yourself and export DOCKER_HOST)"
    exit 1
  fi
}

install_host_packages() {
  local missing=()
  for pkg in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    need_root "installing ${missing[*]}"
    log "installing ${missing[*]}"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
}

engine_reachable() {
  # `docker version` talks to the daemon; the server part fails when none answers.
  docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# The pid of the dockerd this invocation started; stays empty when an engine was already running.
STARTED_PID=""

start_daemon() {
  if engine_reachable; then
    log "a Docker engine is already running: using it (it will not be stopped)"
    return
  fi
  need_root "starting dockerd"
  mkdir -p "$STATE_DIR"
  log "starting dockerd (log: $LOG_FILE)"
  # No bridge and no iptables: this machine cannot create bridge networks; containers and builds
  # use the host network instead.
  nohup dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    >"$LOG_FILE" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  for _ in $(seq 1 60); do
    if [ -S "$SOCKET" ] && engine_reachable; then
      STARTED_PID="$(cat "$PID_FILE")"
      log "dockerd is up (pid $STARTED_PID)"
      return
    fi
    if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      log "dockerd exited during start-up; last log lines:"
      tail -n 20 "$LOG_FILE" >&2
      rm -f "$PID_FILE"
      exit 1
    fi
    sleep 0.5
  done
  log "dockerd did not answer within 30 s; see $LOG_FILE"
  exit 1
}

# "URI SUITE" for every enabled `deb` entry of the host's apt sources: one-line format
# (sources.list, sources.list.d/*.list) and deb822 (sources.list.d/*.sources), in apt's file order.
apt_deb_entries() {
  local file
  if [ -f "$APT_ETC/sources.list" ]; then
    one_line_entries "$APT_ETC/sources.list"
  fi
  for file in "$APT_ETC"/sources.list.d/*; do
    case "$file" in
      *.list) one_line_entries "$file" ;;
      *.sources) deb822_entries "$file" ;;
    esac
  done
}

one_line_entries() {
  # `deb [options] URI SUITE COMPONENT...`; comments and the bracketed options dropped.
  sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$1" | awk '$1 == "deb" && NF >= 3 { print $2, $3 }'
}

deb822_entries() {
  # Paragraphs of `Field: value` lines (values may continue on indented lines); Enabled: no skips.
  awk '
    function flush(   n, m, i, j, u, s) {
      if (types ~ /(^| )deb( |$)/ && enabled != "no") {
        n = split(uris, u, " "); m = split(suites, s, " ")
        for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print u[i], s[j]
      }
      types = ""; uris = ""; suites = ""; enabled = "yes"; field = ""
    }
    function add(key, value) {
      if (key == "types") types = types " " value
      else if (key == "uris") uris = uris " " value
      else if (key == "suites") suites = suites " " value
      else if (key == "enabled") enabled = tolower(value)
    }
    BEGIN { enabled = "yes" }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    /^[ \t]/ { value = $0; gsub(/^[ \t]+|[ \t]+$/, "", value); add(field, value); next }
    {
      colon = index($0, ":")
      if (colon == 0) next
      field = tolower(substr($0, 1, colon - 1)); gsub(/[ \t]/, "", field)
      value = substr($0, colon + 1); gsub(/^[ \t]+|[ \t]+$/, "", value)
      add(field, value)
    }
    END { flush() }
  ' "$1"
}

# The mirror for debootstrap: DEBIAN_MIRROR, else the host's source for $SUITE, else (on a Debian
# host of another release) the host's source for its own release: a Debian mirror carries them all.
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "${DEBIAN_MIRROR%/}"
    return
  fi
  local entries codename="" id="" uri suite
  entries="$(apt_deb_entries | grep -v '^cdrom:' || true)"
  if [ -f "$OS_RELEASE" ]; then
    id="$(. "$OS_RELEASE" && echo "${ID:-}")"
    codename="$(. "$OS_RELEASE" && echo "${VERSION_CODENAME:-}")"
  fi
  while read -r uri suite; do
    if [ "$suite" = "$SUITE" ]; then
      echo "${uri%/}"
      return
    fi
  done <<<"$entries"
  if [ "$id" = "debian" ] && [ -n "$codename" ]; then
    while read -r uri suite; do
      if [ "$suite" = "$codename" ]; then
        echo "${uri%/}"
        return
      fi
    done <<<"$entries"
  fi
  log "no Debian mirror: no \`deb\` entry for suite $SUITE (or a Debian host's own release)" \
    "in the host's apt sources ($APT_ETC/sources.list, $APT_ETC/sources.list.d/*.list," \
    "*.sources); set DEBIAN_MIRROR=<Debian archive URL> (e.g. your company mirror)"
  return 1
}

image_exists() {
  docker image inspect "$1" >/dev/null 2>&1
}

build_bare_image() {
  if image_exists "$BARE_IMAGE"; then
    log "base image $BARE_IMAGE cached"
    return
  fi
  need_root "debootstrap"
  local rootfs mirror
  mirror="$(debian_mirror)"
  rootfs="$(mktemp -d /var/tmp/amlpipe-rootfs.XXXXXX)"
  log "debootstrap $SUITE from $mirror into $rootfs (about 30 s)"
  debootstrap --variant=minbase --include=python3-minimal,ca-certificates "$SUITE" "$rootfs" \
    "$mirror" >&2
  # The image's apt needs no recommends either: keeps later installs (and the bench) small.
  printf 'APT::Install-Recommends "false";\n' >"$rootfs/etc/apt/apt.conf.d/99no-recommends"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$BARE_IMAGE" >&2
  rm -rf "$rootfs"
}

build_base_image() {
  if image_exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE cached"
    return
  fi
  log "building $BASE_IMAGE from $BARE_IMAGE (Python, R, ${BASE_PACKAGES[*]})"
  local context
  context="$(mktemp -d /var/tmp/amlpipe-base.XXXXXX)"
  # The host's CA bundle: HTTPS from inside builds (pip -> PyPI) may pass through a proxy whose CA
  # only the host trusts. It replaces the image's bundle after ca-certificates is installed, and
  # PIP_CERT points pip at it (a pip from ensurepip may otherwise use its own certifi bundle).
  cp "${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" "$context/host-ca-bundle.crt"
  cat >"$context/Dockerfile" <<DOCKERFILE
FROM $BARE_IMAGE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    ${BASE_PACKAGES[*]} && rm -rf /var/lib/apt/lists/*
COPY host-ca-bundle.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
DOCKERFILE
  docker build --network=host -t "$BASE_IMAGE" "$context" >&2
  rm -rf "$context"
}

cmd_start() {
  install_host_packages
  start_daemon
  build_bare_image
  build_base_image
  # The only stdout: what `source <(.ci/docker.sh start)` should set.
  echo "export DOCKER_HOST=${DOCKER_HOST:-unix://$SOCKET}"
  echo "export AMLPIPE_TEST_BASE_IMAGE=$BASE_IMAGE"
  echo "export AMLPIPE_BARE_BASE_IMAGE=$BARE_IMAGE"
  echo "export AMLPIPE_DOCKERD_PID=$STARTED_PID"
}

cmd_stop() {
  local pid="${AMLPIPE_DOCKERD_PID:-}"
  if [ -z "$pid" ]; then
    log "this shell's \`start\` did not start dockerd (AMLPIPE_DOCKERD_PID is empty): nothing to stop"
    return
  fi
  # Only stop the pid `start` reported, and only if it still is dockerd (pids get reused).
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "dockerd" ]; then
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
  else
    log "pid $pid is no longer dockerd: nothing to stop"
  fi
  if [ -f "$PID_FILE" ] && [ "$(cat "$PID_FILE")" = "$pid" ]; then
    rm -f "$PID_FILE"
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  mirror) debian_mirror ;;
  *)
    echo "usage: $0 start|stop|mirror" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Builds anchor's images, each cached on this machine by the hash of what goes into it:
#   job          Dockerfile.job           `anchor render` (the broadcast's job container)
#   controller   Dockerfile.controller    `anchor controller` (the operator)
#   engine-mock  Dockerfile.voicevox-mock the CPU mock of voicevox/voicevox_engine (same path, flags, port, probe)
#
#   scripts/images.sh           build what is missing, then print NAME=IMAGE lines (stdout)
#   scripts/images.sh --refs    print the NAME=IMAGE lines the current sources give, building nothing
#   scripts/images.sh --sizes   also print each image's size minus its base, against the budgets
#
# The base is the official Python image the Dockerfiles name (PYTHON_IMAGE below). Where no registry answers, it
# is made here from Debian's packages (debootstrap bookworm, python3 and venv, this machine's CA bundle) and cached
# as a local image; ANCHOR_PYTHON_IMAGE names another base. A user with Docker Hub access can also build with a
# plain `docker build -f Dockerfile.job .`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_IMAGE="python:3.11.11-slim-bookworm"
DEBIAN_SUITE="bookworm"
DEBIAN_MIRROR="${ANCHOR_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
REGISTRY="${ANCHOR_IMAGE_REGISTRY:-ghcr.io/anchor-news}"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# Size budgets above the base, in MB: every 100 MB is seconds of pull on each new (spot) node.
declare -A BUDGET=([job]=550 [controller]=170 [engine-mock]=500)
declare -A DOCKERFILE=([job]=Dockerfile.job [controller]=Dockerfile.controller [engine-mock]=Dockerfile.voicevox-mock)
declare -A REPOSITORY=([job]=anchor-job [controller]=anchor-controller [engine-mock]=anchor-voicevox-mock)
declare -A SOURCES=([job]="anchor api job" [controller]="anchor api controller" [engine-mock]="voicevox_standin")
NAMES=(job controller engine-mock)

mode=${1:-build}
say() { echo "images: $*" >&2; }

# Exit 3: no Docker here (make test then runs the rest, and the image tests skip saying so).
command -v docker >/dev/null || { say "docker is not installed (apt-get install docker.io)"; exit 3; }
docker info >/dev/null 2>&1 || { say "no Docker daemon answers (scripts/with-docker.sh starts one)"; exit 3; }

exists() { docker image inspect "$1" >/dev/null 2>&1; }

# The base built from Debian packages, named by the hash of its recipe.
debian_base() {
  local key ref rootfs
  key=$(printf '%s\n' "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "python3,python3-venv,ca-certificates" "v1" \
    | cat - /etc/ssl/certs/ca-certificates.crt | sha256sum | cut -c1-12)
  ref="anchor-base/python:3.11-$DEBIAN_SUITE-$key"
  if ! exists "$ref"; then
    [[ "$mode" != "--refs" ]] || { say "the base $ref is not built yet: run scripts/images.sh"; return 1; }
    command -v debootstrap >/dev/null || { say "no registry answers and debootstrap is missing (apt-get install debootstrap)"; return 1; }
    say "no registry answers: making the base $ref from Debian packages (about 3 minutes, once per machine)"
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >&2
    ln -sf python3 "$rootfs/usr/bin/python"
    # This machine's bundle: pip and apt inside the build may pass through a TLS-inspecting proxy.
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | docker import \
      --change 'ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
      --change 'CMD ["python3"]' - "$ref" >/dev/null
    rm -rf "$rootfs"
  fi
  echo "$ref"
}

base_image() {
  if [[ -n "${ANCHOR_PYTHON_IMAGE:-}" ]]; then
    echo "$ANCHOR_PYTHON_IMAGE"
  elif exists "$PYTHON_IMAGE" || { [[ "$mode" != "--refs" ]] && timeout 60 docker pull -q "$PYTHON_IMAGE" >/dev/null 2>&1; }; then
    echo "$PYTHON_IMAGE"
  else
    debian_base
  fi
}

# The image's tag: the version and a hash of its Dockerfile, base, dependencies and sources.
ref_of() {
  local name=$1 base_id=$2 key dirs
  read -ra dirs <<<"${SOURCES[$name]}"
  key=$({
    echo "$base_id"
    sha256sum "${DOCKERFILE[$name]}" .dockerignore
    # What pyproject.toml gives the image (dependencies, entry points, packages), not the linters' settings.
    python3 -c 'import json, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))
print(json.dumps([p["project"], p["tool"]["setuptools"]], sort_keys=True))' 
    find "${dirs[@]}" -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 | sort -z \
      | xargs -0 sha256sum
  } | sha256sum | cut -c1-12)
  echo "$REGISTRY/${REPOSITORY[$name]}:$VERSION-dev.$key"
}

size_mb() { echo $(( $(docker image inspect -f '{{.Size}}' "$1") / 1000000 )); }

base=$(base_image)
base_id=$(docker image inspect -f '{{.Id}}' "$base" 2>/dev/null || true)
if [[ -z "$base_id" ]]; then
  say "the base image $base is not here (run scripts/images.sh once to make it)"
  exit 1
fi
declare -A REF
for name in "${NAMES[@]}"; do
  REF[$name]=$(ref_of "$name" "$base_id")
done
if [[ "$mode" != "--refs" ]]; then
  for name in "${NAMES[@]}"; do
    ref=${REF[$name]}
    if exists "$ref"; then
      say "$name: $ref cached"
      continue
    fi
    say "$name: building $ref from ${DOCKERFILE[$name]} on $base"
    started=$SECONDS
    DOCKER_BUILDKIT=0 docker build --network host --quiet --build-arg "PYTHON_IMAGE=$base" \
      -f "${DOCKERFILE[$name]}" -t "$ref" . >&2
    say "$name: built in $((SECONDS - started)) s"
  done
fi
if [[ "$mode" == "--sizes" ]]; then
  base_mb=$(size_mb "$base")
  for name in "${NAMES[@]}"; do
    mb=$(size_mb "${REF[$name]}")
    echo "size $name $((mb - base_mb)) MB above the base ($mb MB in all, base $base_mb MB; budget ${BUDGET[$name]} MB)" >&2
  done
fi
for name in "${NAMES[@]}"; do
  echo "$name=${REF[$name]}"
done
echo "base=$base"

#!/usr/bin/env bash
# Builds the real servers the test suite runs (MinIO today; Kubernetes and kwok join with the controller)
# from the Go module proxy into a per-machine cache outside the repository, keyed by name and version.
# A tool already in the cache is skipped, so only a machine's first run pays for the builds.
#
#   scripts/test-tools.sh            build whatever is missing, print the cache directory
#   scripts/test-tools.sh --path     print the cache directory only
#
# Cold cost on 2 cores: MinIO about 3.5 minutes (about 1.5 GB peak memory, a 112 MB binary).
set -euo pipefail

CACHE="${ANCHOR_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/anchor/tools}"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"   # the archived upstream's last commit

if [[ "${1:-}" == "--path" ]]; then
  echo "$CACHE"
  exit 0
fi

command -v go >/dev/null || { echo "test-tools: Go is required to build the test servers (none on PATH)" >&2; exit 1; }
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

# go_install NAME VERSION BINARY PACKAGE@VERSION...: installs into $CACHE/NAME-VERSION/ unless BINARY is there.
go_install() {
  local name=$1 version=$2 binary=$3; shift 3
  local dir="$CACHE/$name-$version"
  if [[ -x "$dir/$binary" ]]; then
    echo "test-tools: $name $version cached at $dir" >&2
    return 0
  fi
  echo "test-tools: building $name $version (first run on this machine; cached afterwards)" >&2
  local tmp="$dir.partial.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  local started=$SECONDS
  if ! GOBIN="$tmp" go install -trimpath -ldflags='-s -w' "$@"; then
    rm -rf "$tmp"
    echo "test-tools: FAILED to build $name $version ($*); see the go output above" >&2
    exit 1
  fi
  rm -rf "$dir"; mv "$tmp" "$dir"
  echo "test-tools: built $name $version in $((SECONDS - started)) s" >&2
}

go_install minio "$MINIO_VERSION" minio "github.com/minio/minio@$MINIO_VERSION"

echo "$CACHE"

#!/usr/bin/env bash
# Builds the real servers the test suite runs from the Go module proxy into a per-machine cache outside the
# repository, keyed by name and version. A tool already in the cache is skipped, so only a machine's first run
# pays for the builds.
#
#   scripts/test-tools.sh            build whatever is missing, print the cache directory
#   scripts/test-tools.sh --path     print the cache directory only
#
# Cold cost on 2 cores, measured with the builds side by side (below): 929 s in all. Each build took, while others
# ran beside it: the Kubernetes control plane 795 s then its kubelet 53 s (2 GB peak memory, 1.5 GB module cache,
# 4 GB build cache), SeaweedFS 733 s, MinIO 357 s, helm 307 s, kwok 177 s, Compose 106 s, containerd 90 s, etcd 64 s,
# runc 32 s, the CNI plugins, actionlint and helm-docs 11-13 s each. runc needs libseccomp-dev, pkg-config and gcc,
# which scripts/host-packages.sh installs with apt-get as root.
set -euo pipefail

CACHE="${ANCHOR_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/anchor/tools}"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"   # the archived upstream's last commit
KWOK_VERSION="v0.8.0"
ETCD_VERSION="v3.6.16"
KUBERNETES_VERSION="v1.36.3"
HELM_VERSION="v4.3.1"
# The real node: kubelet of KUBERNETES_VERSION (its own cache entry), containerd 2 (Kubernetes 1.36 needs it), runc
# (Debian's 1.1 fails under containerd 2.4) and the CNI plugins of containernetworking/plugins.
CONTAINERD_VERSION="v2.4.2"
RUNC_VERSION="v1.5.3"
CNI_VERSION="v1.10.0"
# Shipping (issue 15): Docker Compose v5 as a CLI plugin (the compose test runs the README's routine with it),
# actionlint for .github/workflows and helm-docs for the chart's README.
COMPOSE_VERSION="v5.6.0"   # v5.7 needs Go 1.26.10; this machine has 1.26.8
ACTIONLINT_VERSION="v1.7.12"
HELM_DOCS_VERSION="v1.14.2"
# Prometheus' promtool, which checks the chart's alert rules and runs their unit tests (issue 24).
PROMETHEUS_VERSION="v0.316.0"

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

# scratch_build NAME VERSION: builds in a scratch module under $CACHE/NAME-VERSION/src from go.mod, main.go or
# tools.go written by the caller's `write_NAME` function, then `go build` of each package listed in BUILD.
scratch_build() {
  local name=$1 version=$2; shift 2
  local dir="$CACHE/$name-$version"
  if [[ -f "$dir/.complete" ]]; then
    echo "test-tools: $name $version cached at $dir" >&2
    return 0
  fi
  echo "test-tools: building $name $version (first run on this machine; cached afterwards)" >&2
  local started=$SECONDS
  rm -rf "$dir"; mkdir -p "$dir/src"
  if ! ( cd "$dir/src" && "write_$name" "$version" && go mod tidy >&2 && "build_$name" "$version" "$dir" ); then
    rm -rf "$dir"
    echo "test-tools: FAILED to build $name $version; see the go output above" >&2
    exit 1
  fi
  touch "$dir/.complete"
  echo "test-tools: built $name $version in $((SECONDS - started)) s" >&2
}

write_etcd() {
  cat > go.mod <<MOD
module anchor.test/etcd
go 1.24
require go.etcd.io/etcd/server/v3 $1
MOD
  cat > main.go <<'SRC'
// etcd's own entry point, built from the module proxy for the test control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
SRC
}
build_etcd() { go build -trimpath -ldflags='-s -w' -o "$2/etcd" . ; }

# KUBE_COMMANDS: the commands of k8s.io/kubernetes/cmd that write_kubernetes and build_kubernetes take.
KUBE_COMMANDS="kube-apiserver kube-controller-manager kube-scheduler kubectl"

write_kubernetes() {
  local version=$1 minor=${1#v1.}; minor=${minor%%.*}
  # k8s.io/kubernetes replaces its staging modules with local paths; point each at its published version.
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f "$gomod" ]] || { echo "test-tools: no go.mod for k8s.io/kubernetes@$version" >&2; return 1; }
  {
    echo "module anchor.test/kubernetes"
    echo "go 1.25"
    echo "require k8s.io/kubernetes $version"
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod" \
      | while read -r module; do echo "replace $module => $module v0.$minor.${version##*.}"; done
  } > go.mod
  {
    printf '//go:build tools\n\n// The Kubernetes commands the test suite runs, built from the module proxy.\npackage tools\n\n'
    for cmd in $KUBE_COMMANDS; do echo "import _ \"k8s.io/kubernetes/cmd/$cmd\""; done
  } > tools.go
}
build_kubernetes() {
  local version=$1 dir=$2 minor=${1#v1.}; minor=${minor%%.*}
  local flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  local cmd
  for cmd in $KUBE_COMMANDS; do
    go build -tags tools -trimpath -ldflags="$flags" -o "$dir/$cmd" "k8s.io/kubernetes/cmd/$cmd" || return 1
  done
}

# The kubelet: the same scratch module with cmd/kubelet alone, so a machine whose control plane is cached builds only
# this (about a minute, the build cache shared).
write_kubelet() { KUBE_COMMANDS=kubelet write_kubernetes "$@"; }
build_kubelet() { KUBE_COMMANDS=kubelet build_kubernetes "$@"; }

# Compose's main package is github.com/docker/compose/v5/cmd; built under the name the Docker CLI looks for plugins by.
write_compose() {
  cat > go.mod <<MOD
module anchor.test/compose
go 1.25
require github.com/docker/compose/v5 $1
MOD
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/docker/compose/v5/cmd"\n' > tools.go
}
build_compose() {
  go build -tags tools -trimpath -ldflags="-s -w -X github.com/docker/compose/v5/internal.Version=$1" \
    -o "$2/docker-compose" github.com/docker/compose/v5/cmd
}

# runc's seccomp support is cgo against libseccomp: scripts/host-packages.sh installs it where it may.
need_libseccomp() {
  "$(dirname "$0")/host-packages.sh"
  pkg-config --exists libseccomp 2>/dev/null && command -v gcc >/dev/null && return 0
  echo "test-tools: runc needs libseccomp-dev, pkg-config and gcc (Debian: apt-get install libseccomp-dev pkg-config gcc)" >&2
  exit 1
}

# SeaweedFS (`weed`) for the compose file's `s3` profile, which the compose test runs for real (about 4 min cold on
# 2 cores). Its go.mod has a replace directive, which `go install pkg@version` refuses, so it is built in a scratch
# module that copies the module's non-local replace lines. This commit reports version 4.53 (weed/util/version),
# the chrislusf/seaweedfs tag compose.yaml pins.
SEAWEEDFS_VERSION="v0.0.0-20261109003541-7506e5f91cd6"
write_seaweedfs() {
  local gomod
  gomod=$(go mod download -json "github.com/seaweedfs/seaweedfs@$1" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f "$gomod" ]] || { echo "test-tools: no go.mod for github.com/seaweedfs/seaweedfs@$1" >&2; return 1; }
  {
    echo "module anchor.test/seaweedfs"
    sed -n 's/^go \(.*\)/go \1/p' "$gomod"
    echo "require github.com/seaweedfs/seaweedfs $1"
    grep -E '^replace .* => [^./]' "$gomod" || true
  } > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/seaweedfs/seaweedfs/weed"\n' > tools.go
}
build_seaweedfs() {
  go build -tags tools -trimpath -o "$2/weed" \
    -ldflags="-s -w -X github.com/seaweedfs/seaweedfs/weed/util/version.COMMIT=${1##*-}" github.com/seaweedfs/seaweedfs/weed
}

# The builds run side by side, ANCHOR_TOOLS_JOBS at a time (default 3): on 2 cores much of a cold build is waiting for
# the module proxy, which the others' compiling fills. Peak memory with the default is about 5 GB. Each build's output
# goes to $CACHE/logs/NAME.log, printed when it ends; the first failure is reported once all have stopped.
JOBS="${ANCHOR_TOOLS_JOBS:-3}"
mkdir -p "$CACHE/logs"
names=() pids=()
spawn() {
  local name=$1; shift
  while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
  ( "$@" ) >"$CACHE/logs/$name.log" 2>&1 &
  names+=("$name"); pids+=("$!")
}
containerd=github.com/containerd/containerd/v2/cmd
cni=github.com/containernetworking/plugins/plugins
[[ -x "$CACHE/runc-$RUNC_VERSION/runc" ]] || need_libseccomp
# The longest first. The kubelet shares the control plane's build cache, so it follows it in one job.
control_plane_and_kubelet() { scratch_build kubernetes "$KUBERNETES_VERSION" && scratch_build kubelet "$KUBERNETES_VERSION"; }
spawn kubernetes control_plane_and_kubelet
spawn seaweedfs scratch_build seaweedfs "$SEAWEEDFS_VERSION"
spawn minio go_install minio "$MINIO_VERSION" minio "github.com/minio/minio@$MINIO_VERSION"
spawn helm go_install helm "$HELM_VERSION" helm "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
spawn kwok go_install kwok "$KWOK_VERSION" kwokctl "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" \
  "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
spawn compose scratch_build compose "$COMPOSE_VERSION"
spawn containerd go_install containerd "$CONTAINERD_VERSION" containerd -tags no_btrfs \
  "$containerd/containerd@$CONTAINERD_VERSION" "$containerd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
  "$containerd/ctr@$CONTAINERD_VERSION"
spawn etcd scratch_build etcd "$ETCD_VERSION"
runc_with_seccomp() { CGO_ENABLED=1 go_install runc "$RUNC_VERSION" runc -tags seccomp "github.com/opencontainers/runc@$RUNC_VERSION"; }
spawn runc runc_with_seccomp
spawn cni go_install cni "$CNI_VERSION" bridge "$cni/main/bridge@$CNI_VERSION" "$cni/main/loopback@$CNI_VERSION" \
  "$cni/ipam/host-local@$CNI_VERSION"
spawn actionlint go_install actionlint "$ACTIONLINT_VERSION" actionlint \
  "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
spawn helm-docs go_install helm-docs "$HELM_DOCS_VERSION" helm-docs \
  "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
spawn promtool go_install promtool "$PROMETHEUS_VERSION" promtool \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"

failed=()
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed+=("${names[$i]}")
  cat "$CACHE/logs/${names[$i]}.log" >&2
done
if (( ${#failed[@]} )); then
  echo "test-tools: FAILED: ${failed[*]} (logs in $CACHE/logs/)" >&2
  exit 1
fi
echo "$CACHE"

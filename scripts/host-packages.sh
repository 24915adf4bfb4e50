#!/usr/bin/env bash
# Installs the Debian packages the tests use beyond Python and Go, when they are missing and this is root on a
# Debian-like machine: docker.io (dockerd: the images and the real node's images), debootstrap (the images' base
# where no registry answers), libseccomp-dev, pkg-config and gcc (runc's seccomp support, for the real node),
# chromium with chromium-driver (the broadcast page opened in a real headless browser), and openssl (serving
# certificates for the test webhook servers: Kueue's).
# Anywhere else it names what is missing, and the tests that need it skip saying why.
set -euo pipefail

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
# Ubuntu's debootstrap checks a Debian suite against Debian's keyring, which only Debian installs by default.
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
pkg-config --exists libseccomp 2>/dev/null || need+=(libseccomp-dev pkg-config)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v openssl >/dev/null || need+=(openssl)  # the test webhooks' serving certificates (Kueue's)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
[[ ${#need[@]} -eq 0 ]] && exit 0

if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "host-packages: missing ${need[*]} (install them as root); the tests that need them will skip" >&2
  exit 0
fi
echo "host-packages: installing ${need[*]} (once per machine)" >&2
apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2

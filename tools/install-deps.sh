#!/usr/bin/env bash
# Installs everything kboot needs to build, test and benchmark, from Debian's archive.
# Run as root, or as a user who may use sudo (it is called only to install what is missing).
# Safe to re-run: does nothing when all is present.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  liblua5.4-dev lua5.4 libssl-dev openssl libcurl4-openssl-dev libyaml-dev
  lua-cjson-dev lua-cjson libedit-dev zlib1g-dev
  libcmocka-dev lua-unit etcd-server etcd-client
  valgrind curl ca-certificates procps iproute2 python3 python3-cryptography python3-yaml tmux
  strace time binutils
)

# kubectl checks what kboot writes. Debian images often ship one (google-cloud-cli); otherwise
# Debian's kubernetes-client provides it.
command -v kubectl >/dev/null 2>&1 || PACKAGES+=(kubernetes-client)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

# apt-get as root itself, or through sudo for another user (tools/as_root.sh)
. "$(dirname "$0")/as_root.sh"
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "install-deps: missing ${missing[*]}; run this as root (or install sudo) to install them" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
as_root apt-get update -qq
as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"

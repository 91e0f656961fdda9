#!/usr/bin/env bash
# Builds a real Kubernetes v1.20.2 control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl) from Debian bookworm's `kubernetes` source package, once, into a cache
# directory outside the repository; later runs reuse it. apt-get (and the cache directory, when
# this user may not create it) as root, or through sudo for another user (tools/as_root.sh); the
# build itself runs as whoever runs this.
#   KBOOT_E2E_CACHE   cache directory (default /var/cache/kboot-e2e)
# Prints the directory holding the binaries on its last line.
set -euo pipefail
cache=${KBOOT_E2E_CACHE:-/var/cache/kboot-e2e}
bin=$cache/bin
want=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

have_all() { for b in "${want[@]}"; do [ -x "$bin/$b" ] || return 1; done; }
if have_all; then echo "$bin"; exit 0; fi

. "$(dirname "$0")/../../tools/as_root.sh"
if ! mkdir -p "$cache" "$bin" 2>/dev/null || [ ! -w "$cache" ] || [ ! -w "$bin" ]; then
  as_root mkdir -p "$cache" "$bin"
  as_root chown -R "$(id -u):$(id -g)" "$cache"
fi
export DEBIAN_FRONTEND=noninteractive
src_list=/etc/apt/sources.list.d/kboot-deb-src.sources
if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    | as_root tee "$src_list" >/dev/null
  as_root apt-get update -qq
fi
as_root apt-get install -y -qq --no-install-recommends golang-go golang-github-modern-go-reflect2-dev dpkg-dev rsync >/dev/null

cd "$cache"
tree=$(find "$cache" -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
if [ -z "$tree" ]; then
  apt-get source -qq kubernetes >/dev/null
  tree=$(find "$cache" -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
fi
[ -n "$tree" ] || { echo "build-control-plane: apt-get source kubernetes produced no tree" >&2; exit 1; }

# reflect2 1.0.1 (vendored) crashes binaries built with Go >= 1.18; use Debian's 1.0.2.
r2=/usr/share/gocode/src/github.com/modern-go/reflect2
if [ ! -f "$tree/.kboot-reflect2" ]; then
  rsync -a --delete --exclude '*_test.go' "$r2/" "$tree/vendor/github.com/modern-go/reflect2/"
  touch "$tree/.kboot-reflect2"
fi

gopath=$cache/gopath
mkdir -p "$gopath/src/k8s.io"
ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"
export GOPATH=$gopath GO111MODULE=off CGO_ENABLED=0 GOCACHE=$cache/gocache
cd "$gopath/src/k8s.io/kubernetes"
if [ ! -f .kboot-openapi ]; then
  make gen_openapi >"$cache/gen_openapi.log" 2>&1 || { tail -n 30 "$cache/gen_openapi.log" >&2; exit 1; }
  touch .kboot-openapi
fi
# Stamp the version as upstream's hack/lib/version.sh does, so /version and kubectl report v1.20.2.
ver=v1.20.2
ldflags=""
for pkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$ver -X $pkg.gitMajor=1 -X $pkg.gitMinor=20 -X $pkg.gitTreeState=clean"
done
for b in "${want[@]}"; do
  [ -x "$bin/$b" ] && continue
  echo "build-control-plane: building $b" >&2
  go build -ldflags "$ldflags" -o "$bin/$b.tmp" "./cmd/$b"
  mv "$bin/$b.tmp" "$bin/$b"
done
echo "$bin"

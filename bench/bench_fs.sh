#!/bin/bash
# kboot.fs group commit: for each kboot binary given (e.g. one built before the batches and one
# after), the fsync/syncfs calls (strace -f) and the median wall time of an offline ECDSA-P256
# `kboot init` into a fresh sandbox root (bench_init.sh's config), the binaries interleaved round
# by round (RUNS rounds, default 9). Then the cost of each kboot.fs operation under a root
# (bench_fs_ops.lua; with openat2 and with the component walk of confinement). Then, when a C
# compiler is there, bench_fs_sync.c: the four ways to make one init's 34 small files durable,
# in a directory next to the roots.
# Usage: bench/bench_fs.sh [KBOOT_BIN...] (default build/kboot)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
RUNS=${RUNS:-9}
[ $# -gt 0 ] || set -- "${KBOOT_BIN:-$SRC/build/kboot}"
TMP=$(mktemp -d /tmp/kboot-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
printf 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.10\nnodeRegistration:\n  name: node-1\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\n' >"$TMP/cfg.yaml"

init() { # BIN [PREFIX...]: one init into a fresh root; fails the benchmark if it did not finish
  local bin=$1; shift
  rm -rf "$TMP/root" && mkdir "$TMP/root"
  "$@" "$bin" init --root "$TMP/root" --config "$TMP/cfg.yaml" --skip-phases=preflight --offline >/dev/null 2>&1
  test -f "$TMP/root/etc/kubernetes/manifests/kube-apiserver.yaml" || { echo "init run failed ($bin)" >&2; exit 1; }
}
ms() {
  local t0=$EPOCHREALTIME
  "$@"
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'
}

for ((r = 0; r < RUNS; r++)); do
  for ((i = 1; i <= $#; i++)); do ms init "${!i}" >>"$TMP/t.$i"; done
done

echo "kboot.fs syncs of one init-offline ECDSA-P256 (kboot init --root ROOT --config CFG --skip-phases=preflight --offline)"
echo "  $(nproc) cores; median of $RUNS interleaved rounds; load $(cut -d' ' -f1-3 /proc/loadavg); $(df -T "$TMP" | awk 'NR == 2 {print $2}') at $TMP"
for ((i = 1; i <= $#; i++)); do
  bin=${!i}
  if command -v strace >/dev/null; then
    init "$bin" strace -f -qq -o "$TMP/trace" -e trace=fsync,fdatasync,syncfs,sync
    counts=$(awk '{ sub(/^[0-9]+ +/, ""); sub(/\(.*/, ""); n[$0]++ } END { printf "fsync %d, syncfs %d", n["fsync"] + n["fdatasync"], n["syncfs"] + n["sync"] }' "$TMP/trace")
  else
    counts="(strace not installed)"
  fi
  printf '  %-60s %s; %8.1f ms\n' "$bin" "$counts" "$(median <"$TMP/t.$i")"
done

# Per operation (bench_fs_ops.lua): each binary, and with the component walk where it has one
# (KBOOT_FS_RESOLVE=walk; a kboot from before confinement ignores it), OPS_RUNS runs interleaved.
OPS_RUNS=${OPS_RUNS:-5}
cfgs=()
for ((i = 1; i <= $#; i++)); do
  cfgs+=("$i:")
  probe=$("${!i}" "$SRC/bench/bench_fs_ops.lua" "$(mktemp -d "$TMP/probe.XXXXXX")" 34 1 tsv)
  if [[ $probe == openat2* ]]; then cfgs+=("$i:walk"); fi
done
for ((r = 0; r < OPS_RUNS; r++)); do
  for c in "${cfgs[@]}"; do
    i=${c%%:*} w=${c#*:}
    d=$(mktemp -d "$TMP/ops.XXXXXX")
    KBOOT_FS_RESOLVE=$w "${!i}" "$SRC/bench/bench_fs_ops.lua" "$d" 2000 3 tsv >>"$TMP/ops.$i.$w"
    rm -rf "$d"
  done
done
echo "kboot.fs per operation under a root, /etc/kubernetes/pki/etcd/*, us (median of $OPS_RUNS interleaved runs of 3 rounds of 2000)"
for c in "${cfgs[@]}"; do
  i=${c%%:*} w=${c#*:}
  printf '  %-60s resolver %s\n' "${!i}" "$(cut -f1 "$TMP/ops.$i.$w" | head -1)"
  cut -f2 "$TMP/ops.$i.$w" | awk '!seen[$0]++' | while IFS= read -r name; do
    printf '    %-50s %8.2f\n' "$name" "$(awk -F'\t' -v n="$name" '$2 == n { print $3 }' "$TMP/ops.$i.$w" | median)"
  done
done

if command -v cc >/dev/null && cc -O2 -o "$TMP/bench_fs_sync" "$SRC/bench/bench_fs_sync.c" 2>/dev/null; then
  mkdir "$TMP/sync"
  echo "bench_fs_sync.c:"
  "$TMP/bench_fs_sync" "$TMP/sync" 34 "$((RUNS < 15 ? 15 : RUNS))" | sed 's/^/  /'
fi

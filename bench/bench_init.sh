#!/bin/bash
# init-offline benchmark: wall time of the offline part of `kboot init` (certs, kubeconfigs,
# static Pod manifests, kubelet files) into a fresh sandbox root, with RSA-2048 and ECDSA-P256,
# median of RUNS runs, beside the floor (the same number of RSA-2048 keys from
# pki.generate_batch alone, in one kboot process) and the ratio; peak RSS of one run.
# Usage: bench/bench_init.sh [KBOOT_BIN] (default build/kboot); RUNS=5 by default.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-${KBOOT_BIN:-$SRC/build/kboot}}
RUNS=${RUNS:-5}
KEYS=16   # 10 certificates + sa + 5 kubeconfig client certificates (local etcd)
export KBOOT_SRC=$SRC
TMP=$(mktemp -d /tmp/kboot-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

mode="kboot init --root ROOT --config CFG --skip-phases=preflight --offline"
cfg() { # a config with the algorithm; everything else default
  printf 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.10\nnodeRegistration:\n  name: node-1\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: %s\n' "$1" >"$TMP/$1.yaml"
}
run_init() { "$BIN" init --root "$1" --config "$TMP/$2.yaml" --skip-phases=preflight --offline >/dev/null 2>&1; }

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

time_init() { # alg -> median ms
  local alg=$1 i t0 t1
  cfg "$alg"
  for ((i = 0; i < RUNS; i++)); do
    rm -rf "$TMP/root"; mkdir "$TMP/root"
    t0=$(now_ns); run_init "$TMP/root" "$alg"; t1=$(now_ns)
    test -f "$TMP/root/etc/kubernetes/manifests/kube-apiserver.yaml" || { echo "init run failed" >&2; exit 1; }
    echo $(( (t1 - t0) / 1000 ))
  done | median | awk '{printf "%.1f", $1/1000}'
}

time_floor() {
  local i t0 t1
  for ((i = 0; i < RUNS; i++)); do
    t0=$(now_ns); "$BIN" "$SRC/bench/keygen_floor.lua" "$KEYS" RSA-2048; t1=$(now_ns)
    echo $(( (t1 - t0) / 1000 ))
  done | median | awk '{printf "%.1f", $1/1000}'
}

peak_rss_kb() { # alg
  rm -rf "$TMP/root"; mkdir "$TMP/root"
  if [ -x /usr/bin/time ]; then
    cfg "$1"
    /usr/bin/time -v "$BIN" init --root "$TMP/root" --config "$TMP/$1.yaml" --skip-phases=preflight --offline 2>&1 >/dev/null |
      awk -F': ' '/Maximum resident set size/ {print $2}'
  else
    echo "n/a (install the time package)"
  fi
}

echo "init-offline: $mode; $(nproc) cores; median of $RUNS runs; load $(cut -d' ' -f1-3 /proc/loadavg)"
rsa=$(time_init RSA-2048)
ec=$(time_init ECDSA-P256)
floor=$(time_floor)
ratio=$(awk -v a="$rsa" -v b="$floor" 'BEGIN {printf "%.2f", a/b}')
printf '  %-44s %10s ms\n' "init-offline RSA-2048" "$rsa"
printf '  %-44s %10s ms\n' "floor: $KEYS RSA-2048 keys, pki.generate_batch" "$floor"
printf '  %-44s %10s x   (target <= 1.15)\n' "ratio init / floor" "$ratio"
printf '  %-44s %10s ms  (target < 30)\n' "init-offline ECDSA-P256" "$ec"
printf '  %-44s %10s kB  (target < 10240)\n' "peak RSS, RSA-2048 run" "$(peak_rss_kb RSA-2048)"
printf '  %-44s %10s kB\n' "peak RSS, ECDSA-P256 run" "$(peak_rss_kb ECDSA-P256)"

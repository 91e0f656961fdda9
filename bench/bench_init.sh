#!/bin/bash
# init-offline benchmark: wall time of the offline part of `kboot init` (certs, kubeconfigs,
# static Pod manifests, kubelet files) into a fresh sandbox root, with RSA-2048 and ECDSA-P256,
# beside two baselines run in the same invocation:
#   - the floor: the same number of RSA-2048 keys from pki.generate_batch alone, in one kboot process;
#   - the start: kboot running an empty script (process start, no work).
# The four commands are interleaved round by round (RUNS rounds, default 9), so drift in the machine's
# load hits them alike; medians are printed with the ratios, then peak RSS of one run of each init.
# With BEFORE (a kboot binary, or a git revision built in a `git worktree` by lib.sh's kboot_at),
# BEFORE's two inits join the same rounds (before and after alternate in order round by round) and
# the after/before ratios of the init medians are printed (issue 8: <= 1.02).
# Usage: bench/bench_init.sh [KBOOT_BIN] [BEFORE] (default build/kboot, no BEFORE)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
BIN=${1:-${KBOOT_BIN:-$SRC/build/kboot}}
BEFORE=
if [ -n "${2:-}" ]; then BEFORE=$(kboot_at "$2"); fi
RUNS=${RUNS:-9}
KEYS=16   # 10 certificates + sa + 5 kubeconfig client certificates (local etcd)
export KBOOT_SRC=$SRC
TMP=$(mktemp -d /tmp/kboot-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

for alg in RSA-2048 ECDSA-P256; do # a config with the algorithm; everything else default
  printf 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.10\nnodeRegistration:\n  name: node-1\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: %s\n' "$alg" >"$TMP/$alg.yaml"
done
: >"$TMP/empty.lua"

ms() { # CMD... -> elapsed milliseconds of the command alone (no fork of a timer)
  local t0=$EPOCHREALTIME
  "$@" >/dev/null 2>&1
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'
}
init() { # alg [BIN]: the time of one init into a fresh root (made before the clock starts); fails
  # the benchmark if the run did not finish
  rm -rf "$TMP/root" && mkdir "$TMP/root"
  ms "${2:-$BIN}" init --root "$TMP/root" --config "$TMP/$1.yaml" --skip-phases=preflight --offline
  test -f "$TMP/root/etc/kubernetes/manifests/kube-apiserver.yaml" || { echo "init run failed ($1)" >&2; exit 1; }
}

pair() { # alg file: this round's init with BIN (and with BEFORE, the two in alternating order)
  if [ -z "$BEFORE" ]; then init "$1" >>"$TMP/t.$2"; return; fi
  if ((i % 2)); then init "$1" "$BEFORE" >>"$TMP/t.$2.before"; init "$1" >>"$TMP/t.$2"
  else init "$1" >>"$TMP/t.$2"; init "$1" "$BEFORE" >>"$TMP/t.$2.before"; fi
}
for ((i = 0; i < RUNS; i++)); do
  pair RSA-2048 rsa
  ms "$BIN" "$SRC/bench/keygen_floor.lua" "$KEYS" RSA-2048 >>"$TMP/t.floor"
  pair ECDSA-P256 ec
  ms "$BIN" "$TMP/empty.lua" >>"$TMP/t.start"
done

peak_rss_kb() { # alg
  rm -rf "$TMP/root" && mkdir "$TMP/root"
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v "$BIN" init --root "$TMP/root" --config "$TMP/$1.yaml" --skip-phases=preflight --offline 2>&1 >/dev/null |
      awk -F': ' '/Maximum resident set size/ {print $2}'
  else
    echo "n/a (install the time package)"
  fi
}

rsa=$(median <"$TMP/t.rsa") floor=$(median <"$TMP/t.floor") ec=$(median <"$TMP/t.ec") start=$(median <"$TMP/t.start")
echo "init-offline: kboot init --root ROOT --config CFG --skip-phases=preflight --offline"
echo "  $(nproc) cores; median of $RUNS interleaved rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '  %-46s %10.1f ms\n' "init-offline RSA-2048" "$rsa"
printf '  %-46s %10.1f ms\n' "floor: $KEYS RSA-2048 keys, pki.generate_batch" "$floor"
printf '  %-46s %10s x   (target <= 1.15)\n' "ratio init RSA-2048 / floor" "$(ratio "$rsa" "$floor")"
printf '  %-46s %10.1f ms  (target < 30)\n' "init-offline ECDSA-P256" "$ec"
printf '  %-46s %10.1f ms\n' "start: kboot on an empty script" "$start"
printf '  %-46s %10s x\n' "ratio init ECDSA-P256 / start" "$(ratio "$ec" "$start")"
printf '  %-46s %10s kB  (target < 10240)\n' "peak RSS, RSA-2048 run" "$(peak_rss_kb RSA-2048)"
printf '  %-46s %10s kB  (target < 10240)\n' "peak RSS, ECDSA-P256 run" "$(peak_rss_kb ECDSA-P256)"
if [ -n "$BEFORE" ]; then
  rsa_b=$(median <"$TMP/t.rsa.before") ec_b=$(median <"$TMP/t.ec.before")
  echo "before/after: BEFORE $BEFORE"
  printf '  %-46s %10.1f ms\n' "BEFORE init-offline RSA-2048" "$rsa_b"
  printf '  %-46s %10s x   (target <= 1.02)\n' "ratio init RSA-2048 after / before" "$(ratio "$rsa" "$rsa_b")"
  printf '  %-46s %10.1f ms\n' "BEFORE init-offline ECDSA-P256" "$ec_b"
  printf '  %-46s %10s x   (target <= 1.02)\n' "ratio init ECDSA-P256 after / before" "$(ratio "$ec" "$ec_b")"
fi

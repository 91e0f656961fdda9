#!/bin/bash
# kboot certs figures (not a test), on a full RSA-2048 PKI (kboot init --offline: 10 certificates,
# 5 kubeconfigs) in a sandbox root. Medians of RUNS rounds (default 15), the commands of a table
# interleaved round by round so drift in the machine's load hits them alike:
#   1. `certs check-expiration`, whole process (goal < 20 ms), beside kboot running an empty script
#      (process start) and, with BASE (a kboot binary or git revision, built by lib.sh's kboot_at),
#      BASE's C runtime running this tree's scripts (--scripts) for the before/after of the runtime;
#   2. `certs renew all` (11 new RSA-2048 keys, one batch on every core), whole process, against
#      the keygen floors in one kboot process: 11 keys one by one (serial) and in one batch.
# Usage: bench/bench_certs.sh [KBOOT_BIN] [BASE]   (default build/kboot, no BASE)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
BIN=${1:-${KBOOT_BIN:-$SRC/build/kboot}}
BASE=
if [ -n "${2:-}" ]; then BASE=$(kboot_at "$2"); fi
RUNS=${RUNS:-15}
KEYS=11 # what renew all renews with local etcd: 7 leaves + 4 kubeconfigs
TMP=$(mktemp -d /tmp/kboot-bench-certs.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

printf 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.10\nnodeRegistration:\n  name: node-1\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: RSA-2048\n' >"$TMP/kubeadm.yaml"
mkdir "$TMP/root"
"$BIN" init --root "$TMP/root" --config "$TMP/kubeadm.yaml" --skip-phases=preflight --offline >/dev/null 2>&1
: >"$TMP/empty.lua"
cat >"$TMP/serial.lua" <<'LUA'
local pki = require("kboot.pki")
for _ = 1, tonumber(arg[1]) do assert(pki.generate_key("RSA-2048")) end
LUA

ms() { # CMD... -> elapsed milliseconds (the command must succeed)
  local t0=$EPOCHREALTIME
  "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'
}

R=$TMP/root
: >"$TMP/check" >"$TMP/check_cfg" >"$TMP/start" >"$TMP/base"
: >"$TMP/renew" >"$TMP/serial" >"$TMP/batch"
for ((i = 0; i < RUNS; i++)); do
  ms "$BIN" certs check-expiration --root "$R" >>"$TMP/check"
  ms "$BIN" certs check-expiration --root "$R" --config "$TMP/kubeadm.yaml" >>"$TMP/check_cfg"
  ms "$BIN" "$TMP/empty.lua" >>"$TMP/start"
  if [ -n "$BASE" ]; then ms "$BASE" --scripts "$SRC/scripts" certs check-expiration --root "$R" >>"$TMP/base"; fi
done
for ((i = 0; i < RUNS; i++)); do
  ms "$BIN" certs renew all --root "$R" >>"$TMP/renew"
  ms "$BIN" "$TMP/serial.lua" "$KEYS" >>"$TMP/serial"
  ms "$BIN" "$SRC/bench/keygen_floor.lua" "$KEYS" RSA-2048 >>"$TMP/batch"
done
"$BIN" certs check-expiration --root "$R" | grep -q PROBLEM && { echo "the PKI has problems after the renewals" >&2; exit 1; }

med() { median <"$TMP/$1"; }
echo "kboot certs, RSA-2048 PKI, median of $RUNS runs, $(nproc) cores ($BIN)"
printf '  %-52s %8.1f ms  (goal < 20 ms)\n' "certs check-expiration (whole process)" "$(med check)"
printf '  %-52s %8.1f ms\n' "certs check-expiration --config (SANs compared too)" "$(med check_cfg)"
printf '  %-52s %8.1f ms\n' "process start (empty script)" "$(med start)"
if [ -n "$BASE" ]; then
  printf '  %-52s %8.1f ms  (after/before %s)\n' "check-expiration on BASE's C runtime" "$(med base)" \
    "$(ratio "$(med check)" "$(med base)")"
  echo "    BASE: $BASE"
fi
printf '  %-52s %8.1f ms\n' "certs renew all ($KEYS RSA-2048 keys, whole process)" "$(med renew)"
printf '  %-52s %8.1f ms  (renew/serial %s)\n' "floor: $KEYS keys one by one (generate_key)" "$(med serial)" \
  "$(ratio "$(med renew)" "$(med serial)")"
printf '  %-52s %8.1f ms  (renew/batch %s)\n' "floor: $KEYS keys in one batch (generate_batch)" "$(med batch)" \
  "$(ratio "$(med renew)" "$(med batch)")"

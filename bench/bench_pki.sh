#!/usr/bin/env bash
# kboot.pki figures (not a test).
# 1. Before/after: instructions (callgrind, deterministic: one run) and wall time (median of
#    RUNS runs, whole kboot processes, the same script doing 0 operations subtracted) per
#    issued ECDSA-P256 certificate (pki.sign + cert:pem()), per pki.generate_batch(16,
#    "ECDSA-P256") and per traditional ECDSA-P256 key PEM, for KBOOT and BASE (the code before
#    the fast path: build main's tree into /tmp/pkifast-base), with ratios.
# 2. KBOOT alone: 16 RSA-2048 keys one by one vs pki.generate_batch(16), the RSA batch speed-up.
# Usage: bench/bench_pki.sh [KBOOT [BASE]]   (RUNS=7 ISSUE=3000 BATCHES=600 PEMS=20000 operations
#        per timed run by default, a tenth of that under callgrind; BASE=none skips the comparison)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
KBOOT=${1:-${KBOOT_BIN:-$SRC/build/kboot}}
BASE=${2:-${BASE:-/tmp/pkifast-base/kboot}}
RUNS=${RUNS:-7}
ISSUE=${ISSUE:-3000}
BATCHES=${BATCHES:-600}
PEMS=${PEMS:-20000}
. "$SRC/bench/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Each script does its setup, then arg[1] operations.
cat >"$tmp/issue.lua" <<'LUA'
local pki = require("kboot.pki")
local cak = assert(pki.generate_key("ECDSA-P256"))
local ca = assert(pki.self_signed_ca(cak, { cn = "bench-ca" }))
local k = assert(pki.generate_key("ECDSA-P256"))
for i = 1, tonumber(arg[1]) do
  local c = assert(pki.sign({ cn = "leaf" .. i, dns = { "leaf" .. i }, ext_key_usages = { "server auth" } }, k, ca, cak))
  assert(c:pem())
end
LUA
cat >"$tmp/batch.lua" <<'LUA'
local pki = require("kboot.pki")
for _ = 1, tonumber(arg[1]) do assert(#pki.generate_batch(16, "ECDSA-P256") == 16) end
LUA
cat >"$tmp/pem.lua" <<'LUA'
local pki = require("kboot.pki")
local k = assert(pki.generate_key("ECDSA-P256"))
for _ = 1, tonumber(arg[1]) do assert(k:pem("traditional")) end
LUA

ir() { # bin script n -> total instructions of the process
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$3" 2>&1 >/dev/null |
    awk '/Collected :/ { print $NF }'
}
per_ir() { # bin script n -> instructions per operation (n/10 operations: valgrind is slow)
  local a b n=$(( $3 / 10 > 0 ? $3 / 10 : 1 ))
  a=$(ir "$1" "$2" "$n"); b=$(ir "$1" "$2" 0)
  awk -v a="$a" -v b="$b" -v n="$n" 'BEGIN { printf "%.0f", (a - b) / n }'
}
per_ms() { # bin script n -> wall ms per operation (medians of RUNS runs)
  local a b
  a=$(time_runs "$RUNS" "$1" "$2" "$3" | median); b=$(time_runs "$RUNS" "$1" "$2" 0 | median)
  awk -v a="$a" -v b="$b" -v n="$3" 'BEGIN { printf "%.4f", (a - b) / n }'
}

row() { # label script n
  local label=$1 script=$2 n=$3 ni nm bi bm
  ni=$(per_ir "$KBOOT" "$script" "$n"); nm=$(per_ms "$KBOOT" "$script" "$n")
  if [ "$BASE" != none ] && [ -x "$BASE" ]; then
    bi=$(per_ir "$BASE" "$script" "$n"); bm=$(per_ms "$BASE" "$script" "$n")
    printf '  %-30s %12s %12s %7sx   %9s %9s %7sx\n' "$label" "$bi" "$ni" "$(ratio "$bi" "$ni")" \
      "$bm" "$nm" "$(ratio "$bm" "$nm")"
  else
    printf '  %-30s %12s %12s %8s   %9s %9s\n' "$label" - "$ni" - - "$nm"
  fi
}

echo "kboot.pki bench: $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); wall: median of $RUNS runs"
echo "  before: $BASE"
echo "  after:  $KBOOT"
printf '  %-30s %12s %12s %8s   %9s %9s %8s\n' "per operation" "instr before" "instr after" "ratio" \
  "ms before" "ms after" "ratio"
row "ECDSA-P256 cert (sign + pem)" "$tmp/issue.lua" "$ISSUE"
row "generate_batch(16, P-256)" "$tmp/batch.lua" "$BATCHES"
row "P-256 key pem(traditional)" "$tmp/pem.lua" "$PEMS"

# RSA: the batch against serial generation (new binary only).
cat >"$tmp/serial.lua" <<'LUA'
local pki = require("kboot.pki")
for _ = 1, 16 do assert(pki.generate_key("RSA-2048")) end
LUA
cat >"$tmp/rsabatch.lua" <<'LUA'
local pki = require("kboot.pki")
assert(#pki.generate_batch(16, "RSA-2048") == 16)
LUA
echo 'local pki = require("kboot.pki")' >"$tmp/empty.lua"
base=$(time_runs "$RUNS" "$KBOOT" "$tmp/empty.lua" | median)
serial=$(time_runs "$RUNS" "$KBOOT" "$tmp/serial.lua" | median)
batch=$(time_runs "$RUNS" "$KBOOT" "$tmp/rsabatch.lua" | median)
awk -v b="$base" -v s="$serial" -v p="$batch" 'BEGIN {
  s -= b; p -= b
  printf "  16 x RSA-2048 serial       %9.1f ms\n  generate_batch(16, RSA)    %9.1f ms   speed-up %.2fx\n", s, p, s / p
}'

#!/usr/bin/env bash
# kboot.pki figures (not a test): 16 RSA-2048 keys one by one vs pki.generate_batch(16), and
# the ECDSA-P256 key+certificate issue rate. Wall time of whole kboot runs (date +%s%N), the
# median of RUNS runs each; an empty script's run time is subtracted as start-up cost.
# Usage: bench/bench_pki.sh [path/to/kboot]   (RUNS=5 ISSUE=300 by default)
set -euo pipefail
KBOOT=${1:-${KBOOT_BIN:-$(dirname "$0")/../build/kboot}}
RUNS=${RUNS:-5}
ISSUE=${ISSUE:-300}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/empty.lua" <<'LUA'
local pki = require("kboot.pki")
LUA
cat >"$tmp/serial.lua" <<'LUA'
local pki = require("kboot.pki")
for _ = 1, 16 do assert(pki.generate_key("RSA-2048")) end
LUA
cat >"$tmp/batch.lua" <<'LUA'
local pki = require("kboot.pki")
assert(#pki.generate_batch(16, "RSA-2048") == 16)
LUA
cat >"$tmp/issue.lua" <<LUA
local pki = require("kboot.pki")
local cak = pki.generate_key("ECDSA-P256")
local ca = assert(pki.self_signed_ca(cak, { cn = "bench-ca" }))
for i = 1, $ISSUE do
  local k = pki.generate_key("ECDSA-P256")
  assert(pki.sign({ cn = "leaf" .. i, dns = { "leaf" .. i }, ext_key_usages = { "server auth" } }, k, ca, cak))
end
LUA

# median wall seconds of RUNS runs of a script
median() {
  local s=() t0 t1
  for _ in $(seq "$RUNS"); do
    t0=$(date +%s%N)
    "$KBOOT" "$1" >/dev/null
    t1=$(date +%s%N)
    s+=("$(( (t1 - t0) / 1000 ))")
  done
  printf '%s\n' "${s[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.4f", a[int((NR + 1) / 2)] / 1e6 }'
}

base=$(median "$tmp/empty.lua")
serial=$(median "$tmp/serial.lua")
batch=$(median "$tmp/batch.lua")
issue=$(median "$tmp/issue.lua")
awk -v b="$base" -v s="$serial" -v p="$batch" -v i="$issue" -v n="$ISSUE" -v cores="$(nproc)" -v runs="$RUNS" 'BEGIN {
  s -= b; p -= b; i -= b
  printf "kboot.pki bench: %d cores, median of %d runs, start-up %.3f s subtracted\n", cores, runs, b
  printf "  16 x RSA-2048 serial      %7.3f s  (%.1f keys/s)\n", s, 16 / s
  printf "  generate_batch(16)        %7.3f s  (%.1f keys/s)\n", p, 16 / p
  printf "  batch speed-up            %7.2f x\n", s / p
  printf "  ECDSA-P256 key + cert     %7.0f /s  (%d issued in %.3f s)\n", n / i, n, i
}'

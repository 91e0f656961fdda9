#!/usr/bin/env bash
# kboot start-up time for an empty script, against the stock lua5.4 interpreter as the baseline.
# Usage: bench/bench_startup.sh [path/to/kboot] [RUNS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
kboot=${1:-$here/../build/kboot}
runs=${2:-51}
empty=$(mktemp /tmp/kboot-bench.XXXXXX.lua)
trap 'rm -f "$empty"' EXIT
: >"$empty"
base=$(time_runs "$runs" lua5.4 "$empty" | median)
kb=$(time_runs "$runs" "$kboot" "$empty" | median)
kbreq=$(mktemp /tmp/kboot-bench.XXXXXX.lua)
echo 'for _, m in ipairs{"kboot.pki","kboot.crypto","kboot.yaml","kboot.fs","kboot.http","kboot.cli"} do require(m) end' >"$kbreq"
kbmods=$(time_runs "$runs" "$kboot" "$kbreq" | median)
rm -f "$kbreq"
echo "startup (median of $runs, ms):"
printf "  %-40s %8s\n" "lua5.4 empty script (baseline)" "$base"
printf "  %-40s %8s  (%sx baseline)\n" "kboot empty script" "$kb" "$(ratio "$kb" "$base")"
printf "  %-40s %8s  (%sx baseline)\n" "kboot, requiring every module" "$kbmods" "$(ratio "$kbmods" "$base")"

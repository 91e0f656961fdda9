#!/usr/bin/env bash
# tools/fuzz.sh TARGET SECONDS [SEED]: one long fuzzing run (the test suite runs each target briefly).
# Targets: config (the configuration loaders, tests/fuzz/fuzz_config.lua). Findings are written to
# build/fuzz-findings/ as YAML reproducers; add each as a case to tests/data/config/bad/ with its fix.
# KBOOT_BIN: the kboot to run (default build/kboot).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: tools/fuzz.sh TARGET SECONDS [SEED]}
seconds=${2:?usage: tools/fuzz.sh TARGET SECONDS [SEED]}
seed=${3:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
bin=${KBOOT_BIN:-build/kboot}
out=build/fuzz-findings
mkdir -p "$out"
case $target in
  config) KBOOT_SRC=$PWD exec "$bin" tests/fuzz/fuzz_config.lua --seed "$seed" --seconds "$seconds" --out "$out" ;;
  *) echo "tools/fuzz.sh: unknown target $target (want: config)" >&2; exit 2 ;;
esac

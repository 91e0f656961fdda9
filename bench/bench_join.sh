#!/bin/bash
# kboot join (worker) benchmark against a real v1.20.2 control plane, brought up once in a sandbox:
# the time from `kboot init phase bootstrap-token` returning to a worker's discovery succeeding, a
# whole worker join (fresh root, fresh node name; direct and through a VIP forwarder), and the
# request count of each; medians of RUNS rounds (default 7) and ratios; then a control-plane join
# (bench/bench_join_cp.lua). The work is in
# bench/bench_join.lua (it uses tests/lib/controlplane.lua). Needs the control-plane binaries
# (KBOOT_E2E_BIN, default /var/cache/kboot-e2e/bin).
# Usage: bench/bench_join.sh [KBOOT_BIN] (RUNS=N in the environment)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-${KBOOT_BIN:-$SRC/build/kboot}}
export KBOOT_BIN=$BIN KBOOT_SRC=$SRC
export KBOOT_E2E_BIN=${KBOOT_E2E_BIN:-/var/cache/kboot-e2e/bin}
export LUA_PATH="$SRC/tests/lib/?.lua;/usr/share/lua/5.4/?.lua;;"
"$BIN" "$SRC/bench/bench_join.lua" "${RUNS:-7}"
# the control-plane join (prepare, then etcd-join after the member's etcd starts): bench_join_cp.lua
exec "$BIN" "$SRC/bench/bench_join_cp.lua" "${RUNS:-7}"

#!/usr/bin/env bash
# Installs, builds and runs the whole test suite three ways:
#   1. a normal build (build/),
#   2. AddressSanitizer + UBSan (build-asan/, -DKBOOT_SANITIZE=ON),
#   3. the unit and Lua tests under valgrind (build-valgrind/, -DKBOOT_TEST_WRAPPER=valgrind...).
# Any failure fails the script. Set KBOOT_TEST_QUICK=1 to run only the first.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

tools/install-deps.sh

echo "== a real Kubernetes v1.20.2 control plane for the end-to-end tests (built once, cached)"
KBOOT_E2E_BIN=$(tests/e2e/build-control-plane.sh | tail -n 1)
export KBOOT_E2E_BIN
echo "   $KBOOT_E2E_BIN"

echo "== normal build"
tools/build.sh build
(cd build && ctest --output-on-failure -j"$jobs")

if [ "${KBOOT_TEST_QUICK:-0}" = 1 ]; then exit 0; fi

echo "== AddressSanitizer + UBSan"
tools/build.sh build-asan -DKBOOT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
# Leak checks are valgrind's job below; LSan is also on by default with ASan.
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j"$jobs")

echo "== valgrind (unit and Lua tests)"
tools/build.sh build-valgrind \
  "-DKBOOT_TEST_WRAPPER=valgrind;--quiet;--error-exitcode=99;--leak-check=full;--errors-for-leak-kinds=definite,indirect;--show-leak-kinds=definite,indirect"
(cd build-valgrind && ctest --output-on-failure -j"$jobs" -L 'unit|lua')

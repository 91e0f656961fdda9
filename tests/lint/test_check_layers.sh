#!/usr/bin/env bash
# tools/check-layers.sh must pass on a clean copy of the tree and fail, naming file:line, on each
# kind of violation injected into the copy one at a time.
set -u
src=${KBOOT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
check="$src/tools/check-layers.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fresh() { # a clean copy of the checked directories in $tmp/t
    rm -rf "$tmp/t" && mkdir "$tmp/t" && cp -r "$src/runtime" "$src/include" "$src/bindings" "$tmp/t/"
}
expect_pass() {
    local out rc
    out=$(bash "$check" "$tmp/t" 2>&1); rc=$?
    if [ $rc -ne 0 ] || [ -n "$out" ]; then
        echo "FAIL: $1: expected a clean pass, got rc=$rc:"; echo "$out"; failures=$((failures + 1))
    else
        echo "ok: $1"
    fi
}
expect_fail() { # name, then fixed strings the output must contain
    local name=$1 out rc s; shift
    out=$(bash "$check" "$tmp/t" 2>&1); rc=$?
    if [ $rc -ne 1 ]; then
        echo "FAIL: $name: expected rc=1, got rc=$rc:"; echo "$out"; failures=$((failures + 1)); return
    fi
    for s in "$@"; do
        if ! grep -qF -- "$s" <<<"$out"; then
            echo "FAIL: $name: output lacks '$s':"; echo "$out"; failures=$((failures + 1)); return
        fi
    done
    echo "ok: $name"
}
line_after_append() { # file: the line number the next appended line gets
    echo $(($(wc -l <"$1") + 1))
}

fresh
expect_pass "clean tree"

n=$(line_after_append "$tmp/t/runtime/log.c")
echo '#include <lua.h>' >>"$tmp/t/runtime/log.c"
expect_fail "Lua header in runtime/" "runtime/log.c:$n: Lua header"

fresh
n=$(line_after_append "$tmp/t/include/kboot/log.h")
echo '#include "lauxlib.h"' >>"$tmp/t/include/kboot/log.h"
expect_fail "Lua header in include/" "include/kboot/log.h:$n: Lua header"

fresh
n=$(line_after_append "$tmp/t/runtime/err.c")
echo 'static const char *const ns = "kube-system";' >>"$tmp/t/runtime/err.c"
expect_fail "Kubernetes word in runtime/" "runtime/err.c:$n: Kubernetes word 'kube-system'"

fresh
n=$(line_after_append "$tmp/t/bindings/l_log.c")
echo '/* mirrors ClusterRole names */' >>"$tmp/t/bindings/l_log.c"
expect_fail "Kubernetes word in bindings/" "bindings/l_log.c:$n: Kubernetes word 'ClusterRole'"

# Two headers including each other.
fresh
printf '#include "cyc_b.h"\n' >"$tmp/t/runtime/cyc_a.h"
printf '/* b */\n#include "cyc_a.h"\n' >"$tmp/t/runtime/cyc_b.h"
expect_fail "header include cycle" "include cycle: runtime/cyc_a.h -> runtime/cyc_b.h -> runtime/cyc_a.h"

# Two files using each other through their headers: clock.c calls log, log.c calls clock.
fresh
n=$(line_after_append "$tmp/t/runtime/clock.c")
printf '#include "kboot/log.h"\nvoid kb_clock_probe(void) { kb_log_write(0, "x", "y"); }\n' >>"$tmp/t/runtime/clock.c"
m=$(line_after_append "$tmp/t/runtime/log.c")
printf '#include "kboot/clock.h"\nstatic double probe(void) { return kb_clock_monotonic(); }\n' >>"$tmp/t/runtime/log.c"
expect_fail "file include cycle" "include cycle: " "clock.c uses kb_log_write from log.c via log.h" \
    "log.c uses kb_clock_monotonic from clock.c via clock.h"
out=$(bash "$check" "$tmp/t" 2>&1)
if ! grep -qE "^runtime/(clock\.c:$n|log\.c:$m): include cycle" <<<"$out"; then
    echo "FAIL: file include cycle: not reported at the include line:"; echo "$out"; failures=$((failures + 1))
fi

# Only one side: no cycle. A name mentioned in a comment or a string is no use.
fresh
printf '#include "kboot/log.h"\nvoid kb_clock_probe(void) { kb_log_write(0, "x", "y"); }\n' >>"$tmp/t/runtime/clock.c"
printf '#include "kboot/clock.h"\n/* kb_clock_monotonic */ static const char *s = "kb_clock_monotonic";\n' \
    >>"$tmp/t/runtime/log.c"
expect_pass "one-way use, names in comments and strings"

if [ $failures -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi

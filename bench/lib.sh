# Shared helpers for bench/*.sh: wall-clock timing of whole commands and medians.
# Uses bash's $EPOCHREALTIME, so no extra process is timed with the command.

# time_runs N CMD... -> prints N durations in milliseconds (one per line).
time_runs() {
  local n=$1; shift
  local i t0 t1
  for ((i = 0; i < n; i++)); do
    t0=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'
  done
}
# median: reads numbers on stdin, prints the median.
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# kboot_at REV|BIN -> prints the path of a kboot binary: BIN itself when it is an executable file,
# else the kboot of git revision REV of this repository, built (kboot target only) in a
# `git worktree` under /tmp and kept in ${KBOOT_BASE_CACHE:-/tmp/kboot-base}/<commit>/kboot so a
# second bench against the same revision does not build again. Build output goes to stderr.
kboot_at() {
  local arg=$1 src rev cache wt
  if [ -x "$arg" ] && [ -f "$arg" ]; then echo "$arg"; return; fi
  src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  rev=$(git -C "$src" rev-parse --verify -q "$arg^{commit}") || { echo "not a binary nor a git revision: $arg" >&2; return 1; }
  cache=${KBOOT_BASE_CACHE:-/tmp/kboot-base}/$rev
  if [ ! -x "$cache/kboot" ]; then
    echo "building kboot at ${rev:0:12} (git worktree, kboot target) ..." >&2
    mkdir -p "$cache"
    wt=$(mktemp -d /tmp/kboot-wt.XXXXXX)
    git -C "$src" worktree add --detach -q "$wt/src" "$rev" >&2
    if cmake -S "$wt/src" -B "$wt/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
       cmake --build "$wt/build" --target kboot -j2 >/dev/null; then
      cp "$wt/build/kboot" "$cache/kboot.tmp" && mv "$cache/kboot.tmp" "$cache/kboot"
    fi
    git -C "$src" worktree remove --force "$wt/src" >&2 || true
    rm -rf "$wt"
    [ -x "$cache/kboot" ] || { echo "build of $rev failed" >&2; return 1; }
  fi
  echo "$cache/kboot"
}

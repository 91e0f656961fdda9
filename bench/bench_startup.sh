#!/usr/bin/env bash
# kboot start-up: wall time (median of RUNS, runs of all commands interleaved), peak RSS and
# instructions (callgrind, when valgrind is installed) of a few start-up paths, for kboot before
# and after a change side by side, each against the stock lua5.4 interpreter.
# Usage: bench/bench_startup.sh [KBOOT] [BEFORE]
#   KBOOT   the kboot to measure (default build/kboot)
#   BEFORE  another kboot binary, or a git revision of this repository that is built (kboot target
#           only) in a temporary directory; omitted: only KBOOT is measured
#   RUNS=31 runs per command (at least 31 recommended; the machine is shared, so medians)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
. "$here/lib.sh"
after=${1:-$src/build/kboot}
before_arg=${2:-}
runs=${RUNS:-31}
tmp=$(mktemp -d /tmp/kboot-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

before=
if [ -n "$before_arg" ]; then
  if [ -x "$before_arg" ] && [ -f "$before_arg" ]; then
    before=$before_arg
  else # a git revision: build its kboot
    echo "building kboot at $before_arg ..." >&2
    mkdir "$tmp/src"
    git -C "$src" archive "$before_arg" | tar -x -C "$tmp/src"
    cmake -S "$tmp/src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$tmp/build" --target kboot -j2 >/dev/null
    before=$tmp/build/kboot
  fi
fi

: >"$tmp/empty.lua"
echo 'for _, m in ipairs{"kboot.pki","kboot.crypto","kboot.yaml","kboot.fs","kboot.http","kboot.cli"} do require(m) end' \
  >"$tmp/mods.lua"

# Each case: a label and the arguments after the interpreter.
labels=("empty script" "--version" "help (usage, no Lua run)" "help init (init's --help)" "require the C modules + cli")
args_of() {
  case $1 in
    0) echo "$tmp/empty.lua" ;;
    1) echo "--version" ;;
    2) echo "help" ;;
    3) echo "help init" ;;
    4) echo "$tmp/mods.lua" ;;
  esac
}
lua_args_of() { # what stock lua5.4 runs for the same case (it has no kboot modules)
  case $1 in
    1) echo "-v" ;;
    *) echo "$tmp/empty.lua" ;;
  esac
}

bins=(lua5.4 "$after")
names=(lua5.4 after)
if [ -n "$before" ]; then bins+=("$before"); names+=(before); fi

# Interleaved: run i of every (binary, case) before run i+1, so load changes hit all alike.
for ((r = 0; r < runs; r++)); do
  for b in "${!bins[@]}"; do
    for c in "${!labels[@]}"; do
      if [ "$b" = 0 ]; then a=$(lua_args_of "$c"); else a=$(args_of "$c"); fi
      # shellcheck disable=SC2086
      time_runs 1 "${bins[$b]}" $a >>"$tmp/t.$b.$c"
    done
  done
done

rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
instr() {
  if command -v valgrind >/dev/null; then
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
      awk '/Collected/ {printf "%.2f", $4 / 1e6}'
  else echo "n/a"; fi
}
fig() { # binary-index case -> "ms rss_kB Minstr"
  local b=$1 c=$2 a
  if [ "$b" = 0 ]; then a=$(lua_args_of "$c"); else a=$(args_of "$c"); fi
  # shellcheck disable=SC2086
  echo "$(median <"$tmp/t.$b.$c") $(rss "${bins[$b]}" $a) $(instr "${bins[$b]}" $a)"
}

echo "kboot start-up: median of $runs interleaved runs; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  after:  $after"
[ -n "$before" ] && echo "  before: $before ($before_arg)"
echo "  lua5.4: stock interpreter on an empty script (-v for --version)"
printf '\n  %-30s %-7s %9s %9s %9s %11s %11s\n' "case" "binary" "ms" "RSS kB" "M instr" "ms/lua5.4" "after/before"
for c in "${!labels[@]}"; do
  read -r lms lrss lins <<<"$(fig 0 "$c")"
  printf '  %-30s %-7s %9s %9s %9s\n' "${labels[$c]}" lua5.4 "$lms" "$lrss" "$lins"
  read -r ams arss ains <<<"$(fig 1 "$c")"
  if [ -n "$before" ]; then
    read -r bms brss bins_ <<<"$(fig 2 "$c")"
    printf '  %-30s %-7s %9s %9s %9s %10sx\n' "" before "$bms" "$brss" "$bins_" "$(ratio "$bms" "$lms")"
    printf '  %-30s %-7s %9s %9s %9s %10sx  ms %sx, RSS %sx, instr %sx\n' "" after "$ams" "$arss" "$ains" \
      "$(ratio "$ams" "$lms")" "$(ratio "$ams" "$bms")" "$(ratio "$arss" "$brss")" \
      "$( [ "$ains" = n/a ] && echo n/a || ratio "$ains" "$bins_")"
  else
    printf '  %-30s %-7s %9s %9s %9s %10sx\n' "" after "$ams" "$arss" "$ains" "$(ratio "$ams" "$lms")"
  fi
done

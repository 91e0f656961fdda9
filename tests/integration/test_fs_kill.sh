#!/usr/bin/env bash
# kboot.fs atomicity under SIGKILL: a child kboot rewrites three 20 MB files in a loop with
# fs.write; we kill it at random moments and check, each time, that every target is absent or
# complete (its SHA-256 is one of the known contents), that it has its mode, and that nothing but
# recognisable temp files (".<name>.kboot-tmp-XXXXXX") is left. fs.clean_temps removes those.
set -euo pipefail

bin=${KBOOT_BIN:?KBOOT_BIN not set}
rounds=${KBOOT_KILL_ROUNDS:-8}
size=$((20 * 1024 * 1024))
work=$(mktemp -d /tmp/kboot-fs-kill.XXXXXX)
pid=
cleanup() {
  if [[ -n $pid ]]; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
root=$work/root
dir=$root/etc/kubernetes
mkdir -p "$root"

fail() { echo "FAIL: $*" >&2; exit 1; }

cat >"$work/writer.lua" <<'EOF'
local fs = require("kboot.fs")
assert(fs.set_root(arg[1]))
local size = math.tointeger(tonumber(arg[2]))
local variants = {}
for g = 0, 3 do variants[g] = string.rep(string.char(65 + g), size) end
local i = math.tointeger(tonumber(arg[3])) -- each round starts at another content
local writes = 0
io.stdout:write("ready\n")
io.stdout:flush()
while true do
  for n = 1, 3 do
    assert(fs.write("/etc/kubernetes/file" .. n, variants[(i + n) % 4], "0600", { mkdir = true }))
    writes = writes + 1
    io.stdout:write("wrote ", writes, "\n")
    io.stdout:flush()
  end
  i = i + 1
end
EOF

cat >"$work/clean.lua" <<'EOF'
local fs = require("kboot.fs")
assert(fs.set_root(arg[1]))
print(assert(fs.clean_temps("/etc/kubernetes")))
EOF

# The only contents a target may ever have: size bytes of 'A', 'B', 'C' or 'D'.
declare -A known
for c in A B C D; do
  h=$(head -c "$size" /dev/zero | tr '\0' "$c" | sha256sum | cut -d' ' -f1)
  known[$h]=$c
done

# Wait (as long as it takes: sanitizer builds are slow) until the writer has printed a line.
wait_for() {
  local line=$1
  for ((w = 0; w < 6000; w++)); do
    grep -qx "$line" "$work/progress" && return 0
    kill -0 "$pid" 2>/dev/null || fail "writer exited: $(cat "$work/stderr")"
    sleep 0.1
  done
  fail "writer never printed '$line'"
}

kills_mid_write=0
temps_seen=0
for ((r = 1; r <= rounds; r++)); do
  "$bin" "$work/writer.lua" "$root" "$size" "$r" >"$work/progress" 2>"$work/stderr" &
  pid=$!
  # Round 1 lets all three targets be written once, so later rounds have an old content to keep.
  if ((r == 1)); then wait_for "wrote 3"; else wait_for ready; fi
  # A random moment between 0.2 and 4 s: not a timing assertion, only where the kill lands.
  sleep "$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", 0.2 + rand() * 3.8 }')"
  kill -0 "$pid" 2>/dev/null || fail "writer exited before the kill: $(cat "$work/stderr")"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  pid=

  temps=0
  seen=
  declare -A present=()
  if [[ -d $dir ]]; then
    for f in "$dir"/* "$dir"/.[!.]*; do
      [[ -e $f || -L $f ]] || continue
      name=${f##*/}
      present[$name]=1
      if [[ $name =~ ^file[123]$ ]]; then
        h=$(sha256sum "$f" | cut -d' ' -f1)
        [[ -n ${known[$h]:-} ]] || fail "round $r: $name is torn ($(stat -c %s "$f") bytes, sha256 $h)"
        seen+=" $name=${known[$h]}"
        [[ $(stat -c %a "$f") == 600 ]] || fail "round $r: $name has mode $(stat -c %a "$f")"
      elif [[ $name =~ ^\.file[123]\.kboot-tmp-[A-Za-z0-9]{6}$ ]]; then
        temps=$((temps + 1))
      else
        fail "round $r: unexpected file $name"
      fi
    done
  fi
  for n in 1 2 3; do
    [[ -n ${present[file$n]:-} ]] || fail "round $r: file$n vanished (a completed write was lost)"
  done
  ((temps > 3)) && fail "round $r: $temps temp files; a write must clean its earlier temps"
  ((temps > 0)) && kills_mid_write=$((kills_mid_write + 1))
  temps_seen=$temps
  writes=$(grep -c wrote "$work/progress" || true)
  echo "round $r: $writes write(s) done;$seen; $temps temp file(s) left"
done

n=$("$bin" "$work/clean.lua" "$root")
[[ $n == "$temps_seen" ]] || fail "clean_temps removed $n, expected $temps_seen"
left=$(find "$dir" -name '*.kboot-tmp-*' | wc -l)
[[ $left == 0 ]] || fail "$left temp files left after clean_temps"
echo "ok: $rounds kills, $kills_mid_write landed mid-write; every target was always complete"

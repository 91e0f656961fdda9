#!/usr/bin/env bash
# Does `kboot init --dry-run` print the same files and API objects as before a change?
# Builds BASE_REV (a git revision, in a `git worktree`, cached; or a kboot binary) and runs it and
# BIN on the same inputs, each into a fresh --root, then diffs their stdout byte for byte after
# bench/normalize_dryrun.pl has replaced what is random per run (PEM bodies, embedded base64
# certificates, CA pins, generated tokens, the token's expiration, the temp root's name) the same
# way for both. Cases:
#   v1beta3-rsa         tests/data/config/good/v1beta3-full.yaml (RSA-2048, local etcd, --token)
#   v1beta4-ecdsa-ext   bench/data/v1beta4-ecdsa-external-etcd.yaml (ECDSA-P256, external etcd, generated token)
#   offline             tests/data/config/good/v1beta4-full.yaml with --offline
# Usage: bench/compare_dryrun.sh [BASE_REV|BASE_BIN] [BIN]   (defaults: 1e65ccf, build/kboot)
#   KEEP=DIR keeps the raw and normalised outputs in DIR. STDERR=1 also requires equal logs.
# Exit 0 when every case is identical, 1 on a difference (the diff is printed), 2 on a setup error.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
. "$here/lib.sh"
base=$(kboot_at "${1:-1e65ccf}") || exit 2
new=${2:-$src/build/kboot}
[ -x "$new" ] || { echo "no kboot binary at $new" >&2; exit 2; }
unset KBOOT_SCRIPTS KBOOT_DEBUG
tmp=${KEEP:-$(mktemp -d /tmp/kboot-cmp.XXXXXX)}
mkdir -p "$tmp"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT

common=(--dry-run --ignore-preflight-errors=all)
case_args() {
  case $1 in
    v1beta3-rsa) echo "--config $src/tests/data/config/good/v1beta3-full.yaml --token abcdef.0123456789abcdef" ;;
    v1beta4-ecdsa-ext) echo "--config $here/data/v1beta4-ecdsa-external-etcd.yaml" ;;
    offline) echo "--config $src/tests/data/config/good/v1beta4-full.yaml --offline" ;;
  esac
}
cases=(v1beta3-rsa v1beta4-ecdsa-ext offline)

run() { # which bin case -> writes $tmp/$case.$which.{out,err,norm}
  local which=$1 bin=$2 c=$3 root rc=0
  root=$(mktemp -d /tmp/kboot-cmp-root.XXXXXX)
  # shellcheck disable=SC2046
  "$bin" init --root "$root" "${common[@]}" $(case_args "$c") >"$tmp/$c.$which.out" 2>"$tmp/$c.$which.err" || rc=$?
  echo "$rc" >"$tmp/$c.$which.rc"
  perl "$here/normalize_dryrun.pl" "$root" <"$tmp/$c.$which.out" >"$tmp/$c.$which.norm"
  perl "$here/normalize_dryrun.pl" "$root" <"$tmp/$c.$which.err" >"$tmp/$c.$which.errnorm"
  # a dry run must leave its root empty
  if [ -n "$(ls -A "$root")" ]; then echo "$which $c: the dry run wrote into its root:" >&2; ls -AR "$root" >&2; rc=99; fi
  rm -rf "$root"
  return 0
}

echo "compare kboot init --dry-run: base $base vs $new"
fail=0 nfiles=0 nobjects=0
for c in "${cases[@]}"; do
  run base "$base" "$c"
  run new "$new" "$c"
  files=$(grep -c '^--- /' "$tmp/$c.new.out" || true)
  objects=$(grep -c '^\[dryrun\] Would apply' "$tmp/$c.new.err" || true)
  nfiles=$((nfiles + files)); nobjects=$((nobjects + objects))
  same=yes
  if ! cmp -s "$tmp/$c.base.norm" "$tmp/$c.new.norm"; then same=no; fi
  if ! cmp -s "$tmp/$c.base.rc" "$tmp/$c.new.rc"; then same=no; fi
  logs=yes
  cmp -s "$tmp/$c.base.errnorm" "$tmp/$c.new.errnorm" || logs=no
  [ "${STDERR:-0}" = 1 ] && [ $logs = no ] && same=no
  printf '  %-18s files %3d  objects %3d  stdout %6d bytes  exit %s/%s  identical: %s  (log lines identical: %s)\n' \
    "$c" "$files" "$objects" "$(wc -c <"$tmp/$c.new.out")" "$(cat "$tmp/$c.base.rc")" "$(cat "$tmp/$c.new.rc")" "$same" "$logs"
  if [ $same = no ]; then
    fail=1
    diff -u "$tmp/$c.base.norm" "$tmp/$c.new.norm" | head -60 || true
    [ $logs = no ] && [ "${STDERR:-0}" = 1 ] && { diff -u "$tmp/$c.base.errnorm" "$tmp/$c.new.errnorm" | head -40 || true; }
  fi
done
echo "  total: ${#cases[@]} cases, $nfiles files, $nobjects API objects; identical: $([ $fail = 0 ] && echo yes || echo no)"
exit $fail

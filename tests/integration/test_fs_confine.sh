#!/usr/bin/env bash
# kboot.fs confinement under --root (issue 13): symlinks planted in a sandbox root -- an absolute
# target, a relative ../../.. one, one in a parent directory -- never lead a write, read, mkdir,
# remove or rename outside the root. Links resolve inside the root, as under chroot(2): an
# absolute target names a path below the root, ".." stops at the root. So a command either
# works on the root-relative target or fails with one line naming the path; the tree of the
# outside target (names, types, modes, link targets, contents) is hashed before and after each
# command and must not change. Each case runs twice: with openat2 (where the kernel has it) and
# with the component-by-component walk (KBOOT_FS_RESOLVE=walk).
set -euo pipefail

bin=${KBOOT_BIN:?KBOOT_BIN not set}
work=$(mktemp -d /tmp/kboot-fs-confine.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
out=$work/elsewhere      # the outside target every planted link names
up=$(printf '../%.0s' $(seq 1 16)) # more ".." than the root is deep

fail() { echo "  $*" >&2; exit 1; }

tree_hash() {
  (cd "$1" && find . -printf '%p %y %m %l\n' | LC_ALL=C sort &&
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum) | sha256sum | cut -d' ' -f1
}

fresh() { # a new root and a new outside tree
  rm -rf "$root" "$out"
  mkdir -p "$root/etc/kubernetes" "$out/sub"
  echo keep >"$out/keep"
  echo secret >"$out/sub/secret"
  chmod 0640 "$out/keep"
  before=$(tree_hash "$out")
  touch -d '1 minute ago' "$work/stamp"
}

outside_unchanged() {
  [[ $(tree_hash "$out") == "$before" ]] ||
    { (cd "$out" && find . -newer "$work/stamp" -printf '    new or changed: %p\n' | head -5) >&2; fail "$1: the outside tree $out changed"; }
}

# run WANT CMD...: the exit code must be WANT; stderr is kept in $work/err
run() {
  local want=$1 rc=0
  shift
  "$@" >"$work/out" 2>"$work/err" || rc=$?
  [[ $rc == "$want" ]] || { cat "$work/err" >&2; fail "'$*' exited $rc, want $want"; }
}

# The failure is one line naming the path, not a traceback.
one_error_line() {
  local n
  n=$(grep -c '^error: ' "$work/err" || true)
  [[ $n == 1 ]] || { cat "$work/err" >&2; fail "$1: want one error line, got $n"; }
  grep -q "$2" "$work/err" || { cat "$work/err" >&2; fail "$1: the error does not name $2"; }
  ! grep -q 'stack traceback' "$work/err" || fail "$1: a traceback"
}

case_abs_missing() { # 1. pki -> absolute outside path missing below the root: mkdir -p fails, one line
  fresh
  ln -s "$out" "$root/etc/kubernetes/pki"
  run 1 "$bin" init phase certs/ca --root "$root"
  outside_unchanged "certs/ca through an absolute link"
  one_error_line "absolute link, missing below the root" /etc/kubernetes/pki
  [[ ! -e $root$out ]] || fail "a missing link target below the root was created"
}

case_abs_present() { # 2. the same link with its target present below the root: the CA lands there
  fresh
  ln -s "$out" "$root/etc/kubernetes/pki"
  mkdir -p "$root$out"
  run 0 "$bin" init phase certs/ca --root "$root"
  outside_unchanged "certs/ca through an absolute link (target below the root)"
  [[ -f $root$out/ca.crt && -f $root$out/ca.key ]] || fail "ca.crt/ca.key not written below the root at $root$out"
  [[ $(stat -c %a "$root$out/ca.key") == 600 ]] || fail "ca.key mode $(stat -c %a "$root$out/ca.key")"
}

case_relative() { # 3. a relative link with more ".." than the root is deep: ".." stops at the root
  fresh
  ln -s "$up${out#/}" "$root/etc/kubernetes/pki"
  mkdir -p "$root$out"
  run 0 "$bin" init phase certs/ca --root "$root"
  outside_unchanged "certs/ca through a relative ../../.. link"
  [[ -f $root$out/ca.key ]] || fail "relative link: ca.key not below the root"
}

case_parent() { # 4. a link in a parent: /etc/kubernetes -> absolute outside path
  fresh
  rm -rf "$root/etc/kubernetes"
  ln -s "$out" "$root/etc/kubernetes"
  run 1 "$bin" init phase certs/ca --root "$root"
  outside_unchanged "certs/ca through a parent link"
  one_error_line "parent link, missing below the root" /etc/kubernetes
  mkdir -p "$root$out"
  run 0 "$bin" init phase certs/ca --root "$root"
  outside_unchanged "certs/ca through a parent link (target below the root)"
  [[ -f $root$out/pki/ca.key ]] || fail "parent link: ca.key not at $root$out/pki"
}

case_read() { # 5. reads: ca.crt and ca.key are absolute links to a CA outside; certs/apiserver must
  # not sign with it (the links name root-relative paths, which do not exist)
  fresh
  rm -rf "$work/other" && mkdir -p "$work/other"
  run 0 "$bin" init phase certs/ca --root "$work/other"
  cp "$work/other/etc/kubernetes/pki/ca.crt" "$work/other/etc/kubernetes/pki/ca.key" "$out/"
  before=$(tree_hash "$out")
  mkdir -p "$root/etc/kubernetes/pki"
  ln -s "$out/ca.crt" "$root/etc/kubernetes/pki/ca.crt"
  ln -s "$out/ca.key" "$root/etc/kubernetes/pki/ca.key"
  run 1 "$bin" init phase certs/apiserver --root "$root"
  outside_unchanged "certs/apiserver reading through links"
  one_error_line "reading the CA through absolute links" ca.crt
  [[ ! -e $root/etc/kubernetes/pki/apiserver.crt ]] || fail "apiserver.crt signed by a CA read outside the root"
}

case_init_reset() { # 6. the batch commit (renames) and mkdir -p: a whole offline init with
  # manifests -> outside (absolute) and /var/lib -> outside (relative), both present below the
  # root; then 7. remove: kboot reset with the same links and the certificates dir a link too
  fresh
  mkdir -p "$root$out/m" "$root$out/lib" "$root/var" "$out/m" "$out/lib"
  ln -s "$out/m" "$root/etc/kubernetes/manifests"
  ln -s "$up${out#/}/lib" "$root/var/lib"
  before=$(tree_hash "$out")
  run 0 "$bin" init --root "$root" --ignore-preflight-errors=all --offline
  outside_unchanged "init --offline through links"
  [[ -f $root$out/m/kube-apiserver.yaml ]] || fail "manifests not written below the root"
  [[ -f $root$out/lib/kubelet/config.yaml ]] || fail "kubelet config not written below the root"
  mv "$root/etc/kubernetes/pki" "$root$out/pki"
  ln -s "$out/pki" "$root/etc/kubernetes/pki"
  mkdir -p "$out/pki" "$out/lib/kubelet/pods"
  echo x >"$out/pki/ca.crt" && echo y >"$out/m/kube-apiserver.yaml" && echo z >"$out/lib/kubelet/config.yaml"
  before=$(tree_hash "$out")
  run 1 "$bin" reset --root "$root" --force # reset itself refuses to follow these links
  outside_unchanged "reset through links"
  grep -q 'which kboot reset does not follow' "$work/err" || { cat "$work/err" >&2; fail "reset: no word of the links"; }
}

case_config_climbs() { # a certificatesDir whose ".." climbs above / is a configuration error naming
  # the field (exit 2, nothing written), not an argument error raised deep in a phase
  fresh
  printf 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncertificatesDir: /etc/kubernetes/../../../../tmp/x\n' >"$work/climb.yaml"
  run 2 "$bin" init phase certs/ca --root "$root" --config "$work/climb.yaml"
  grep -q '^ClusterConfiguration.certificatesDir: "/etc/kubernetes/../../../../tmp/x" climbs above / through ".."$' "$work/err" ||
    { cat "$work/err" >&2; fail "the field is not named"; }
  ! grep -q 'bad argument' "$work/err" || fail "an argument error leaked"
  [[ -z $(find "$root" -mindepth 1 ! -path "$root/etc" ! -path "$root/etc/kubernetes") ]] || fail "something was written"
}

failed=0
if (set -e; case_config_climbs); then echo "ok   case_config_climbs"; else echo "FAIL case_config_climbs"; failed=1; fi
for resolver in default walk; do
  for c in case_abs_missing case_abs_present case_relative case_parent case_read case_init_reset; do
    if [[ $resolver == walk ]]; then export KBOOT_FS_RESOLVE=walk; else unset KBOOT_FS_RESOLVE; fi
    if (set -e; $c); then echo "ok   [$resolver] $c"; else echo "FAIL [$resolver] $c"; failed=$((failed + 1)); fi
  done
done
[[ $failed == 0 ]] || { echo "$failed case(s) failed" >&2; exit 1; }

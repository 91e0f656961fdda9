#!/usr/bin/env bash
# cmake --install puts kboot and the kboot-certs-renew .service/.timer under the prefix: the unit
# runs that binary (`certs renew all --expiring-within 90d`), the timer is daily, nothing is enabled
# (no .wants link), systemd-analyze finds nothing wrong, and the installed binary runs the command.
set -euo pipefail

bin=${KBOOT_BIN:?KBOOT_BIN not set}
build=$(dirname "$bin")
work=$(mktemp -d /tmp/kboot-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

prefix=$work/usr/local
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "cmake --install"; }
units=$prefix/lib/systemd/system
svc=$units/kboot-certs-renew.service
timer=$units/kboot-certs-renew.timer
[[ -x $prefix/bin/kboot ]] || fail "no $prefix/bin/kboot"
[[ -f $svc && -f $timer ]] || fail "units not installed: $(ls -R "$prefix")"
grep -qx "ExecStart=$prefix/bin/kboot certs renew all --expiring-within 90d" "$svc" || fail "ExecStart: $(grep ExecStart "$svc")"
grep -qx "Type=oneshot" "$svc" || fail "not oneshot"
grep -qx "OnCalendar=daily" "$timer" || fail "timer is not daily"
grep -qx "WantedBy=timers.target" "$timer" || fail "timer has no [Install]"
# installed disabled: no enablement links anywhere under the prefix
if find "$prefix" -name '*.wants' | grep -q .; then fail "something is enabled: $(find "$prefix" -name '*.wants')"; fi
# DESTDIR staging keeps the prefix in ExecStart
DESTDIR=$work/stage cmake --install "$build" --prefix /usr >/dev/null
grep -qx "ExecStart=/usr/bin/kboot certs renew all --expiring-within 90d" "$work/stage/usr/lib/systemd/system/kboot-certs-renew.service" \
  || fail "DESTDIR install: $(grep ExecStart "$work/stage/usr/lib/systemd/system/kboot-certs-renew.service")"
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify "$svc" "$timer" 2>&1) || fail "systemd-analyze verify: $out"
  [[ -z $out ]] || fail "systemd-analyze verify: $out"
fi
# the installed binary runs the unit's command on a node with nothing to renew
mkdir -p "$work/root"
"$prefix/bin/kboot" certs renew all --expiring-within 90d --root "$work/root" >"$work/run.log" 2>&1 || { cat "$work/run.log"; fail "renew"; }
grep -q "Nothing was renewed" "$work/run.log" || fail "renew said: $(cat "$work/run.log")"
echo "ok: $svc, $timer"

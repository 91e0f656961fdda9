-- `kboot reset` as a command, on sandbox roots made by a real `kboot init --offline`: what is left
-- is exactly what it lists (tree compare) and init works again on the same root; a symlink planted
-- in the certificates dir pointing outside the root goes as a link, its target stays; a symlinked
-- directory is not followed; no --force and no terminal: refused, nothing changed; --dry-run
-- changes nothing and lists every path; etcd unreachable: reported at the end with the etcdctl
-- command, the rest done; real mounts below /var/lib/kubelet (tmpfs and a bind mount of a
-- directory outside the root, in a mount namespace of the test's own) unmounted before anything
-- is removed, the bind mount's source untouched; the [y/N] question on a real terminal (tmux).
local lu = require("luaunit")
local t = require("testlib")

local D, R, OUT -- the test dir, the node's root, a directory outside the root

local function config(extra)
  local f = D .. "/kubeadm.yaml"
  t.write(f, [[
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
nodeRegistration:
  name: node-a
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
encryptionAlgorithm: ECDSA-P256
]] .. (extra or ""))
  return f
end

-- etcd's client URL on a port nothing listens on: a remove-etcd-member that fails at once
local ETCD_NOWHERE
local function etcd_nowhere()
  return ([[
etcd:
  local:
    extraArgs:
    - { name: advertise-client-urls, value: "https://127.0.0.1:%d" }
]]):format(ETCD_NOWHERE)
end

local function init(root, cfg)
  local ok, out = t.kboot(("init --root %s --config %s --skip-phases=preflight --offline 2>&1"):format(t.q(root), t.q(cfg)))
  lu.assertTrue(ok, out)
end

local function reset(args) return t.kboot(("reset --root %s %s </dev/null 2>&1"):format(t.q(R), args or "")) end

-- every path under root with its type (d, f, l) and mode: what a tree is made of, not its contents
local function shape(root)
  return t.must(("cd %s && find . -mindepth 1 -printf '%%p %%y %%m\\n' | LC_ALL=C sort"):format(t.q(root)))
end

-- What a reset leaves of an init: the directories kubeadm empties and keeps, and their parents.
local KEPT = table.concat({
  "./etc d 755", "./etc/kubernetes d 755", "./etc/kubernetes/manifests d 700", "./etc/kubernetes/pki d 755",
  "./var d 755", "./var/lib d 755", "./var/lib/etcd d 700", "./var/lib/kubelet d 700", "" }, "\n")

TestReset = {}
function TestReset:setUp()
  D = t.tmpdir()
  R, OUT = D .. "/root", D .. "/outside"
  t.must(("mkdir -p %s %s && echo precious > %s/keep"):format(t.q(R), t.q(OUT), t.q(OUT)))
  ETCD_NOWHERE = t.free_port()
end
function TestReset:tearDown() t.cleanup() end

function TestReset:test_leaves_only_what_it_lists_and_init_works_again()
  init(R, config())
  local first = shape(R)
  local ok, out = reset("-f --skip-phases=remove-etcd-member")
  lu.assertTrue(ok, out)
  lu.assertEquals(shape(R), KEPT)
  -- each thing it leaves with the command that removes it
  lu.assertStrContains(out, "What kboot reset left on this node, each with the command that removes it:")
  for _, s in ipairs({ "iptables -F", "nft delete table ip kube-proxy", "ipvsadm --clear", "rm $HOME/.kube/config",
                       "kubectl delete node node-a" }) do
    lu.assertStrContains(out, s)
  end
  init(R, config())
  lu.assertEquals(shape(R), first)
  t.must("openssl verify -CAfile " .. t.q(R .. "/etc/kubernetes/pki/ca.crt") .. " " .. t.q(R .. "/etc/kubernetes/pki/apiserver.crt"))
end

function TestReset:test_etcd_unreachable_reported_at_the_end_and_the_rest_done()
  init(R, config(etcd_nowhere()))
  -- what is not its own stays, and is listed; a manifest of the admin's goes with the directory, as kubeadm
  t.must(("mkdir -p %s/etc/cni/net.d %s/etc/kubernetes/tmp && echo {} > %s/etc/cni/net.d/10-net.conflist && "
    .. "echo x > %s/etc/kubernetes/tmp/backup && echo x > %s/etc/kubernetes/manifests/kube-vip.yaml"):format(
    t.q(R), t.q(R), t.q(R), t.q(R), t.q(R)))
  local ok, out, code = reset("-f")
  lu.assertFalse(ok, out)
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, ("error execution phase remove-etcd-member: cannot remove this node's etcd member (peer URL https://127.0.0.1:2380) through https://127.0.0.1:%d"):format(ETCD_NOWHERE))
  lu.assertStrContains(out, "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=" .. R .. "/etc/kubernetes/pki/etcd/ca.crt --cert="
    .. R .. "/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=" .. R .. "/etc/kubernetes/pki/etcd/healthcheck-client.key member list")
  lu.assertStrContains(out, "member remove <ID>") -- no etcd ever ran here: no WAL to read the id from
  lu.assertStrContains(out, "reset: 1 step(s) failed (listed above); everything else was done")
  -- the report comes after the phases: the failure is the last thing said
  lu.assertTrue(out:find("error execution phase remove-etcd-member", 1, true) > out:find("Deleting files", 1, true), out)
  local want = {}
  for l in (KEPT .. "./etc/cni d 755\n./etc/cni/net.d d 755\n./etc/cni/net.d/10-net.conflist f 644\n./etc/kubernetes/tmp d 755\n"
            .. "./etc/kubernetes/tmp/backup f 644\n"):gmatch("[^\n]+") do want[#want + 1] = l end
  table.sort(want)
  lu.assertEquals(shape(R), table.concat(want, "\n") .. "\n")
  lu.assertStrContains(out, ("CNI configuration in %s/etc/cni/net.d:\n      rm -rf %s/etc/cni/net.d/*"):format(R, R))
end

function TestReset:test_cleanup_tmp_dir()
  init(R, config())
  t.must(("mkdir -p %s/etc/kubernetes/tmp/kubeadm-backup-etcd && echo x > %s/etc/kubernetes/tmp/kubeadm-backup-etcd/db"):format(t.q(R), t.q(R)))
  local ok, out = reset("-f --cleanup-tmp-dir --skip-phases=remove-etcd-member")
  lu.assertTrue(ok, out)
  lu.assertEquals(t.must("ls -A " .. t.q(R .. "/etc/kubernetes/tmp")), "")
end

function TestReset:test_a_symlink_in_pki_goes_as_a_link_its_target_stays()
  init(R, config())
  t.must(("ln -s %s %s/etc/kubernetes/pki/outside && ln -s %s/keep %s/etc/kubernetes/pki/etcd/keep.crt && ln -s %s %s/var/lib/kubelet/pki"):format(
    t.q(OUT), t.q(R), t.q(OUT), t.q(R), t.q(OUT), t.q(R)))
  local ok, out = reset("-f --skip-phases=remove-etcd-member")
  lu.assertTrue(ok, out)
  lu.assertEquals(shape(R), KEPT)
  lu.assertEquals(t.read(OUT .. "/keep"), "precious\n")
  lu.assertEquals(t.must("ls -A " .. t.q(OUT)), "keep\n")
end

function TestReset:test_a_symlinked_data_dir_is_not_followed()
  init(R, config())
  -- the etcd data directory replaced by a link to somewhere else
  t.must(("mkdir -p %s/etcd/member/snap && echo db > %s/etcd/member/snap/db && rmdir %s/var/lib/etcd && ln -s %s/etcd %s/var/lib/etcd"):format(
    t.q(OUT), t.q(OUT), t.q(R), t.q(OUT), t.q(R)))
  local ok, out, code = reset("-f --skip-phases=remove-etcd-member")
  lu.assertFalse(ok, out)
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, ("error execution phase cleanup-node: not emptying %s/var/lib/etcd: it is a symlink (to %s/etcd), which is not followed"):format(R, OUT))
  lu.assertEquals(t.read(OUT .. "/etcd/member/snap/db"), "db\n")
  -- everything else went
  for _, d in ipairs({ "/etc/kubernetes/pki", "/etc/kubernetes/manifests", "/var/lib/kubelet" }) do
    lu.assertEquals(t.must("ls -A " .. t.q(R .. d)), "", d)
  end
end

function TestReset:test_a_cert_dir_that_is_a_system_directory_is_not_emptied()
  init(R, config())
  local ok, out, code = reset("-f --skip-phases=remove-etcd-member --cert-dir /etc")
  lu.assertFalse(ok, out)
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, ("not emptying the certificates directory %s/etc (from --cert-dir / ResetConfiguration.certificatesDir): a system directory"):format(R))
  lu.assertTrue(t.sh("test -f " .. t.q(R .. "/etc/kubernetes/pki/ca.key")))
  lu.assertFalse(t.sh("test -e " .. t.q(R .. "/etc/kubernetes/admin.conf"))) -- the rest was done
end

function TestReset:test_refuses_without_force_and_a_terminal()
  init(R, config())
  local before = t.tree_hash(R)
  local ok, out, code = reset("")
  lu.assertFalse(ok)
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, "refusing to reset without a terminal to confirm on (standard input is not one): give --force (-f)")
  lu.assertEquals(t.tree_hash(R), before)
  -- a phase alone asks too (kubeadm's question is in its preflight phase only)
  ok, out = t.kboot(("reset phase cleanup-node --root %s </dev/null 2>&1"):format(t.q(R)))
  lu.assertFalse(ok, out)
  lu.assertEquals(t.tree_hash(R), before)
end

function TestReset:test_dry_run_changes_nothing_and_lists_every_path()
  init(R, config(etcd_nowhere()))
  t.must(("ln -s %s %s/etc/kubernetes/pki/outside"):format(t.q(OUT), t.q(R)))
  local before = t.tree_hash(R)
  local ok, out = t.kboot(("reset --root %s --dry-run </dev/null 2>&1"):format(t.q(R)))
  lu.assertTrue(ok, out)
  lu.assertEquals(t.tree_hash(R), before)
  for line in t.must(("cd %s && find . -mindepth 1 ! -type d | sort"):format(t.q(R))):gmatch("[^\n]+") do
    lu.assertStrContains(out, "--- would remove " .. R .. line:sub(2), false)
  end
  lu.assertStrContains(out, "--- would remove " .. R .. "/etc/kubernetes/pki/outside (a symlink: removed as a link, its target kept)")
  lu.assertStrContains(out, "--- would remove " .. R .. "/etc/kubernetes/pki/etcd/ (directory)")
  lu.assertStrContains(out, ("--- would run: etcd https://127.0.0.1:%d: POST /v3/cluster/member/list"):format(ETCD_NOWHERE))
  lu.assertStrContains(out, "What kboot reset would leave on this node")
  lu.assertStrContains(out, "[dry-run] Nothing was removed, unmounted, stopped or sent")
  -- ResetConfiguration.dryRun means the same
  t.write(D .. "/reset.yaml", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\ndryRun: true\n")
  ok, out = t.kboot(("reset --root %s --config %s </dev/null 2>&1"):format(t.q(R), t.q(D .. "/reset.yaml")))
  lu.assertTrue(ok, out)
  lu.assertEquals(t.tree_hash(R), before)
end

function TestReset:test_bad_input_is_one_line_exit_2_nothing_changed()
  init(R, config())
  local before = t.tree_hash(R)
  local cases = {
    { "-f --bogus", "unknown option --bogus" },
    { "-f --skip-phases=nope", 'unknown phase "nope"; phases are: preflight, remove-etcd-member, cleanup-node' },
  }
  t.write(D .. "/bad.yaml", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\nunmountFlags: [MNT_LAZY]\nforce: yes-please\ncertDir: /x\n")
  cases[#cases + 1] = { "--config " .. t.q(D .. "/bad.yaml"), "ResetConfiguration.certDir: unknown field" }
  cases[#cases + 1] = { "-f --cert-dir /etc/kubernetes/../../../tmp", 'ResetConfiguration.certificatesDir: "/etc/kubernetes/../../../tmp" climbs above / through ".." (--cert-dir)' }
  for _, c in ipairs(cases) do
    local ok, out, code = reset(c[1])
    lu.assertFalse(ok, out)
    lu.assertEquals(code, 2, c[1] .. ": " .. out)
    lu.assertStrContains(out, c[2])
  end
  local ok, out, code = t.kboot(("reset phase nope --root %s -f 2>&1"):format(t.q(R)))
  lu.assertFalse(ok)
  lu.assertEquals(code, 2, out)
  lu.assertStrContains(out, 'unknown phase "nope"')
  _, out = reset("--config " .. t.q(D .. "/bad.yaml"))
  lu.assertStrContains(out, "ResetConfiguration.force: must be true or false")
  lu.assertEquals(t.tree_hash(R), before)
end

-- A node whose etcd manifest is damaged: remove-etcd-member names the file and what it lacks in
-- one line; a dry run still changes nothing.
function TestReset:test_damaged_etcd_manifest_named()
  t.must("mkdir -p " .. t.q(R .. "/etc/kubernetes/manifests"))
  t.write(R .. "/etc/kubernetes/manifests/etcd.yaml", "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: etcd, command: 5}]}\n")
  local before = t.tree_hash(R)
  local ok, out, code = reset("-f --dry-run")
  lu.assertFalse(ok, out)
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, "error execution phase remove-etcd-member: the etcd manifest " .. R
    .. "/etc/kubernetes/manifests/etcd.yaml names no usable --advertise-client-urls (none found)")
  lu.assertNotStrContains(out, ".lua:")
  lu.assertEquals(t.tree_hash(R), before)
end

function TestReset:test_help_of_the_command_and_a_phase()
  local ok, out = t.kboot("reset --help")
  lu.assertTrue(ok, out)
  for _, s in ipairs({ "Usage: kboot reset [options]", "preflight", "remove-etcd-member", "cleanup-node", "--cert-dir DIR",
                       "--cri-socket PATH", "-f, --force", "--ignore-preflight-errors LIST", "--skip-phases LIST",
                       "--kubeconfig FILE", "--config FILE", "--cleanup-tmp-dir", "--root DIR", "--dry-run" }) do
    lu.assertStrContains(out, s)
  end
  ok, out = t.kboot("reset phase remove-etcd-member --help")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "Usage: kboot reset phase remove-etcd-member [options]")
  lu.assertStrContains(out, "Remove a local etcd member")
end

---------------------------------------------------------------------------------------------------
-- Real mounts, in a private mount namespace (root only)

function TestReset:test_mounts_below_the_kubelet_dir_unmounted_first_never_followed()
  if not t.sh("test $(id -u) = 0 && unshare -m --propagation private true") then lu.skip("needs root and unshare -m") end
  init(R, config())
  local K = R .. "/var/lib/kubelet/pods/p1/volumes"
  -- an emptyDir on tmpfs, a hostPath bind-mounted from outside the root (same file system: only the
  -- unmount keeps its contents), a mount inside a mount, and a mount outside the kubelet dir with a
  -- symlink to it inside
  t.must(("mkdir -p %s/bind-src %s/mnt-outside %s/empty %s/host"):format(t.q(OUT), t.q(OUT), t.q(K), t.q(K)))
  t.must(("echo source > %s/bind-src/data"):format(t.q(OUT)))
  local check = D .. "/check.lua"
  t.write(check, ([[
local fs = require("kboot.fs")
assert(fs.set_root(%q))
-- a symlink at the mount point is not followed: EINVAL, the mount stays
local ok, err = fs.unmount("/var/lib/kubelet/pods/p1/volumes/link")
print("link", ok, err and err.code)
]]):format(R))
  local script = table.concat({
    "set -e",
    ("mount -t tmpfs tmpfs %s/empty && echo e > %s/empty/f && mkdir %s/empty/inner && mount -t tmpfs tmpfs %s/empty/inner"):format(K, K, K, K),
    ("mount --bind %s/bind-src %s/host"):format(OUT, K),
    ("mount -t tmpfs tmpfs %s/mnt-outside && echo m > %s/mnt-outside/f && ln -s %s/mnt-outside %s/link"):format(OUT, OUT, OUT, K),
    ("%s %s"):format(t.q(t.bin), t.q(check)),
    ("grep -c ' %s/var/lib/kubelet/' /proc/self/mountinfo || true"):format(R),
    ("%s reset --root %s -f --skip-phases=remove-etcd-member </dev/null 2>&1 || echo RESET-FAILED"):format(t.q(t.bin), t.q(R)),
    ("echo left: $(grep -c ' %s/var/lib/kubelet/' /proc/self/mountinfo || true)"):format(R),
    ("echo outside: $(cat %s/mnt-outside/f)"):format(OUT),
  }, "\n")
  t.write(D .. "/ns.sh", script)
  local out = t.must("unshare -m --propagation private sh " .. t.q(D .. "/ns.sh"))
  lu.assertStrContains(out, "link\tnil\t22") -- EINVAL
  lu.assertStrContains(out, "\n3\n")        -- three mounts below the kubelet dir before the reset
  lu.assertNotStrContains(out, "RESET-FAILED")
  lu.assertStrContains(out, "left: 0")
  lu.assertStrContains(out, "outside: m")   -- the mount the link named was not touched
  lu.assertEquals(t.read(OUT .. "/bind-src/data"), "source\n")
  lu.assertEquals(t.must("ls -A " .. t.q(R .. "/var/lib/kubelet")), "")
  lu.assertEquals(shape(R), KEPT)
end

---------------------------------------------------------------------------------------------------
-- The question on a real terminal

local have_tmux = t.sh("command -v tmux >/dev/null")

local calls = 0
local function on_terminal(answer)
  -- a socket of its own per call: a new session on the socket of a server still going away after
  -- kill-server fails with "server exited unexpectedly" (seen in CI)
  calls = calls + 1
  local sock, status = ("%s/tmux-%d.sock"):format(D, calls), D .. "/status"
  os.remove(status)
  t.write(D .. "/tmux.conf", "set -g remain-on-exit on\nset -g status off\n")
  local cmd = ("%s reset --root %s --skip-phases=remove-etcd-member; echo $? > %s"):format(t.q(t.bin), t.q(R), t.q(status))
  t.must(("tmux -S %s -f %s new-session -d -s reset -x 200 -y 50 %s"):format(t.q(sock), t.q(D .. "/tmux.conf"), t.q("sh -c " .. t.q(cmd))))
  local screen
  for _ = 1, 400 do
    screen = t.must(("tmux -S %s capture-pane -p -t reset"):format(t.q(sock)))
    if screen:find("[y/N]:", 1, true) then break end -- tmux drops the trailing space
    os.execute("sleep 0.05")
  end
  lu.assertStrContains(screen, "[reset] Are you sure you want to proceed? [y/N]:")
  lu.assertStrContains(screen, "will be reverted")
  t.must(("tmux -S %s send-keys -t reset -l %s && tmux -S %s send-keys -t reset Enter"):format(t.q(sock), t.q(answer), t.q(sock)))
  local code
  for _ = 1, 400 do
    local f = io.open(status)
    code = f and f:read("n")
    if f then f:close() end
    if code then break end
    os.execute("sleep 0.05")
  end
  screen = t.must(("tmux -S %s capture-pane -p -t reset -S -100"):format(t.q(sock)))
  t.sh(("tmux -S %s kill-server"):format(t.q(sock)))
  return code, screen
end

function TestReset:test_asks_on_a_terminal()
  if not have_tmux then lu.skip("no tmux") end
  init(R, config())
  local before = t.tree_hash(R)
  local code, screen = on_terminal("n")
  lu.assertEquals(code, 1, screen)
  lu.assertStrContains(screen, "won't proceed; the user didn't answer (Y|y) in order to continue")
  lu.assertEquals(t.tree_hash(R), before)
  code, screen = on_terminal("y")
  lu.assertEquals(code, 0, screen)
  lu.assertEquals(shape(R), KEPT)
end

os.exit(lu.LuaUnit.run("-v"))

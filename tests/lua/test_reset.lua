-- The parts of `kboot reset` that need no node: ResetConfiguration loading and checking, which
-- directories reset may empty, /proc/self/mountinfo parsing, the member id in an etcd WAL (frames
-- built here byte by byte, as etcd's encoder writes them), the question, and the host commands
-- (systemctl, crictl) with a recording ctx.exec instead of a shell.
local lu = require("luaunit")
local rc = require("kboot.reset_config")
local node = require("kboot.reset.node")
local cleanup = require("kboot.reset.cleanup_node")
local etcd_member = require("kboot.reset.etcd_member")
local preflight = require("kboot.reset.preflight")

local function load(text, flags)
  return rc.load({ text = text, flags = flags })
end

TestResetConfig = {}
function TestResetConfig:test_defaults_without_a_file()
  local p = assert(load(nil))
  lu.assertEquals(p.reset.kind, "ResetConfiguration")
  lu.assertFalse(p.reset.force)
  lu.assertFalse(p.reset.cleanupTmpDir)
  lu.assertNil(p.reset.certificatesDir) -- read from the node, not kubeadm's default
  lu.assertEquals(p.reset.timeouts.etcdAPICall, "2m0s")
  lu.assertNil(p.cluster)
end

function TestResetConfig:test_flags_over_the_file_and_the_cluster_document()
  local p, errs, warnings = load([[
apiVersion: kubeadm.k8s.io/v1beta4
kind: ResetConfiguration
certificatesDir: /srv/pki
criSocket: unix:///run/crio/crio.sock
skipPhases: [preflight]
ignorePreflightErrors: [Swap]
unmountFlags: [MNT_DETACH, UMOUNT_NOFOLLOW]
timeouts:
  etcdAPICall: 30s
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
etcd:
  local:
    dataDir: /data/etcd
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
]], { cert_dir = "/opt/pki", ignore_preflight_errors = { "IsPrivilegedUser" }, force = true,
      _given = { ["cert-dir"] = true, ["ignore-preflight-errors"] = true, force = true } })
  lu.assertNotNil(p, table.concat(errs or {}, "\n"))
  lu.assertEquals(p.reset.certificatesDir, "/opt/pki")
  lu.assertEquals(p.reset.criSocket, "unix:///run/crio/crio.sock")
  lu.assertTrue(p.reset.force)
  lu.assertEquals(p.reset.skipPhases, { "preflight" })
  lu.assertEquals(p.reset.ignorePreflightErrors, { "Swap", "IsPrivilegedUser" })
  lu.assertEquals(p.reset.timeouts.etcdAPICall, "30s")
  lu.assertEquals(p.cluster.etcd["local"].dataDir, "/data/etcd")
  lu.assertStrContains(warnings[1], "ignoring InitConfiguration document")
end

function TestResetConfig:test_every_problem_one_line_naming_the_field()
  local p, errs = load([[
apiVersion: kubeadm.k8s.io/v1beta4
kind: ResetConfiguration
force: 1
unmountFlags: [MNT_LAZY]
certificatesDir: relative/pki
criSocket: tcp://x
skipPhases: [""]
bogus: true
]])
  lu.assertNil(p)
  local all = table.concat(errs, "\n")
  lu.assertStrContains(all, "ResetConfiguration.force: must be true or false")
  lu.assertStrContains(all, "ResetConfiguration.bogus: unknown field")
  p, errs = load("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\nunmountFlags: [MNT_LAZY]\ncertificatesDir: relative/pki\ncriSocket: tcp://x\n")
  all = table.concat(errs, "\n")
  lu.assertStrContains(all, 'ResetConfiguration.unmountFlags[0]: "MNT_LAZY" is not one of MNT_FORCE, MNT_DETACH, MNT_EXPIRE, UMOUNT_NOFOLLOW')
  lu.assertStrContains(all, 'ResetConfiguration.certificatesDir: "relative/pki" must be an absolute path')
  lu.assertStrContains(all, 'ResetConfiguration.criSocket: "tcp://x" must be an absolute path or a unix:// URL')
  p, errs = load("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\n", { cert_dir = "pki", _given = { ["cert-dir"] = true } })
  lu.assertStrContains(errs[1], 'ResetConfiguration.certificatesDir: "pki" must be an absolute path (--cert-dir)')
  -- a path that climbs above / through "..": refused as init refuses it (config_validate.host_path)
  p, errs = load("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\n", { cert_dir = "/etc/../../tmp/x", _given = { ["cert-dir"] = true } })
  lu.assertEquals(errs, { 'ResetConfiguration.certificatesDir: "/etc/../../tmp/x" climbs above / through ".." (--cert-dir)' })
  p, errs = load("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta4\n"
    .. "kind: ClusterConfiguration\ncertificatesDir: /etc/kubernetes/../../../x\netcd: {local: {dataDir: /var/lib/../../../etcd}}\n")
  lu.assertEquals(errs, { 'ClusterConfiguration.certificatesDir: "/etc/kubernetes/../../../x" climbs above / through ".."',
                          'ClusterConfiguration.etcd.local.dataDir: "/var/lib/../../../etcd" climbs above / through ".."' })
  p, errs = load("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ResetConfiguration\n")
  lu.assertStrContains(errs[1], 'ResetConfiguration.apiVersion: "kubeadm.k8s.io/v1beta3" is not supported (use kubeadm.k8s.io/v1beta4)')
  p, errs = load("apiVersion: example.com/v1\nkind: Thing\n")
  lu.assertStrContains(errs[1], 'Thing.apiVersion: unknown API group in "example.com/v1"')
end

TestResetNode = {}
function TestResetNode:test_sane_dir()
  for _, d in ipairs({ "/etc/kubernetes/pki", "/srv/pki", "/var/lib/etcd", "/data/etcd", "/opt/k8s/pki" }) do
    lu.assertTrue(node.sane_dir(d), d)
  end
  for _, d in ipairs({ "/", "/etc", "/var", "/var/lib", "/etc/kubernetes", "/usr/lib", "/home/me", "relative", "/boot/x",
                       "/var/lib/kubelet" }) do
    local ok, why = node.sane_dir(d)
    lu.assertFalse(ok, d)
    lu.assertIsString(why)
  end
end

TestResetMounts = {}
function TestResetMounts:test_mounts_below_deepest_first_escapes_decoded()
  local info = table.concat({
    "22 1 0:21 / /var/lib/kubelet rw shared:1 - ext4 /dev/sda1 rw",
    "23 22 0:22 / /var/lib/kubelet/pods/a/volumes/kubernetes.io~empty-dir/x rw - tmpfs tmpfs rw",
    "24 23 0:23 / /var/lib/kubelet/pods/a/volumes/kubernetes.io~empty-dir/x/inner rw - tmpfs tmpfs rw",
    "25 22 0:24 / /var/lib/kubelet/pods/b/with\\040space rw - tmpfs tmpfs rw",
    "26 1 0:25 / /var/lib/kubelet-other/x rw - tmpfs tmpfs rw",
    "27 1 0:26 / /mnt rw - tmpfs tmpfs rw",
  }, "\n")
  lu.assertEquals(cleanup.mounts_below(info, "/var/lib/kubelet"), {
    "/var/lib/kubelet/pods/a/volumes/kubernetes.io~empty-dir/x/inner",
    "/var/lib/kubelet/pods/a/volumes/kubernetes.io~empty-dir/x",
    "/var/lib/kubelet/pods/b/with space",
  })
  lu.assertEquals(cleanup.mounts_below(info, "/nowhere"), {})
end

---------------------------------------------------------------------------------------------------
-- An etcd WAL head: frames of walpb.Record, as etcd's encoder writes them

local function varint(n)
  local out = {}
  repeat
    local b = n & 0x7f
    n = n >> 7 -- logical: a uint64 in a Lua integer
    out[#out + 1] = string.char(n ~= 0 and (b | 0x80) or b)
  until n == 0
  return table.concat(out)
end
local function field_varint(f, v) return varint(f << 3) .. varint(v) end
local function field_bytes(f, s) return varint((f << 3) | 2) .. varint(#s) .. s end
local function frame(rec)
  local pad = (8 - #rec % 8) % 8
  local len = #rec
  if pad > 0 then len = len | ((0x80 | pad) << 56) end
  return string.pack("<i8", len) .. rec .. ("\0"):rep(pad)
end
local function wal(id)
  local crc = frame(field_varint(1, 4) .. field_varint(2, 0))
  local md = field_varint(1, id) .. field_varint(2, 0x7249cda2092b26f2)
  local meta = frame(field_varint(1, 1) .. field_varint(2, 12345) .. field_bytes(3, md))
  return crc .. meta .. frame(field_varint(1, 5) .. field_bytes(3, "")) .. ("\0"):rep(64)
end

TestResetWal = {}
function TestResetWal:test_member_id_of_the_metadata_record()
  lu.assertEquals(etcd_member.wal_member_id(wal(0x1a151d904b206050)), "1879440925069959248")
  -- the upper half of the uint64 range: a negative Lua integer, still the right decimal
  local id = etcd_member.wal_member_id(wal(-0x4f9c61ae59bdaf72)) -- 0xb0639e51a642508e
  lu.assertEquals(require("kboot.etcd_members").hex_id(id), ("%x"):format(-0x4f9c61ae59bdaf72))
  lu.assertEquals(id, "12710176646888575118")
  lu.assertNil(etcd_member.wal_member_id(""))
  lu.assertNil(etcd_member.wal_member_id(("\255"):rep(32)))
  lu.assertNil(etcd_member.wal_member_id(wal(1):sub(1, 20))) -- cut inside the crc record
end

---------------------------------------------------------------------------------------------------
-- The question

local function ctx(o)
  local logs = {}
  local function rec(level) return function(tag, fmt, ...) logs[#logs + 1] = ("%s [%s] %s"):format(level, tag, fmt:format(...)) end end
  local c = { reset = { force = false, ignorePreflightErrors = {}, unmountFlags = {} }, dry_run = false, logs = logs,
              log = { info = rec("info"), warn = rec("warn"), debug = rec("debug") }, plan = {}, left = {}, calls = {} }
  c.reset_call = function(text) c.plan[#c.plan + 1] = text end
  c.reset_leave = function(what, command) c.left[#c.left + 1] = { what, command } end
  for k, v in pairs(o or {}) do c[k] = v end
  return c
end

TestResetConfirm = {}
function TestResetConfirm:test_answers()
  local function ask(answer, tty)
    local written = {}
    local ok, err = preflight.confirm(ctx(), { isatty = function() return tty ~= false end,
      read = function() return answer end, write = function(s) written[#written + 1] = s end })
    return ok, err, table.concat(written)
  end
  for _, a in ipairs({ "y", "Y", "yes", " YES " }) do lu.assertTrue(ask(a), a) end
  for _, a in ipairs({ "n", "", "no", "yy" }) do
    local ok, err, w = ask(a)
    lu.assertNil(ok, a)
    lu.assertStrContains(tostring(err), "won't proceed; the user didn't answer (Y|y) in order to continue")
    lu.assertEquals(w, "[reset] Are you sure you want to proceed? [y/N]: ")
  end
  lu.assertNil((ask(nil))) -- end of input
  local ok, err = ask("y", false)
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "refusing to reset without a terminal to confirm on")
  lu.assertTrue(preflight.confirm(ctx({ reset = { force = true } }), { isatty = function() return false end }))
  lu.assertTrue(preflight.confirm(ctx({ dry_run = true }), { isatty = function() return false end }))
end

---------------------------------------------------------------------------------------------------
-- Host commands, on a fake real root

local function host_ctx(files, results)
  local ran = {}
  local c = ctx({
    fs = { root = function() return "/" end, exists = function(p) return files[p] == true end,
           path = function(p) return p end },
    reset_node = { cri_socket = "unix:///run/containerd/containerd.sock" },
    exec = function(cmd)
      ran[#ran + 1] = cmd
      for pat, r in pairs(results or {}) do
        if cmd:find(pat, 1, true) then return r[1], r[2] end
      end
      return true, ""
    end,
  })
  return c, ran
end

TestResetHost = {}
function TestResetHost:setUp() self.path = os.getenv("PATH") end

function TestResetHost:test_kubelet_stop()
  local kubelet = require("kboot.components.kubelet")
  local c, ran = host_ctx({ ["/usr/bin/systemctl"] = true, ["/usr/bin/kubelet"] = true })
  lu.assertTrue(kubelet.stop(c))
  lu.assertEquals(ran, { "systemctl stop kubelet" })
  c, ran = host_ctx({ ["/usr/bin/systemctl"] = true, ["/usr/bin/kubelet"] = true }, { systemctl = { false, "Access denied\n" } })
  local ok, err = kubelet.stop(c)
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "The kubelet service could not be stopped ('systemctl stop kubelet': Access denied)")
  c, ran = host_ctx({ ["/usr/bin/systemctl"] = true })
  lu.assertFalse(kubelet.stop(c))
  lu.assertEquals(ran, {})
  c, ran = host_ctx({ ["/usr/bin/systemctl"] = true, ["/usr/bin/kubelet"] = true })
  c.dry_run = true
  local r, why, would = kubelet.stop(c)
  lu.assertFalse(r)
  lu.assertStrContains(why, "dry run")
  lu.assertEquals(would, "systemctl stop kubelet")
  lu.assertEquals(ran, {})
end

function TestResetHost:test_pods_removed_through_crictl()
  local crictl
  for d in (os.getenv("PATH") or "/usr/bin"):gmatch("[^:]+") do crictl = crictl or (d:sub(1, 1) == "/" and d .. "/crictl") end
  local c, ran = host_ctx({ [crictl] = true }, { ["pods -q"] = { true, "aaa\nbbb\n" } })
  lu.assertTrue(cleanup.remove_containers(c))
  local sock = "'unix:///run/containerd/containerd.sock'"
  local base = ("'%s' -r %s -i %s"):format(crictl, sock, sock)
  lu.assertEquals(ran, { base .. " -D=false pods -q", base .. " stopp 'aaa'", base .. " rmp 'aaa'",
                         base .. " stopp 'bbb'", base .. " rmp 'bbb'" })
  -- a pod that will not go is retried, then reported; the others still go
  c, ran = host_ctx({ [crictl] = true }, { ["pods -q"] = { true, "aaa\nbbb\n" }, ["rmp 'aaa'"] = { false, "busy\n" } })
  local ok, err = cleanup.remove_containers(c)
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "failed to remove some pods with crictl: pod aaa: busy")
  local n = 0
  for _, cmd in ipairs(ran) do if cmd:find("rmp 'aaa'", 1, true) then n = n + 1 end end
  lu.assertEquals(n, cleanup.REMOVE_RETRIES)
  lu.assertEquals(ran[#ran], base .. " rmp 'bbb'")
  -- a dry run lists what it would run
  c, ran = host_ctx({ [crictl] = true })
  c.dry_run = true
  lu.assertTrue(cleanup.remove_containers(c))
  lu.assertEquals(ran, {})
  lu.assertStrContains(c.plan[1], base .. " -D=false pods -q")
  -- no crictl: a warning and a line of what is left
  c, ran = host_ctx({})
  lu.assertTrue(cleanup.remove_containers(c))
  lu.assertEquals(ran, {})
  lu.assertStrContains(c.left[1][1], "crictl not found")
  -- a sandbox root: the host's containers are not the node's
  c, ran = host_ctx({ [crictl] = true })
  c.fs.root = function() return "/tmp/r" end
  lu.assertTrue(cleanup.remove_containers(c))
  lu.assertEquals(ran, {})
end

os.exit(lu.LuaUnit.run("-v"))

-- kboot.preflight with fake /proc, /sys and /etc files under a --root sandbox: each check passes on a
-- good node and fails with its kubeadm name and a fix on a bad one; --ignore-preflight-errors.
local lu = require("luaunit")
local t = require("testlib")
local fs = require("kboot.fs")

local GOOD_ROUTE = "Iface\tDestination\n"
local function tcp_row(port, state)
  return ("   0: 00000000:%04X 00000000:0000 %s 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n"):format(port, state)
end

local function write(root, path, data)
  t.must("mkdir -p " .. t.q((root .. path):match("^(.*)/")))
  t.write(root .. path, data)
end

-- A node that passes every check.
local function good_node(root)
  write(root, "/proc/cpuinfo", "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\nmodel name\t: x\n")
  write(root, "/proc/meminfo", "MemTotal:        4026532 kB\nMemFree: 1 kB\n")
  write(root, "/proc/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
  write(root, "/proc/net/tcp", "  sl  local_address rem_address   st\n" .. tcp_row(22, "0A") .. tcp_row(6443, "01"))
  write(root, "/proc/net/tcp6", "  sl  local_address rem_address   st\n")
  write(root, "/proc/sys/net/ipv4/ip_forward", "1\n")
  write(root, "/proc/sys/net/bridge/bridge-nf-call-iptables", "1\n")
  write(root, "/etc/containerd/config.toml", "[plugins]\n  # SystemdCgroup = false\n  SystemdCgroup = true\n")
  write(root, "/usr/bin/kubelet", "#!/bin/sh\n")
  write(root, "/usr/bin/crictl", "#!/bin/sh\n")
  t.must("mkdir -p " .. t.q(root .. "/var/run/containerd") .. " && python3 -c " ..
    t.q("import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])") .. " " .. t.q(root .. "/var/run/containerd/containerd.sock"))
end

local function ctx_for(root, o)
  o = o or {}
  assert(fs.set_root(root))
  local host = { hostname = "n" }
  local p = assert(require("kboot.config").load({ docs = o.docs or {}, host = host,
    flags = { apiserver_advertise_address = o.address or "10.0.0.5", ignore_preflight_errors = o.ignore } }))
  return require("kboot.context").new({ flow = "init", parts = p, host = host, fs = fs })
end

local function names(list)
  local out = {}
  for _, e in ipairs(list) do out[#out + 1] = e.name end
  table.sort(out)
  return table.concat(out, " ")
end

TestPreflight = {}
function TestPreflight:tearDown() fs.set_root("/") t.cleanup() end

function TestPreflight:test_good_node_passes()
  local root = t.tmpdir()
  good_node(root)
  local res = require("kboot.preflight").check(ctx_for(root))
  lu.assertEquals(names(res.errors), "")
  lu.assertEquals(names(res.warnings), "")
end

function TestPreflight:test_each_problem_named_with_fix()
  local root = t.tmpdir()
  good_node(root)
  write(root, "/proc/cpuinfo", "processor\t: 0\n")
  write(root, "/proc/meminfo", "MemTotal:        1024000 kB\n")
  write(root, "/proc/swaps", "Filename\tType\n/swapfile file 100 0 -2\n")
  write(root, "/proc/net/tcp6", "  sl  local_address\n" .. tcp_row(6443, "0A") .. tcp_row(2379, "0A") .. tcp_row(10250, "0A"))
  write(root, "/proc/sys/net/ipv4/ip_forward", "0\n")
  os.remove(root .. "/proc/sys/net/bridge/bridge-nf-call-iptables")
  write(root, "/etc/containerd/config.toml", "SystemdCgroup = false\n")
  os.remove(root .. "/usr/bin/kubelet")
  os.remove(root .. "/var/run/containerd/containerd.sock")
  write(root, "/sys/fs/selinux/enforce", "1")
  write(root, "/etc/kubernetes/manifests/kube-apiserver.yaml", "x")
  write(root, "/var/lib/etcd/member/x", "x")
  local pf = require("kboot.preflight")
  local ctx = ctx_for(root)
  local res = pf.check(ctx)
  lu.assertEquals(names(res.errors), table.concat({
    "CRI", "CgroupDriver", "DirAvailable--var-lib-etcd", "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
    "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables", "FileContent--proc-sys-net-ipv4-ip_forward",
    "FileExisting-kubelet", "Mem", "NumCPU", "Port-10250", "Port-2379", "Port-6443", "SELinux", "Swap" }, " "))
  local by = {}
  for _, e in ipairs(res.errors) do by[e.name] = e end
  lu.assertStrContains(by.NumCPU.msg, "the number of available CPUs 1 is less than the required 2")
  lu.assertStrContains(by.Mem.msg, "the system RAM (1000 MB) is less than the minimum 1700 MB")
  lu.assertStrContains(by.Swap.fix, "swapoff -a")
  lu.assertStrContains(by["Port-6443"].msg, "Port 6443 is in use")
  lu.assertStrContains(by["FileContent--proc-sys-net-ipv4-ip_forward"].fix, "sysctl -w net.ipv4.ip_forward=1")
  lu.assertStrContains(by["FileContent--proc-sys-net-bridge-bridge-nf-call-iptables"].fix, "modprobe br_netfilter")
  lu.assertStrContains(by.CgroupDriver.msg, "containerd uses the cgroupfs cgroup driver but the kubelet is configured for systemd")
  lu.assertStrContains(by.CgroupDriver.fix, "SystemdCgroup = true")
  lu.assertStrContains(by.CRI.fix, "systemctl enable --now containerd")
  lu.assertStrContains(by["FileExisting-kubelet"].fix, "install the kubelet")
  lu.assertStrContains(by.SELinux.fix, "setenforce 0")
  -- under --root, the paths the admin acts on are the sandbox's, the check names kubeadm's
  local r = fs.root()
  lu.assertEquals(by["FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml"].msg, r .. "/etc/kubernetes/manifests/kube-apiserver.yaml already exists")
  lu.assertEquals(by["DirAvailable--var-lib-etcd"].msg, r .. "/var/lib/etcd is not empty")
  lu.assertStrContains(by["DirAvailable--var-lib-etcd"].fix, "rm -rf " .. r .. "/var/lib/etcd)")
  lu.assertStrContains(by.CRI.msg, "socket " .. r .. "/var/run/containerd/containerd.sock does not exist")
  lu.assertStrContains(by.CgroupDriver.fix, "in " .. r .. "/etc/containerd/config.toml")
  lu.assertStrContains(by["FileContent--proc-sys-net-ipv4-ip_forward"].msg, r .. "/proc/sys/net/ipv4/ip_forward contents")
  -- the phase fails with every error and the --ignore-preflight-errors hint
  local ok, msg = pf.run(ctx)
  lu.assertNil(ok)
  lu.assertStrContains(msg, "[ERROR Swap]: swap is on")
  lu.assertStrContains(msg, "--ignore-preflight-errors=")
end

function TestPreflight:test_ignore_some_and_all()
  local root = t.tmpdir()
  good_node(root)
  write(root, "/proc/swaps", "Filename\n/swapfile file 100 0 -2\n")
  write(root, "/proc/sys/net/ipv4/ip_forward", "0\n")
  local pf = require("kboot.preflight")
  local res = pf.check(ctx_for(root, { ignore = { "swap" } }))   -- names match case-insensitively
  lu.assertEquals(names(res.errors), "FileContent--proc-sys-net-ipv4-ip_forward")
  lu.assertEquals(names(res.warnings), "Swap")
  res = pf.check(ctx_for(root, { ignore = { "all" } }))
  lu.assertEquals(#res.errors, 0)
  lu.assertEquals(#res.warnings, 2)
  lu.assertTrue(pf.run(ctx_for(root, { ignore = { "all" } })))
end

function TestPreflight:test_kubelet_cgroupfs_matches_containerd_default()
  local root = t.tmpdir()
  good_node(root)
  write(root, "/etc/containerd/config.toml", "version = 2\n")
  local ctx = ctx_for(root, { address = "127.0.0.1" })
  ctx.kubelet = { cgroupDriver = "cgroupfs" }
  local res = require("kboot.preflight").check(ctx)
  lu.assertEquals(names(res.errors), "")
  lu.assertEquals(names(res.warnings), "")
  write(root, "/etc/containerd/config.toml", "SystemdCgroup = true\n")
  lu.assertEquals(names(require("kboot.preflight").check(ctx).errors), "CgroupDriver")
end

function TestPreflight:test_external_etcd_skips_etcd_checks_and_custom_port()
  local root = t.tmpdir()
  good_node(root)
  write(root, "/proc/net/tcp", "  sl\n" .. tcp_row(2379, "0A") .. tcp_row(7443, "0A"))
  write(root, "/var/lib/etcd/x", "x")
  local ctx = ctx_for(root, { docs = {
    { apiVersion = "kubeadm.k8s.io/v1beta4", kind = "ClusterConfiguration",
      etcd = { external = { endpoints = { "https://10.0.0.1:2379" } } } },
    { apiVersion = "kubeadm.k8s.io/v1beta4", kind = "InitConfiguration", localAPIEndpoint = { bindPort = 7443 } } } })
  lu.assertEquals(names(require("kboot.preflight").check(ctx).errors), "Port-7443")
end

function TestPreflight:test_sandbox_without_proc_one_warning()
  local root = t.tmpdir()
  local res = require("kboot.preflight").check(ctx_for(root))
  lu.assertEquals(names(res.warnings), "CgroupDriver FileExisting-crictl Proc")
  lu.assertEquals(names(res.errors), "CRI FileExisting-kubelet")
end

function TestPreflight:test_unreadable_proc_files_are_warnings_not_crashes()
  local root = t.tmpdir()
  good_node(root)
  for _, f in ipairs({ "cpuinfo", "meminfo", "swaps", "net/tcp", "net/tcp6" }) do os.remove(root .. "/proc/" .. f) end
  local res = require("kboot.preflight").check(ctx_for(root))
  lu.assertEquals(names(res.warnings), "Mem NumCPU Port-10257 Port-10259 Port-6443 Swap")
  lu.assertEquals(names(res.errors), "")
end

os.exit(lu.LuaUnit.run("-v"))

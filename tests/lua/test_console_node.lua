-- kboot.console.node: how the console finds a node's components, on a sandbox root with fake /proc
-- files (the root's /proc is used when it has one) and with none (this machine's, where no
-- component of this sandbox runs). Also diagnose_ctx and the etcd target built from the files.
local lu = require("luaunit")
local t = require("testlib")
local fs = require("kboot.fs")
local node = require("kboot.console.node")
local console = require("kboot.console")

local root

local function put(path, data)
  t.must("mkdir -p " .. t.q((root .. path):match("^(.*)/")))
  t.write(root .. path, data)
end

local function manifest(name, command)
  local lines = { "apiVersion: v1", "kind: Pod", "metadata:", "  name: " .. name, "spec:", "  containers:", "  - name: " .. name, "    command:" }
  for _, c in ipairs(command) do lines[#lines + 1] = "    - " .. c end
  put("/etc/kubernetes/manifests/" .. name .. ".yaml", table.concat(lines, "\n") .. "\n")
end

local function proc(pid, comm, args)
  put(("/proc/%d/comm"):format(pid), comm .. "\n")
  put(("/proc/%d/cmdline"):format(pid), table.concat(args, "\0") .. "\0")
end

TestNode = {}

function TestNode:setUp()
  root = t.tmpdir()
  assert(fs.set_root(root))
end

function TestNode:tearDown()
  assert(fs.set_root("/"))
  t.cleanup()
end

function TestNode:test_health_url_from_the_manifest()
  manifest("kube-scheduler", { "kube-scheduler", "--bind-address=127.0.0.1", "--kubeconfig=/etc/kubernetes/scheduler.conf" })
  manifest("kube-controller-manager", { "kube-controller-manager", "--bind-address=0.0.0.0", "--secure-port=10300" })
  -- no /proc under the root, and none of this machine's processes runs from this sandbox
  local url, src, p = node.health_url("kube-scheduler")
  lu.assertEquals({ url, src, p }, { "https://127.0.0.1:10259/healthz", "manifest", nil })
  lu.assertEquals((node.health_url("kube-controller-manager")), "https://127.0.0.1:10300/healthz")
  local none, err = node.health_url("etcd")
  lu.assertNil(none)
  lu.assertStrContains(tostring(err), "/etc/kubernetes/manifests/etcd.yaml")
end

function TestNode:test_the_running_process_wins()
  manifest("kube-scheduler", { "kube-scheduler", "--kubeconfig=/etc/kubernetes/scheduler.conf" })
  put("/proc/swaps", "Filename Type Size Used Priority\n")
  -- another cluster's scheduler on the same machine (its files elsewhere), and this node's
  proc(100, "kube-scheduler", { "/usr/bin/kube-scheduler", "--secure-port=1111", "--kubeconfig=/other/etc/kubernetes/scheduler.conf" })
  proc(200, "kube-scheduler", { "/usr/bin/kube-scheduler", "--secure-port=2222", "--bind-address=::",
    "--kubeconfig=" .. fs.path("/etc/kubernetes/scheduler.conf") })
  -- comm is cut to 15 bytes by the kernel
  proc(300, "kube-controller", { "/usr/bin/kube-controller-manager", "--kubeconfig=" .. fs.path("/etc/kubernetes/cm.conf") })
  proc(400, "bash", { "bash" })
  lu.assertEquals(#node.processes("kube-scheduler"), 2)
  lu.assertEquals(node.process("kube-scheduler").pid, 200)
  local url, src = node.health_url("kube-scheduler")
  lu.assertEquals({ url, src }, { "https://[::1]:2222/healthz", "pid 200" })
  lu.assertEquals(node.process("kube-controller-manager").pid, 300)
  lu.assertEquals((node.health_url("kube-controller-manager")), "https://127.0.0.1:10257/healthz")
  lu.assertNil(node.process("etcd"))
  -- the view reads this root's /proc as it is
  lu.assertEquals(node.view.read("/proc/swaps"), "Filename Type Size Used Priority\n")
end

function TestNode:test_host_proc_when_the_root_has_none()
  -- the view lists this machine's /proc: the test's own process is there
  local pids = assert(node.view.list("/proc"))
  local self = t.read("/proc/self/stat"):match("^(%d+)")
  local found = false
  for _, p in ipairs(pids) do if p == self then found = true end end
  lu.assertTrue(found)
  lu.assertTrue(node.view.exists("/proc/self/comm"))
  lu.assertNotNil(node.view.read("/proc/self/cmdline"))
  lu.assertFalse(fs.exists("/proc")) -- kboot.fs itself still sees the root
end

function TestNode:test_etcd_local_and_external()
  manifest("kube-apiserver", { "kube-apiserver", "--client-ca-file=/etc/kubernetes/pki/ca.crt", "--advertise-address=10.0.0.5" })
  manifest("etcd", { "etcd", "--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.5:2379",
    "--advertise-client-urls=https://10.0.0.5:2379" })
  local e = assert(node.etcd())
  lu.assertEquals(e.urls, { "https://127.0.0.1:2379", "https://10.0.0.5:2379" })
  lu.assertEquals({ e.ca, e.cert, e.key }, { "/etc/kubernetes/pki/etcd/ca.crt", "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
    "/etc/kubernetes/pki/etcd/healthcheck-client.key" })
  lu.assertTrue(e["local"])
  lu.assertEquals(node.advertise_address(), "10.0.0.5")
  -- external etcd: what the API server is told
  os.remove(root .. "/etc/kubernetes/manifests/etcd.yaml")
  manifest("kube-apiserver", { "kube-apiserver", "--client-ca-file=/srv/pki/ca.crt", "--etcd-servers=https://e1:2379,https://e2:2379",
    "--etcd-cafile=/srv/pki/etcd-ca.crt", "--etcd-certfile=/srv/pki/c.crt", "--etcd-keyfile=/srv/pki/c.key" })
  e = assert(node.etcd())
  lu.assertEquals(e.urls, { "https://e1:2379", "https://e2:2379" })
  lu.assertEquals({ e.ca, e.cert, e.key, e["local"] }, { "/srv/pki/etcd-ca.crt", "/srv/pki/c.crt", "/srv/pki/c.key", false })
  lu.assertEquals(node.cert_dir(), "/srv/pki")
  -- the etcd target reads those files; a missing one is one line
  local target, err = console.etcd.target()
  lu.assertNil(target)
  lu.assertStrContains(tostring(err), "/srv/pki/etcd-ca.crt")
  local _, merr = console.etcd.members()
  lu.assertStrContains(tostring(merr), "/srv/pki/etcd-ca.crt")
end

function TestNode:test_diagnose_ctx_from_the_files()
  manifest("kube-apiserver", { "kube-apiserver", "--secure-port=7443" })
  put("/var/lib/kubelet/config.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nhealthzPort: 12345\ncgroupDriver: systemd\n")
  put("/var/lib/kubelet/kubeadm-flags.env", 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/x.sock --pod-infra-container-image=p"\n')
  local ctx = console.diagnose_ctx()
  lu.assertEquals(ctx.endpoint.port, 7443)
  lu.assertEquals(ctx.kubelet.healthzPort, 12345)
  lu.assertEquals(ctx.node.criSocket, "unix:///run/x.sock")
  lu.assertNotNil(ctx.cluster.etcd.external) -- no etcd manifest
  lu.assertEquals(require("kboot.online.wait_control_plane").kubelet_healthz_url(ctx), "http://127.0.0.1:12345/healthz")
  -- diagnose on this sandbox: nothing answers, every check has a row, and the manifests are missing
  local list = assert(console.diagnose())
  local seen = {}
  for _, r in ipairs(list) do seen[r.check] = seen[r.check] or r end
  for _, c in ipairs(require("kboot.online.wait_control_plane").CHECKS) do lu.assertNotNil(seen[c], c) end
  lu.assertEquals(seen["kubelet-healthz"].status, "fail")
  lu.assertEquals(seen.manifests.status, "fail")
  lu.assertStrContains(seen.manifests.problem, "/etc/kubernetes/manifests/kube-controller-manager.yaml does not exist")
  lu.assertEquals(seen.manifests.fix, "run 'kboot init phase control-plane'")
end

os.exit(lu.LuaUnit.run("-v"))

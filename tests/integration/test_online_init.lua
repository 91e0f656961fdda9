-- `kboot init` with the online phases and no control plane: a clear wait-control-plane failure with
-- the diagnosis, usage errors before anything is written, and --dry-run printing every API object
-- while sending nothing (admin.conf points at a port nothing listens on).
local lu = require("luaunit")
local t = require("testlib")

local function init(root, args)
  return t.kboot(("init --root %s --kubernetes-version v1.20.2 --apiserver-advertise-address 127.0.0.1 --node-name n1 --skip-phases=preflight %s")
    :format(t.q(root), args or ""))
end

local function config(dir, body)
  local f = dir .. "/kubeadm.yaml"
  t.write(f, body)
  return f
end

TestOnlineInit = {}
function TestOnlineInit:tearDown() t.cleanup() end

function TestOnlineInit:test_wait_control_plane_times_out_with_a_diagnosis()
  local root, dir = t.tmpdir(), t.tmpdir()
  local port = t.free_port()
  local f = config(dir, ([[
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
timeouts:
  kubeletHealthCheck: 1s
  controlPlaneComponentHealthCheck: 1s
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
healthzPort: %d
]]):format(port))
  local ok, out, code = init(root, "--config " .. t.q(f))
  lu.assertFalse(ok)
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, ("[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:%d/healthz. This can take up to 1s"):format(port))
  lu.assertStrContains(out, "error: error execution phase wait-control-plane: the kubelet is not healthy after 1s")
  lu.assertStrContains(out, "likely cause: the kubelet is not installed")
  lu.assertNotStrContains(out, "could not pull")
  -- the offline phases' files are there; nothing after wait-control-plane ran
  lu.assertTrue(t.sh("test -f " .. t.q(root .. "/etc/kubernetes/admin.conf")))
  lu.assertNotStrContains(out, "[upload-config]")
end

function TestOnlineInit:test_bad_kube_proxy_server_is_a_usage_error_before_any_write()
  local root = t.tmpdir()
  local before = t.tree_hash(root)
  for _, bad in ipairs({ "http://10.0.0.1:6443", "https://lb:0", "lb.example:6443", "https://lb/x" }) do
    local ok, out, code = init(root, "--kube-proxy-server " .. t.q(bad))
    lu.assertFalse(ok)
    lu.assertEquals(code, 2, out)
    lu.assertStrContains(out, "--kube-proxy-server")
    lu.assertStrContains(out, bad)
    lu.assertEquals(t.tree_hash(root), before)
  end
end

function TestOnlineInit:test_phase_help_lists_every_online_phase()
  local ok, out = t.kboot("init phase --help")
  lu.assertTrue(ok, out)
  for _, n in ipairs({ "wait-control-plane", "upload-config/kubeadm", "upload-config/kubelet", "mark-control-plane",
                       "kubelet-finalize/enable-client-cert-rotation", "addon/coredns", "addon/kube-proxy" }) do
    lu.assertStrContains(out, n)
  end
  lu.assertNotStrContains(out, "a later kboot release")
end

function TestOnlineInit:test_online_phase_without_admin_conf_says_so()
  local root = t.tmpdir()
  local ok, out, code = t.kboot(("init phase mark-control-plane --root %s --node-name n1 --apiserver-advertise-address 127.0.0.1"):format(t.q(root)))
  lu.assertFalse(ok)
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "error execution phase mark-control-plane: cannot read /etc/kubernetes/admin.conf")
  lu.assertStrContains(out, "run the kubeconfig phase first")
end

function TestOnlineInit:test_dry_run_prints_objects_and_sends_nothing()
  local root = t.tmpdir()
  local port = t.free_port()
  local before = t.tree_hash(root)
  local ok, out = init(root, ("--dry-run --apiserver-bind-port %d --kube-proxy-server https://lb.example:7443 --upload-certs"):format(port))
  lu.assertTrue(ok, out)
  lu.assertEquals(t.tree_hash(root), before)
  for _, s in ipairs({ "kind: ClusterRoleBinding", "name: kubeadm:cluster-admins", "name: kubeadm-config",
                       "ClusterConfiguration: |", "name: kubelet-config", "name: kubeadm:nodes-kubeadm-config",
                       "node-role.kubernetes.io/control-plane", "kind: Deployment", "name: coredns",
                       "clusterIP: 10.96.0.10", "kind: DaemonSet", "image: registry.k8s.io/kube-proxy:v1.20.2",
                       "server: https://lb.example:7443", "image: registry.k8s.io/coredns:1.7.0",
                       "dry run: would wait for" }) do
    lu.assertStrContains(out, s)
  end
  -- nothing listened and nothing was needed: no connection error anywhere
  lu.assertNotStrContains(out, "Couldn't connect")
end

function TestOnlineInit:test_disabled_addons_are_skipped()
  local root, dir = t.tmpdir(), t.tmpdir()
  local f = config(dir, [[
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
dns:
  disabled: true
proxy:
  disabled: true
]])
  local ok, out = init(root, "--dry-run --config " .. t.q(f))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "[addon/coredns] skipped: dns.disabled is set")
  lu.assertStrContains(out, "[addon/kube-proxy] skipped: proxy.disabled is set")
  lu.assertNotStrContains(out, "kind: DaemonSet")
end

os.exit(lu.LuaUnit.run("-v"))

-- The node-local clean of each component and phase module (what this node's reset removes), on a
-- real sandbox root after a real offline init: it removes just its own files, empties the
-- directories kubeadm empties (keeping them), leaves symlinked targets alone, works from a ctx
-- without a configuration, and reports a failure naming the path under the root.
local lu = require("luaunit")
local t = require("testlib")
local fs = require("kboot.fs")

local CONFIG = [[
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.0.0.10
nodeRegistration:
  name: node-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
encryptionAlgorithm: ECDSA-P256
etcd:
  local:
    dataDir: /var/lib/etcd-custom
]]

local root, outside
local function ctx() return { fs = fs, log = require("kboot.log") } end -- no cluster, no node: defaults and disk

TestClean = {}
function TestClean:setUp()
  local dir = t.tmpdir()
  root, outside = dir .. "/root", dir .. "/outside"
  t.must(("mkdir -p %s %s"):format(t.q(root), t.q(outside)))
  t.write(dir .. "/kubeadm.yaml", CONFIG)
  local ok, out = t.kboot(("init --root %s --config %s --skip-phases=preflight --offline 2>&1"):format(
    t.q(root), t.q(dir .. "/kubeadm.yaml")))
  lu.assertTrue(ok, out)
  -- an etcd member's data, and a link inside it pointing outside the data dir
  t.must(("mkdir -p %s/var/lib/etcd-custom/member/snap && echo x > %s/var/lib/etcd-custom/member/snap/db"):format(t.q(root), t.q(root)))
  t.write(outside .. "/keep", "precious")
  t.must(("ln -s %s %s/var/lib/etcd-custom/link"):format(t.q(outside), t.q(root)))
  assert(fs.set_root(root))
end
function TestClean:tearDown() fs.set_root("/"); t.cleanup() end

local function exists(p) return t.sh("test -e " .. t.q(root .. p) .. " -o -L " .. t.q(root .. p)) end

function TestClean:test_etcd_empties_the_data_dir_named_in_its_manifest()
  local etcd = require("kboot.components.etcd")
  lu.assertEquals(etcd.data_dir(ctx()), "/var/lib/etcd-custom")
  lu.assertTrue(etcd.clean(ctx()))
  lu.assertTrue(exists("/var/lib/etcd-custom")) -- kept, as kubeadm does
  lu.assertEquals(t.must("ls -A " .. t.q(root .. "/var/lib/etcd-custom")), "")
  lu.assertFalse(exists("/etc/kubernetes/manifests/etcd.yaml"))
  lu.assertEquals(t.read(outside .. "/keep"), "precious") -- the link went, not its target
  -- the other manifests are not etcd's to remove
  lu.assertTrue(exists("/etc/kubernetes/manifests/kube-apiserver.yaml"))
  -- again: nothing left to do is no error
  lu.assertTrue(etcd.clean(ctx()))
  lu.assertEquals(etcd.data_dir(ctx()), etcd.DEFAULT_DATA_DIR) -- no manifest, no config
end

function TestClean:test_static_pods_certs_kubeconfigs_kubelet()
  for _, m in ipairs({ "kube_apiserver", "kube_controller_manager", "kube_scheduler" }) do
    lu.assertTrue(require("kboot.components." .. m).clean(ctx()))
  end
  lu.assertEquals(t.must("ls -A " .. t.q(root .. "/etc/kubernetes/manifests")), "etcd.yaml\n")
  lu.assertTrue(require("kboot.certs").clean(ctx()))
  lu.assertTrue(exists("/etc/kubernetes/pki"))
  lu.assertEquals(t.must("ls -A " .. t.q(root .. "/etc/kubernetes/pki")), "")
  lu.assertTrue(require("kboot.kubeconfigs").clean(ctx()))
  for _, f in ipairs({ "admin.conf", "super-admin.conf", "kubelet.conf", "controller-manager.conf", "scheduler.conf" }) do
    lu.assertFalse(exists("/etc/kubernetes/" .. f), f)
  end
  lu.assertTrue(require("kboot.components.kubelet").clean(ctx()))
  lu.assertFalse(exists("/var/lib/kubelet/config.yaml"))
  lu.assertFalse(exists("/var/lib/kubelet/kubeadm-flags.env"))
end

function TestClean:test_a_symlinked_dir_is_not_followed()
  -- the certificates dir replaced by a link to a directory outside the root
  t.must(("mkdir -p %s/pki && echo k > %s/pki/ca.key && rm -rf %s/etc/kubernetes/pki && ln -s %s/pki %s/etc/kubernetes/pki"):format(
    t.q(outside), t.q(outside), t.q(root), t.q(outside), t.q(root)))
  local ok, err = require("kboot.certs").clean(ctx())
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "not emptying " .. root .. "/etc/kubernetes/pki: it is a symlink (to " .. outside .. "/pki)")
  lu.assertEquals(t.read(outside .. "/pki/ca.key"), "k\n")
end

function TestClean:test_a_failure_names_the_path_under_the_root()
  -- a directory where a file is expected cannot be removed as a file
  t.must(("rm -f %s/etc/kubernetes/scheduler.conf && mkdir -p %s/etc/kubernetes/scheduler.conf/x"):format(t.q(root), t.q(root)))
  local ok, err = require("kboot.kubeconfigs").clean(ctx())
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "cannot remove " .. root .. "/etc/kubernetes/scheduler.conf")
end

os.exit(lu.LuaUnit.run("-v"))

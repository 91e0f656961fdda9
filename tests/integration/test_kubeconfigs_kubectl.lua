-- The kubeconfig phases: the five files loaded by a real peer (`kubectl config view --raw`),
-- their servers, users, modes, and embedded client certificates checked with openssl (chain to
-- the CA, CN, O, client auth); reuse when matching, a report when not, external CA mode.
local lu = require("luaunit")
local t = require("testlib")
local fixture = require("ctx_fixture")
local certs = require("kboot.certs")
local kubeconfigs = require("kboot.kubeconfigs")
local crypto = require("kboot.crypto")
local cjson = require("cjson")
local fs = require("kboot.fs")

local quiet = { info = function() end, warn = function() end, debug = function() end, error = function() end }

local function new_ctx(root, o)
  o = o or {}
  o.root = root
  o.cluster = o.cluster or {}
  o.cluster.encryptionAlgorithm = o.cluster.encryptionAlgorithm or "ECDSA-P256"
  local c = fixture.new(o)
  c.log = quiet
  -- the CA and the kubeconfig phases only: no keys for the other certificates in the batch
  c.phase_enabled = function(name) return name == "certs/ca" or name:match("^kubeconfig/") ~= nil end
  return c
end

local function view(file)
  return cjson.decode(t.must(("kubectl config view --raw -o json --kubeconfig %s"):format(t.q(file))))
end

local function phase_error(f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, "expected a failure")
  return err.msg
end

TestKubeconfigs = {}
function TestKubeconfigs:setUp()
  self.root = t.tmpdir()
end
function TestKubeconfigs:tearDown() fs.set_root("/"); t.cleanup() end

function TestKubeconfigs:test_five_files_as_kubeadm()
  local root = self.root
  local ctx = new_ctx(root, { cluster = { controlPlaneEndpoint = "lb.example.com", encryptionAlgorithm = "RSA-2048" } })
  certs.ensure(ctx, "ca")
  kubeconfigs.run_all(ctx)
  local want = {
    ["admin.conf"] = { "kubernetes-admin", "O=kubeadm:cluster-admins, CN=kubernetes-admin", "https://lb.example.com:6443" },
    ["super-admin.conf"] = { "kubernetes-super-admin", "O=system:masters, CN=kubernetes-super-admin", "https://lb.example.com:6443" },
    ["kubelet.conf"] = { "system:node:node-1", "O=system:nodes, CN=system:node:node-1", "https://lb.example.com:6443" },
    ["controller-manager.conf"] = { "system:kube-controller-manager", "CN=system:kube-controller-manager", "https://10.0.0.10:6443" },
    ["scheduler.conf"] = { "system:kube-scheduler", "CN=system:kube-scheduler", "https://10.0.0.10:6443" },
  }
  local ca = root .. "/etc/kubernetes/pki/ca.crt"
  for file, w in pairs(want) do
    local path = root .. "/etc/kubernetes/" .. file
    lu.assertEquals(t.must(("stat -c %%a %s"):format(t.q(path))):match("%d+"), "600", file)
    local v = view(path)
    lu.assertEquals(v["current-context"], w[1] .. "@kubernetes", file)
    lu.assertEquals(#v.clusters, 1)
    lu.assertEquals(v.clusters[1].name, "kubernetes")
    lu.assertEquals(v.clusters[1].cluster.server, w[3], file)
    lu.assertEquals(crypto.unbase64(v.clusters[1].cluster["certificate-authority-data"]), t.read(ca))
    lu.assertEquals(v.contexts[1].context, { cluster = "kubernetes", user = w[1] })
    lu.assertEquals(v.users[1].name, w[1])
    local cert = root .. "/" .. file .. ".crt"
    local key = root .. "/" .. file .. ".key"
    t.write(cert, assert(crypto.unbase64(v.users[1].user["client-certificate-data"])))
    t.write(key, assert(crypto.unbase64(v.users[1].user["client-key-data"])))
    lu.assertStrContains(t.read(key), "-----BEGIN RSA PRIVATE KEY-----")
    lu.assertStrContains(t.must(("openssl verify -CAfile %s %s"):format(t.q(ca), t.q(cert))), ": OK")
    local subject = t.must(("openssl x509 -noout -subject -nameopt sep_comma_plus_space,sname -in %s"):format(t.q(cert)))
    lu.assertEquals(subject:match("subject=(.-)%s*$"), w[2], file)
    local ext = t.must(("openssl x509 -noout -ext extendedKeyUsage,keyUsage -in %s"):format(t.q(cert)))
    lu.assertStrContains(ext, "TLS Web Client Authentication", false, file)
    lu.assertStrContains(ext, "Digital Signature, Key Encipherment", false, file)
    lu.assertEquals(t.must(("openssl x509 -noout -modulus -in %s"):format(t.q(cert))),
                    t.must(("openssl rsa -noout -modulus -in %s"):format(t.q(key))))
  end
end

function TestKubeconfigs:test_ipv6_local_endpoint()
  local ctx = new_ctx(self.root, { init = { localAPIEndpoint = { advertiseAddress = "fd00::10", bindPort = 7443 } } })
  lu.assertEquals(kubeconfigs.local_endpoint(ctx), "https://[fd00::10]:7443")
  lu.assertEquals(kubeconfigs.control_plane_endpoint(ctx), "https://[fd00::10]:7443")
  ctx.cluster.controlPlaneEndpoint = "[fd00::1]:443"
  lu.assertEquals(kubeconfigs.control_plane_endpoint(ctx), "https://[fd00::1]:443")
end

function TestKubeconfigs:test_rerun_reuses_and_mismatch_is_reported()
  local ctx = new_ctx(self.root)
  certs.ensure(ctx, "ca")
  kubeconfigs.run_all(ctx)
  local before = t.tree_hash(self.root)
  kubeconfigs.run_all(new_ctx(self.root))
  lu.assertEquals(t.tree_hash(self.root), before)
  -- another endpoint: admin.conf no longer points where it should
  local msg = phase_error(kubeconfigs.ensure, new_ctx(self.root, { cluster = { controlPlaneEndpoint = "new.example.com:443" } }), "admin")
  lu.assertStrContains(msg, "/etc/kubernetes/admin.conf exists already but does not match")
  lu.assertStrContains(msg, "its server is https://10.0.0.10:6443, want https://new.example.com:443")
  -- another node name: kubelet.conf's client certificate names the old node
  msg = phase_error(kubeconfigs.ensure, new_ctx(self.root, { init = { nodeRegistration = { name = "node-2" } } }), "kubelet")
  lu.assertStrContains(msg, 'client CN is "system:node:node-1", want "system:node:node-2"')
  lu.assertEquals(t.tree_hash(self.root), before)
  -- a new CA (files removed and regenerated): every kubeconfig has the wrong CA
  os.remove(self.root .. "/etc/kubernetes/pki/ca.crt")
  os.remove(self.root .. "/etc/kubernetes/pki/ca.key")
  certs.ensure(new_ctx(self.root), "ca")
  before = t.tree_hash(self.root)
  msg = phase_error(kubeconfigs.ensure, new_ctx(self.root), "scheduler")
  lu.assertStrContains(msg, "it has a different CA certificate")
  lu.assertStrContains(msg, "not signed by the cluster CA")
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestKubeconfigs:test_garbage_file_is_reported()
  local ctx = new_ctx(self.root)
  certs.ensure(ctx, "ca")
  t.must("mkdir -p " .. t.q(self.root .. "/etc/kubernetes"))
  t.write(self.root .. "/etc/kubernetes/admin.conf", "this: is: not yaml: [")
  local before = t.tree_hash(self.root)
  local msg = phase_error(kubeconfigs.ensure, new_ctx(self.root), "admin")
  lu.assertStrContains(msg, "cannot be loaded")
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestKubeconfigs:test_needs_the_ca()
  local empty = t.tree_hash(self.root)
  local msg = phase_error(kubeconfigs.ensure, new_ctx(self.root), "admin")
  lu.assertStrContains(msg, "the CA files do not exist")
  lu.assertEquals(t.tree_hash(self.root), empty)
end

function TestKubeconfigs:test_external_ca_mode()
  local ctx = new_ctx(self.root)
  certs.ensure(ctx, "ca")
  kubeconfigs.ensure(ctx, "admin")
  os.remove(self.root .. "/etc/kubernetes/pki/ca.key")
  local before = t.tree_hash(self.root)
  kubeconfigs.ensure(new_ctx(self.root), "admin") -- provided and valid: used
  local msg = phase_error(kubeconfigs.ensure, new_ctx(self.root), "scheduler")
  lu.assertStrContains(msg, "external CA mode")
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestKubeconfigs:test_client_keys_come_from_the_certs_batch()
  local ctx = new_ctx(self.root)
  certs.ensure(ctx, "ca") -- pregenerates for certs and kubeconfigs in one batch
  local n = 0
  for id in pairs(ctx.keypool) do if id:match("^kubeconfig:") then n = n + 1 end end
  lu.assertEquals(n, 5)
  kubeconfigs.run_all(ctx)
  for id in pairs(ctx.keypool) do lu.assertNil(id:match("^kubeconfig:"), id) end
end

function TestKubeconfigs:test_phase_list()
  local names = {}
  for _, p in ipairs(kubeconfigs.phases()) do names[#names + 1] = p.name end
  lu.assertEquals(names, { "kubeconfig/admin", "kubeconfig/super-admin", "kubeconfig/kubelet",
                           "kubeconfig/controller-manager", "kubeconfig/scheduler" })
end

os.exit(lu.LuaUnit.run("-v"))

-- kboot.user_kubeconfig through its Lua API: the cluster as a node has it (admin.conf, the CA and
-- its key type), users with certificates and tokens, one key batch for many, the RBAC objects, and
-- their server-side apply against the API server double (tests/lib/fake_apiserver.py), idempotent.
-- The command and openssl's view: tests/integration/test_kubeconfig_user_cli.lua; the real API
-- server: tests/integration/test_e2e_kubeconfig_user.lua.
local lu = require("luaunit")
local t = require("testlib")
local pki = require("kboot.pki")
local fs = require("kboot.fs")
local kubeconfig = require("kboot.kubeconfig")
local uk = require("kboot.user_kubeconfig")

local API = require("fake_api").start()

local ROOT, CA, CA_KEY
local NO_HOST = setmetatable({}, { __index = function(_, k)
  if k == "default_address_err" then return "no route (test)" end
end })

-- a node's /etc/kubernetes: the CA (alg), admin.conf naming server and cluster (unless no_admin)
local function node(o)
  o = o or {}
  ROOT = t.tmpdir()
  assert(fs.set_root(ROOT))
  CA_KEY = pki.generate_key(o.alg or "ECDSA-P256")
  local now = os.time()
  CA = assert(pki.self_signed_ca(CA_KEY, { cn = "kubernetes", dns = { "kubernetes" }, not_before = now - 300,
                                           not_after = now + 10 * 365 * 86400 }))
  assert(fs.write("/etc/kubernetes/pki/ca.crt", CA:pem(), "0644", { mkdir = true }))
  if not o.external then assert(fs.write("/etc/kubernetes/pki/ca.key", CA_KEY:pem("traditional"), "0600")) end
  if not o.no_admin then
    local admin_key = pki.generate_key("ECDSA-P256")
    local admin = assert(pki.sign({ cn = "kubernetes-admin", o = { "kubeadm:cluster-admins" }, ext_key_usages = { "client auth" } },
                                  admin_key, CA, CA_KEY))
    assert(kubeconfig.write(uk.ADMIN_CONF, kubeconfig.build{ cluster_name = "prod", server = o.server or API.url,
      ca_pem = CA:pem(), cert_pem = admin:pem(), key_pem = admin_key:pem("traditional") }))
  end
end

local function raises(msg, f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, "expected an error")
  lu.assertStrContains(tostring(err), msg)
end

TestUserKubeconfig = {}
function TestUserKubeconfig:setUp() API:reset() end
function TestUserKubeconfig:tearDown() fs.set_root(nil); t.cleanup() end

function TestUserKubeconfig:test_cluster_from_the_node()
  node{ alg = "ECDSA-P384", server = "https://10.0.0.1:6443" }
  local c = assert(uk.cluster{ host = NO_HOST })
  lu.assertEquals(c.server, "https://10.0.0.1:6443")
  lu.assertEquals(c.cluster_name, "prod")
  lu.assertEquals(c.algorithm, "ECDSA-P384") -- the CA key's type, without a config
  lu.assertEquals(c.cert_dir, "/etc/kubernetes/pki")
  lu.assertStrContains(c.source, "admin.conf")
  lu.assertTrue(c.ca == CA)
  -- --server wins; the name still comes from admin.conf
  c = assert(uk.cluster{ server = "https://lb.example:443", host = NO_HOST })
  lu.assertEquals(c.server, "https://lb.example:443")
  lu.assertEquals(c.cluster_name, "prod")
end

function TestUserKubeconfig:test_cluster_without_admin_conf_is_kubeadm_default()
  node{ no_admin = true }
  local c = assert(uk.cluster{ host = { default_address = "192.0.2.7" } })
  lu.assertEquals(c.server, "https://192.0.2.7:6443")
  lu.assertEquals(c.cluster_name, "kubernetes")
  local n, err = uk.cluster{ host = NO_HOST }
  lu.assertNil(n)
  lu.assertStrContains(tostring(err), "no --config, no /etc/kubernetes/admin.conf and no default-route address (no route (test)): give --server or --config")
end

function TestUserKubeconfig:test_cluster_from_a_config()
  node{}
  local cfg = ROOT .. "/kubeadm.yaml"
  t.write(cfg, table.concat({
    "apiVersion: kubeadm.k8s.io/v1beta4", "kind: InitConfiguration",
    "localAPIEndpoint: {advertiseAddress: 10.1.2.3, bindPort: 7443}", "nodeRegistration: {name: n}", "---",
    "apiVersion: kubeadm.k8s.io/v1beta4", "kind: ClusterConfiguration", "clusterName: blue", "" }, "\n"))
  local c = assert(uk.cluster{ config = cfg, host = NO_HOST })
  lu.assertEquals(c.server, "https://10.1.2.3:7443")
  lu.assertEquals(c.cluster_name, "blue")
  lu.assertEquals(c.algorithm, "RSA-2048") -- kubeadm's default encryptionAlgorithm, whatever the CA is
  t.write(cfg, table.concat({ "apiVersion: kubeadm.k8s.io/v1beta4", "kind: ClusterConfiguration",
    "controlPlaneEndpoint: vip.example", "encryptionAlgorithm: ECDSA-P256", "" }, "\n"))
  c = assert(uk.cluster{ config = cfg, host = { default_address = "10.9.9.9", hostname = "h" } })
  lu.assertEquals(c.server, "https://vip.example:6443") -- controlPlaneEndpoint with the bind port
  lu.assertEquals(c.algorithm, "ECDSA-P256")
  t.write(cfg, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nbogus: 1\n")
  local n, err = uk.cluster{ config = cfg, host = NO_HOST }
  lu.assertNil(n)
  lu.assertTrue(err.config)
  lu.assertStrContains(tostring(err), 'invalid configuration ' .. cfg .. ': ClusterConfiguration.bogus: unknown field "bogus"')
end

function TestUserKubeconfig:test_no_ca_and_external_ca()
  ROOT = t.tmpdir()
  assert(fs.set_root(ROOT))
  local n, err = uk.cluster{ server = "https://127.0.0.1:6443", host = NO_HOST }
  lu.assertNil(n)
  lu.assertStrContains(tostring(err), "no cluster CA certificate /etc/kubernetes/pki/ca.crt (" .. ROOT .. "/etc/kubernetes/pki/ca.crt)")
  node{ external = true }
  n, err = uk.cluster{ host = NO_HOST }
  lu.assertNil(n)
  lu.assertStrContains(tostring(err), "no CA key /etc/kubernetes/pki/ca.key (" .. ROOT .. "/etc/kubernetes/pki/ca.key) (external CA)")
  -- a token user needs no CA key
  local c = assert(uk.cluster{ host = NO_HOST, need_key = false })
  local kc = assert(uk.user(c, { name = "bot", token = "abcdef.0123456789abcdef" }))
  lu.assertEquals(kc.users[1].user.token, "abcdef.0123456789abcdef")
  local _, uerr = uk.user(c, { name = "alice" })
  lu.assertStrContains(tostring(uerr), "external CA")
end

function TestUserKubeconfig:test_user_certificate()
  node{}
  local c = assert(uk.cluster{ host = NO_HOST })
  local now = os.time()
  local kc, cert = uk.user(c, { name = "alice", orgs = { "team-a", "dev" }, validity = 7200, now = now })
  lu.assertEquals(kc["current-context"], "alice@prod")
  lu.assertEquals(kc.users[1].name, "alice")
  local cur = assert(kubeconfig.current(kc))
  lu.assertEquals(cur.server, API.url)
  local info = cert:info()
  lu.assertEquals(info.subject.cn, "alice")
  table.sort(info.subject.o)
  lu.assertEquals(info.subject.o, { "dev", "team-a" })
  lu.assertEquals(info.ext_key_usages, { "client auth" })
  lu.assertFalse(info.is_ca)
  lu.assertEquals(info.not_after, now + 7200)
  lu.assertEquals(info.not_before, now - 300)
  assert(cert:verify(CA))
  local key = assert(pki.load_key(cur.key_pem))
  lu.assertTrue(key:matches(cert))
  lu.assertEquals(key:algorithm(), "ECDSA-P256")
  lu.assertStrContains(cur.key_pem, "BEGIN EC PRIVATE KEY") -- SEC1, as kubeadm writes it
  -- the API checks its arguments
  raises("user.name", uk.user, c, { orgs = {} })
  raises("validity", uk.user, c, { name = "x", validity = 0 })
end

function TestUserKubeconfig:test_many_users_one_batch()
  node{}
  local c = assert(uk.cluster{ host = NO_HOST })
  local list = {}
  for i = 1, 20 do list[i] = { name = "u" .. i, orgs = { "g" .. (i % 3) } } end
  list[7] = { name = "tok", token = "t0k3n" }
  local out = assert(uk.users(c, list))
  lu.assertEquals(#out, 20)
  local pins = {}
  for i, kc in ipairs(out) do
    local cur = assert(kubeconfig.current(kc))
    lu.assertEquals(cur.user, list[i].name)
    if i == 7 then
      lu.assertEquals(cur.token, "t0k3n")
      lu.assertNil(cur.cert_pem)
    else
      local cert = assert(pki.load_cert(cur.cert_pem))
      assert(cert:verify(CA))
      lu.assertEquals(cert:info().subject.o, list[i].orgs)
      lu.assertTrue(pki.load_key(cur.key_pem):matches(cert))
      lu.assertNil(pins[cert:spki_pin()]) -- every user has a key of its own
      pins[cert:spki_pin()] = true
    end
  end
end

function TestUserKubeconfig:test_bindings_shape()
  local rb = uk.bindings{ user = "alice", role = "pod-reader", namespace = "team-a" }
  lu.assertEquals(#rb, 1)
  lu.assertEquals(rb[1].kind, "RoleBinding")
  lu.assertEquals(rb[1].metadata.name, "kboot:user:alice:role:pod-reader")
  lu.assertEquals(rb[1].metadata.namespace, "team-a")
  lu.assertEquals(rb[1].roleRef, { apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = "pod-reader" })
  lu.assertEquals(rb[1].subjects, { { apiGroup = "rbac.authorization.k8s.io", kind = "User", name = "alice" } })
  local g = uk.bindings{ user = "alice", groups = { "team-a", "ops" }, cluster_role = "view" }
  lu.assertEquals(#g, 2)
  lu.assertEquals(g[1].kind, "ClusterRoleBinding")
  lu.assertNil(g[1].metadata.namespace)
  lu.assertEquals(g[2].metadata.name, "kboot:group:ops:clusterrole:view")
  lu.assertEquals(g[2].subjects[1].kind, "Group")
  local n = uk.bindings{ user = "bob", cluster_role = "edit", namespace = "dev" }
  lu.assertEquals(n[1].kind, "RoleBinding")
  lu.assertEquals(n[1].roleRef.kind, "ClusterRole")
  raises("a role needs a namespace", uk.bindings, { user = "a", role = "r" })
  raises("exactly one of role, cluster_role", uk.bindings, { user = "a", role = "r", cluster_role = "c", namespace = "n" })
end

function TestUserKubeconfig:test_apply_is_idempotent()
  local k = API:kube()
  lu.assertEquals(assert(uk.ensure_namespace(k, "team-a")), "created")
  lu.assertEquals(assert(uk.ensure_namespace(k, "team-a")), "unchanged")
  local objs = uk.bindings{ user = "alice", groups = { "team-a" }, role = "pod-reader", namespace = "team-a" }
  local done = assert(uk.apply(k, objs))
  lu.assertEquals(done[1].action, "created")
  local live = assert(API:object("rbac.authorization.k8s.io/v1", "RoleBinding", "team-a", "kboot:group:team-a:role:pod-reader"))
  lu.assertEquals(live.subjects[1].name, "team-a")
  lu.assertEquals(live.metadata.labels["app.kubernetes.io/managed-by"], "kboot")
  API:forget()
  done = assert(uk.apply(k, objs))
  lu.assertEquals(done[1].action, "unchanged")
  lu.assertEquals(API:writes(), {}) -- a re-run writes nothing
  -- a changed live object is put back
  API:mutate{ method = "GET", path = "rolebindings/kboot", times = 1, patch = { metadata = { labels = { ["app.kubernetes.io/managed-by"] = "someone" } } } }
  done = assert(uk.apply(k, objs))
  API:unmutate()
  lu.assertEquals(done[1].action, "configured")
  -- a failure is nil, err naming the object
  API:fail{ method = "PATCH", path = "clusterrolebindings", status = 403, reason = "Forbidden", message = "no" }
  local r, err = uk.apply(k, uk.bindings{ user = "alice", cluster_role = "view" })
  API:heal()
  lu.assertNil(r)
  lu.assertStrContains(tostring(err), "ClusterRoleBinding")
  lu.assertStrContains(tostring(err), "403")
end

local rc = lu.LuaUnit.run("-v")
API:stop()
os.exit(rc)

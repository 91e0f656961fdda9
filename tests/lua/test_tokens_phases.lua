-- The bootstrap-token, upload-certs and show-join-command phases against an in-memory API store
-- that follows the kboot.kube contract (get/create/apply/delete, 404/409 errors). What is sent is
-- checked object by object; re-runs must send nothing new for what is already right. The same
-- phases against a real kube-apiserver: tests/integration/test_e2e_tokens.lua.
local lu = require("luaunit")
local t = require("testlib")
local json = require("cjson")
local crypto = require("kboot.crypto")
local tokens = require("kboot.tokens")
local fixture = require("ctx_fixture")
local kubeconfig = require("kboot.kubeconfig")
local fs = require("kboot.fs")

local function vector(name) return json.decode(t.read(t.vectors .. "/" .. name)) end
local function copy(v) return json.decode(json.encode(v)) end

local function fake_kube()
  local k = { store = {}, sent = {}, uid = 0 }
  local function key(kind, ns, name) return kind .. " " .. (ns or "") .. "/" .. name end
  local function okey(o) return key(o.kind, o.metadata.namespace, o.metadata.name) end
  function k:get(_, kind, ns, name)
    local o = self.store[key(kind, ns, name)]
    if o then return copy(o) end
    return nil, { status = 404, reason = "NotFound", msg = "get " .. kind .. " " .. name .. ": 404 NotFound" }
  end
  function k:create(o)
    self.sent[#self.sent + 1] = "create " .. okey(o)
    if self.store[okey(o)] then return nil, { status = 409, reason = "AlreadyExists", msg = "exists" } end
    o = copy(o)
    self.uid = self.uid + 1
    o.metadata.uid = "uid-" .. self.uid
    self.store[okey(o)] = o
    return copy(o)
  end
  function k:apply(o)
    self.sent[#self.sent + 1] = "apply " .. okey(o)
    if self.fail and okey(o):find(self.fail, 1, true) then
      return nil, { status = 403, reason = "Forbidden", msg = "apply " .. okey(o) .. ": 403 Forbidden: RBAC says no" }
    end
    local old = self.store[okey(o)]
    o = copy(o)
    self.uid = self.uid + 1
    o.metadata.uid = old and old.metadata.uid or ("uid-" .. self.uid)
    self.store[okey(o)] = o
    return copy(o)
  end
  function k:delete(_, kind, ns, name) self.store[key(kind, ns, name)] = nil; return true end
  return k
end

local ROOT
local CA = vector("kubeadm-certs.json").plaintext["ca.crt"]

local function new_ctx(o)
  o = o or {}
  local ctx = fixture.new{ root = ROOT, now = o.now or 1795600000 }
  ctx.kube = o.kube or fake_kube()
  ctx.token = "abcdef.0123456789abcdef"
  ctx.tokens = { { token = ctx.token, ttl = "24h0m0s", usages = { "signing", "authentication" }, groups = { tokens.DEFAULT_GROUP } } }
  ctx.upload_certs = o.upload_certs
  ctx.certificate_key = o.certificate_key
  return ctx
end

local function capture(f)
  local tmp = os.tmpname()
  local saved = io.output()
  local fh = assert(io.open(tmp, "w"))
  local real = io.stdout
  io.stdout = fh   -- the phases write their stdout text through io.stdout
  local ok, a, b = pcall(f)
  io.stdout = real
  fh:close()
  io.output(saved)
  local out = t.read(tmp)
  os.remove(tmp)
  if not ok then error(a, 0) end
  return out, a, b
end

local function setup_root()
  ROOT = t.tmpdir()
  assert(fs.set_root(ROOT))
  assert(kubeconfig.write("/etc/kubernetes/admin.conf",
    kubeconfig.build{ server = "https://127.0.0.1:6443", ca_pem = CA, cert_pem = CA, key_pem = "k" }))
  for _, n in ipairs({ "ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub", "etcd/ca.crt", "etcd/ca.key" }) do
    assert(fs.write("/etc/kubernetes/pki/" .. n, n == "ca.crt" and CA or ("content of " .. n), "0600", { mkdir = true }))
  end
end

TestBootstrapToken = {}
function TestBootstrapToken:setUp() setup_root() end
function TestBootstrapToken:tearDown() fs.set_root("/"); t.cleanup() end

function TestBootstrapToken:test_objects_and_rerun()
  local bt = require("kboot.online.bootstrap_token")
  local ctx = new_ctx()
  lu.assertTrue(bt.run(ctx))
  local k = ctx.kube
  lu.assertEquals(k.sent, {
    "apply Secret kube-system/bootstrap-token-abcdef",
    "apply ClusterRole /kubeadm:get-nodes",
    "apply ClusterRoleBinding /kubeadm:get-nodes",
    "apply ClusterRoleBinding /kubeadm:kubelet-bootstrap",
    "apply ClusterRoleBinding /kubeadm:node-autoapprove-bootstrap",
    "apply ClusterRoleBinding /kubeadm:node-autoapprove-certificate-rotation",
    "apply ConfigMap kube-public/cluster-info",
    "apply Role kube-public/kubeadm:bootstrap-signer-clusterinfo",
    "apply RoleBinding kube-public/kubeadm:bootstrap-signer-clusterinfo",
  })
  local s = k.store["Secret kube-system/bootstrap-token-abcdef"]
  lu.assertEquals(crypto.unbase64(s.data.expiration), tokens.rfc3339(1795600000 + 86400))
  lu.assertEquals(crypto.unbase64(s.data.description), bt.DEFAULT_DESCRIPTION) -- no config file: kubeadm's default
  local c2 = new_ctx()
  c2.opts = { config = "/some/kubeadm.yaml" }
  lu.assertTrue(bt.run(c2))
  lu.assertNil(c2.kube.store["Secret kube-system/bootstrap-token-abcdef"].data.description)
  lu.assertEquals(k.store["ConfigMap kube-public/cluster-info"].data.kubeconfig,
    tokens.cluster_info_kubeconfig("https://127.0.0.1:6443", CA))
  -- an hour later: the token is right, so its Secret is not sent again (its expiry stays)
  k.sent = {}
  ctx.now = ctx.now + 3600
  lu.assertTrue(bt.run(ctx))
  lu.assertNotStrContains(table.concat(k.sent, ","), "Secret")
  lu.assertEquals(crypto.unbase64(k.store["Secret kube-system/bootstrap-token-abcdef"].data.expiration),
    tokens.rfc3339(1795600000 + 86400))
  -- a changed description is sent
  k.sent = {}
  ctx.tokens[1].description = "new"
  lu.assertTrue(bt.run(ctx))
  lu.assertEquals(k.sent[1], "apply Secret kube-system/bootstrap-token-abcdef")
end

function TestBootstrapToken:test_errors()
  local bt = require("kboot.online.bootstrap_token")
  local ctx = new_ctx()
  ctx.kube.fail = "cluster-info"
  local ok, err = bt.run(ctx)
  lu.assertNil(ok)
  lu.assertStrContains(err.msg, "403 Forbidden")
  ctx = new_ctx()
  ctx.tokens[1].usages = { "signing", "bogus" }
  ok, err = bt.run(ctx)
  lu.assertNil(ok)
  lu.assertStrContains(err, "bootstrapTokens[0]: invalid bootstrap token usage string: bogus")
  lu.assertEquals(ctx.kube.sent, {})
  ctx = new_ctx()
  ctx.tokens[1].ttl = "forever"
  ok, err = bt.run(ctx)
  lu.assertNil(ok)
  lu.assertStrContains(err, 'invalid duration "forever"')
  assert(fs.remove("/etc/kubernetes/admin.conf"))
  ctx = new_ctx()
  ok, err = bt.run(ctx)
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "admin.conf")
end

function TestBootstrapToken:test_expires_field()
  local bt = require("kboot.online.bootstrap_token")
  local ctx = new_ctx()
  ctx.tokens[1].expires = "2030-01-01T00:00:00Z"
  lu.assertTrue(bt.run(ctx))
  lu.assertEquals(crypto.unbase64(ctx.kube.store["Secret kube-system/bootstrap-token-abcdef"].data.expiration), "2030-01-01T00:00:00Z")
end

TestUploadCerts = {}
function TestUploadCerts:setUp() setup_root() end
function TestUploadCerts:tearDown() fs.set_root("/"); t.cleanup() end

function TestUploadCerts:test_upload_open_rerun()
  local uc = require("kboot.online.upload_certs")
  local key = crypto.certificate_key()
  local ctx = new_ctx{ upload_certs = true, certificate_key = key }
  local out = capture(function() lu.assertTrue(uc.run(ctx)) end)
  lu.assertEquals(out, key .. "\n")
  local k = ctx.kube
  lu.assertEquals(#k.sent, 4)
  lu.assertStrMatches(k.sent[1], "create Secret kube%-system/bootstrap%-token%-[a-z0-9]+")
  lu.assertEquals(k.sent[2], "apply Secret kube-system/kubeadm-certs")
  local s = k.store["Secret kube-system/kubeadm-certs"]
  local files = assert(tokens.open_certs_secret(s, key))
  lu.assertEquals(files["ca.crt"], CA)
  lu.assertEquals(files["etcd-ca.key"], "content of etcd/ca.key")
  local owner = k.store["Secret kube-system/" .. s.metadata.ownerReferences[1].name]
  lu.assertEquals(s.metadata.ownerReferences[1].uid, owner.metadata.uid)
  local p = assert(tokens.from_secret(owner))
  lu.assertEquals(p.expires, ctx.now + 7200)
  lu.assertEquals(p.usages, {})
  -- same key, same files, owner alive: nothing but the RBAC is sent again
  k.sent = {}
  capture(function() lu.assertTrue(uc.run(ctx)) end)
  lu.assertEquals(k.sent, { "apply Role kube-system/kubeadm:kubeadm-certs", "apply RoleBinding kube-system/kubeadm:kubeadm-certs" })
  -- a new key (or an expired owner) uploads again
  k.sent = {}
  ctx.certificate_key = crypto.certificate_key()
  capture(function() lu.assertTrue(uc.run(ctx)) end)
  lu.assertEquals(#k.sent, 4)
  k.sent = {}
  ctx.now = ctx.now + 7201
  capture(function() lu.assertTrue(uc.run(ctx)) end)
  lu.assertEquals(#k.sent, 4)
end

function TestUploadCerts:test_skip_generate_missing()
  local uc = require("kboot.online.upload_certs")
  local ph = uc.phases()[1]
  lu.assertTrue(ph.skip(new_ctx()))
  lu.assertFalse(ph.skip(new_ctx{ upload_certs = true }))
  local ctx = new_ctx{ upload_certs = true }
  local out = capture(function() lu.assertTrue(uc.run(ctx)) end)
  lu.assertStrMatches(out, "%x+\n")
  lu.assertEquals(out, ctx.certificate_key .. "\n")
  assert(fs.remove("/etc/kubernetes/pki/ca.crt"))
  ctx = new_ctx{ upload_certs = true }
  local ok, err = uc.run(ctx)
  lu.assertNil(ok)
  lu.assertStrContains(err, "ca.crt is missing")
  lu.assertEquals(ctx.kube.sent, {})
end

-- With the real kboot.kube in dry run: the objects are recorded, nothing is sent (there is no server).
TestDryRun = {}
function TestDryRun:setUp() setup_root() end
function TestDryRun:tearDown() fs.set_root("/"); t.cleanup() end

function TestDryRun:test_recorded()
  local has, kube = pcall(require, "kboot.kube")
  if not has then lu.skip("kboot.kube is not in this build yet") end
  local k = assert(kube.new(nil, { dry_run = true }))
  local ctx = new_ctx{ kube = k, upload_certs = true }
  lu.assertTrue(require("kboot.online.bootstrap_token").run(ctx))
  capture(function() lu.assertTrue(require("kboot.online.upload_certs").run(ctx)) end)
  local names = {}
  for _, o in ipairs(k.recorded) do names[#names + 1] = o.kind .. " " .. o.metadata.name end
  lu.assertEquals(#names, 9 + 4)
  lu.assertEquals(names[1], "Secret bootstrap-token-abcdef")
  lu.assertEquals(names[7], "ConfigMap cluster-info")
  lu.assertStrMatches(names[10], "Secret bootstrap%-token%-[a-z0-9]+")
  lu.assertEquals(names[11], "Secret kubeadm-certs")
  lu.assertEquals(k:stats().requests, 0)
end

TestShowJoin = {}
function TestShowJoin:setUp() setup_root() end
function TestShowJoin:tearDown() fs.set_root("/"); t.cleanup() end

function TestShowJoin:test_text()
  local sj = require("kboot.online.show_join")
  local pin = assert(require("kboot.pki").spki_pin(CA))
  local text = assert(sj.text(new_ctx()))
  lu.assertStrContains(text, "kboot join 127.0.0.1:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash " .. pin .. "\n")
  lu.assertStrContains(text, "export KUBECONFIG=" .. fs.root() .. "/etc/kubernetes/admin.conf")
  lu.assertStrContains(text, "by copying certificate authorities")
  lu.assertNotStrContains(text, "--certificate-key")
  text = assert(sj.text(new_ctx{ upload_certs = true, certificate_key = ("ab"):rep(32) }))
  lu.assertStrContains(text, "--control-plane --certificate-key " .. ("ab"):rep(32))
  lu.assertStrContains(text, "deleted in two hours")
  local c = new_ctx{ upload_certs = true, certificate_key = ("ab"):rep(32) }
  c.skip_token_print, c.skip_certificate_key_print = true, true
  text = assert(sj.text(c))
  lu.assertNotStrContains(text, "abcdef.0123456789abcdef")
  lu.assertNotStrContains(text, ("ab"):rep(32))
  lu.assertStrContains(text, "--token <value withheld>")
  lu.assertStrContains(text, "--certificate-key <value withheld>")
end

os.exit(lu.LuaUnit.run("-v"))

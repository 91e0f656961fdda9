-- The bootstrap-token, upload-certs and show-join-command phases against the API server double
-- (tests/lib/fake_apiserver.py: real HTTP, server-set fields and defaults, 404/409 Status). What
-- reaches the server is checked object by object; re-runs must write nothing for what is already
-- right. The same phases against a real kube-apiserver: tests/integration/test_e2e_tokens.lua.
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

-- the API server double (tests/lib/fake_apiserver.py); every test starts with an empty cluster
local API = require("fake_api").start()
local function secret(name) return API:object("v1", "Secret", "kube-system", name) end

local ROOT
local CA = vector("kubeadm-certs.json").plaintext["ca.crt"]

local function new_ctx(o)
  o = o or {}
  local ctx = fixture.new{ root = ROOT, now = o.now or 1795600000 }
  ctx.kube = o.kube or API:kube()
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
  API:reset()
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
  lu.assertEquals(API:sent(), {
    "apply secrets kube-system/bootstrap-token-abcdef",
    "apply clusterroles /kubeadm:get-nodes",
    "apply clusterrolebindings /kubeadm:get-nodes",
    "apply clusterrolebindings /kubeadm:kubelet-bootstrap",
    "apply clusterrolebindings /kubeadm:node-autoapprove-bootstrap",
    "apply clusterrolebindings /kubeadm:node-autoapprove-certificate-rotation",
    "apply configmaps kube-public/cluster-info",
    "patch configmaps kube-public/cluster-info",
    "apply roles kube-public/kubeadm:bootstrap-signer-clusterinfo",
    "apply rolebindings kube-public/kubeadm:bootstrap-signer-clusterinfo",
  })
  local s = secret("bootstrap-token-abcdef")
  lu.assertEquals(s.type, "bootstrap.kubernetes.io/token")
  lu.assertEquals(crypto.unbase64(s.data.expiration), tokens.rfc3339(1795600000 + 86400))
  lu.assertEquals(crypto.unbase64(s.data.description), bt.DEFAULT_DESCRIPTION) -- no config file: kubeadm's default
  local ci = API:object("v1", "ConfigMap", "kube-public", "cluster-info")
  lu.assertEquals(ci.data.kubeconfig, tokens.cluster_info_kubeconfig("https://127.0.0.1:6443", CA))
  -- signed at once, as the bootstrap signer would (a join need not wait for the controller)
  lu.assertTrue(crypto.jws_verify(ci.data["jws-kubeconfig-abcdef"], ci.data.kubeconfig, "abcdef", "0123456789abcdef"))
  -- an hour later: everything is right, so nothing is written (the token's expiry stays)
  API:forget()
  ctx.now = ctx.now + 3600
  lu.assertTrue(bt.run(ctx))
  lu.assertEquals(API:sent(), {})
  lu.assertEquals(crypto.unbase64(secret("bootstrap-token-abcdef").data.expiration), tokens.rfc3339(1795600000 + 86400))
  -- a changed description is written, and only that
  ctx.tokens[1].description = "new"
  lu.assertTrue(bt.run(ctx))
  lu.assertEquals(API:sent(), { "apply secrets kube-system/bootstrap-token-abcdef" })
  lu.assertEquals(crypto.unbase64(secret("bootstrap-token-abcdef").data.description), "new")
  -- with a config file kboot gives no default description
  API:reset()
  local c2 = new_ctx()
  c2.opts = { config = "/some/kubeadm.yaml" }
  lu.assertTrue(bt.run(c2))
  lu.assertNil(secret("bootstrap-token-abcdef").data.description)
  -- a second token later: its signature is added, the first token's stays (a merge patch, which
  -- kboot's server-side apply of cluster-info never takes back)
  API:forget()
  c2.tokens = { { token = "ghijkl.0123456789abcdef", ttl = "1h", usages = { "signing" } } }
  lu.assertTrue(bt.run(c2))
  local data = API:object("v1", "ConfigMap", "kube-public", "cluster-info").data
  lu.assertNotNil(data["jws-kubeconfig-abcdef"])
  lu.assertTrue(crypto.jws_verify(data["jws-kubeconfig-ghijkl"], data.kubeconfig, "ghijkl", "0123456789abcdef"))
  local patches = 0
  for _, s in ipairs(API:sent()) do if s == "patch configmaps kube-public/cluster-info" then patches = patches + 1 end end
  lu.assertEquals(patches, 1)
end

function TestBootstrapToken:test_errors()
  local bt = require("kboot.online.bootstrap_token")
  local ctx = new_ctx()
  API:fail{ method = "PATCH", path = "cluster-info", status = 403, message = "RBAC says no" }
  local ok, err = bt.run(ctx)
  API:heal()
  lu.assertNil(ok)
  lu.assertTrue(require("kboot.error").is(err))
  lu.assertStrContains(err.msg, "apply ConfigMap kube-public/cluster-info: 403 Forbidden: RBAC says no")
  API:reset()
  ctx = new_ctx()
  ctx.tokens[1].usages = { "signing", "bogus" }
  ok, err = bt.run(ctx)
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "bootstrapTokens[0]: invalid bootstrap token usage string: bogus")
  lu.assertEquals(API:sent(), {})
  ctx = new_ctx()
  ctx.tokens[1].ttl = "forever"
  ok, err = bt.run(ctx)
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), 'invalid duration "forever"')
  lu.assertEquals(API:sent(), {})
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
  lu.assertEquals(crypto.unbase64(secret("bootstrap-token-abcdef").data.expiration), "2030-01-01T00:00:00Z")
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
  local sent = API:sent()
  lu.assertEquals(#sent, 4)
  lu.assertStrMatches(sent[1], "create secrets kube%-system/bootstrap%-token%-[a-z0-9]+")
  lu.assertEquals(sent[2], "apply secrets kube-system/kubeadm-certs")
  lu.assertEquals(sent[3], "apply roles kube-system/kubeadm:kubeadm-certs")
  local s = secret("kubeadm-certs")
  local files = assert(tokens.open_certs_secret(s, key))
  lu.assertEquals(files["ca.crt"], CA)
  lu.assertEquals(files["etcd-ca.key"], "content of etcd/ca.key")
  local owner = secret(s.metadata.ownerReferences[1].name)
  lu.assertEquals(s.metadata.ownerReferences[1].uid, owner.metadata.uid) -- the uid the server gave the owner
  local p = assert(tokens.from_secret(owner))
  lu.assertEquals(p.expires, ctx.now + 7200)
  lu.assertEquals(p.usages, {})
  -- same key, same files, owner alive: nothing is written
  API:forget()
  capture(function() lu.assertTrue(uc.run(ctx)) end)
  lu.assertEquals(API:sent(), {})
  -- a new key (or an expired owner) uploads again: a new owner and the Secret
  ctx.certificate_key = crypto.certificate_key()
  capture(function() lu.assertTrue(uc.run(ctx)) end)
  lu.assertEquals(#API:sent(), 2)
  API:forget()
  ctx.now = ctx.now + 7201
  capture(function() lu.assertTrue(uc.run(ctx)) end)
  lu.assertEquals(#API:sent(), 2)
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
  API:forget()
  ctx = new_ctx{ upload_certs = true }
  local ok, err = uc.run(ctx)
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), ROOT .. "/etc/kubernetes/pki/ca.crt is missing")
  lu.assertEquals(API:sent(), {})
end

-- With the real kboot.kube in dry run: the objects are recorded, nothing is sent (there is no server).
TestDryRun = {}
function TestDryRun:setUp() setup_root() end
function TestDryRun:tearDown() fs.set_root("/"); t.cleanup() end

function TestDryRun:test_recorded()
  local kube = require("kboot.kube")
  local k = assert(kube.new(nil, { dry_run = true }))
  local ctx = new_ctx{ kube = k, upload_certs = true }
  lu.assertTrue(require("kboot.online.bootstrap_token").run(ctx))
  capture(function() lu.assertTrue(require("kboot.online.upload_certs").run(ctx)) end)
  local names = {}
  for _, o in ipairs(k.recorded) do names[#names + 1] = o.kind .. " " .. o.metadata.name end
  lu.assertEquals(#names, 10 + 4)
  lu.assertEquals(names[1], "Secret bootstrap-token-abcdef")
  lu.assertEquals(names[7], "ConfigMap cluster-info")
  lu.assertEquals(names[8], "ConfigMap cluster-info") -- the signatures' patch
  lu.assertStrMatches(names[11], "Secret bootstrap%-token%-[a-z0-9]+")
  lu.assertEquals(names[12], "Secret kubeadm-certs")
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

-- The certs phases: generation, modes, reuse without regenerating keys, mismatch reports that
-- change nothing on disk, external CA mode, recovery of an interrupted run, sa key pair.
local lu = require("luaunit")
local t = require("testlib")
local fixture = require("ctx_fixture")
local certs = require("kboot.certs")
local tbl = require("kboot.certs_table")
local pki = require("kboot.pki")
local fs = require("kboot.fs")

local PKI = "/etc/kubernetes/pki"

-- ECDSA-P256 unless a test asks otherwise: RSA key generation would make the suite slow.
local function new_ctx(root, o)
  o = o or {}
  o.root = root
  o.cluster = o.cluster or {}
  o.cluster.encryptionAlgorithm = o.cluster.encryptionAlgorithm or "ECDSA-P256"
  local c = fixture.new(o)
  c.log = { info = function() end, warn = function() end, debug = function() end, error = function() end }
  -- only the certs phases run in these tests: no kubeconfig keys in the batch
  c.phase_enabled = function(name) return name:match("^certs/") ~= nil end
  return c
end

-- Run a function expected to fail with a phase error; returns its message.
local function phase_error(f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, "expected a failure")
  lu.assertEquals(type(err), "table")
  lu.assertEquals(err.exit, 1)
  return err.msg
end

local function mode(root, p)
  return tonumber(t.must(("stat -c %%a %s"):format(t.q(root .. p))):match("%d+"), 8)
end

TestCerts = {}
function TestCerts:setUp()
  self.root = t.tmpdir()
end
function TestCerts:tearDown() fs.set_root("/"); t.cleanup() end

function TestCerts:test_generates_every_file_with_kubeadm_modes()
  local ctx = new_ctx(self.root)
  certs.run_all(ctx)
  for _, e in ipairs(tbl.certs) do
    local crt, key = tbl.paths(e, ctx)
    lu.assertEquals(mode(self.root, crt), 420, crt)  -- 0644
    lu.assertEquals(mode(self.root, key), 384, key)  -- 0600
    local c = assert(pki.load_cert(t.read(self.root .. crt)))
    local k = assert(pki.load_key(t.read(self.root .. key)))
    lu.assertTrue(k:matches(c), e.name)
    lu.assertStrContains(t.read(self.root .. key), "BEGIN EC PRIVATE KEY") -- SEC1, as kubeadm
    if e.ca then
      local ca = assert(pki.load_cert(t.read(self.root .. PKI .. "/" .. tbl.get(e.ca).base .. ".crt")))
      lu.assertTrue(c:verify(ca), e.name)
    end
  end
  lu.assertEquals(mode(self.root, PKI .. "/sa.key"), 384)
  lu.assertEquals(mode(self.root, PKI .. "/sa.pub"), 384) -- kubeadm writes sa.pub with WriteKey: 0600
  local sk = assert(pki.load_key(t.read(self.root .. PKI .. "/sa.key")))
  local sp = assert(pki.load_key(t.read(self.root .. PKI .. "/sa.pub")))
  lu.assertTrue(sk:matches(sp))
  -- every key came from the one batch
  lu.assertNil(next(ctx.keypool))
end

function TestCerts:test_rerun_changes_nothing_and_regenerates_no_key()
  certs.run_all(new_ctx(self.root))
  local before = t.tree_hash(self.root)
  local ctx = new_ctx(self.root, { now = os.time() + 3600 })
  certs.run_all(ctx)
  lu.assertEquals(t.tree_hash(self.root), before)
  lu.assertNil(next(ctx.keypool)) -- nothing was needed, nothing generated
end

function TestCerts:test_mismatch_is_reported_and_nothing_changes()
  certs.run_all(new_ctx(self.root))
  local before = t.tree_hash(self.root)
  local ctx = new_ctx(self.root, { init = { localAPIEndpoint = { advertiseAddress = "10.0.0.99" } },
                                   cluster = { apiServer = { certSANs = { "api.example.com" } } } })
  local msg = phase_error(certs.ensure, ctx, "apiserver")
  lu.assertStrContains(msg, PKI .. "/apiserver.crt does not match its spec")
  lu.assertStrContains(msg, "missing IP SAN 10.0.0.99")
  lu.assertStrContains(msg, "missing DNS SAN api.example.com")
  lu.assertStrContains(msg, "Remove")
  -- the etcd server cert names the advertise address too
  msg = phase_error(certs.ensure, ctx, "etcd-server")
  lu.assertStrContains(msg, "missing IP SAN 10.0.0.99")
  -- the phase itself returns the failure (nil, kboot.error) instead of raising it
  local entry
  for _, p in ipairs(certs.phases()) do if p.name == "certs/apiserver" then entry = p end end
  local ok, err = entry.run(ctx)
  lu.assertNil(ok)
  lu.assertTrue(require("kboot.error").is(err))
  lu.assertStrContains(tostring(err), "missing IP SAN 10.0.0.99")
  lu.assertEquals(t.tree_hash(self.root), before)
  -- another node name changes the CN of etcd certs
  ctx = new_ctx(self.root, { init = { nodeRegistration = { name = "node-2" } } })
  msg = phase_error(certs.ensure, ctx, "etcd-peer")
  lu.assertStrContains(msg, 'CN is "node-1", want "node-2"')
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestCerts:test_leaf_from_another_ca_is_reported()
  certs.run_all(new_ctx(self.root))
  -- replace the front-proxy client by one signed by the kubernetes CA
  t.must(("cp %s %s"):format(t.q(self.root .. PKI .. "/apiserver-kubelet-client.crt"), t.q(self.root .. PKI .. "/front-proxy-client.crt")))
  t.must(("cp %s %s"):format(t.q(self.root .. PKI .. "/apiserver-kubelet-client.key"), t.q(self.root .. PKI .. "/front-proxy-client.key")))
  local before = t.tree_hash(self.root)
  local msg = phase_error(certs.ensure, new_ctx(self.root), "front-proxy-client")
  lu.assertStrContains(msg, 'does not verify against the "front-proxy-ca" CA')
  lu.assertStrContains(msg, 'CN is "kube-apiserver-kubelet-client", want "front-proxy-client"')
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestCerts:test_key_not_matching_cert_is_reported()
  certs.run_all(new_ctx(self.root))
  t.must(("cp %s %s"):format(t.q(self.root .. PKI .. "/front-proxy-client.key"), t.q(self.root .. PKI .. "/apiserver.key")))
  local before = t.tree_hash(self.root)
  local msg = phase_error(certs.ensure, new_ctx(self.root), "apiserver")
  lu.assertStrContains(msg, "apiserver.key does not belong to it")
  lu.assertEquals(t.tree_hash(self.root), before)
  -- a CA whose key is someone else's is refused too
  t.must(("cp %s %s"):format(t.q(self.root .. PKI .. "/front-proxy-ca.key"), t.q(self.root .. PKI .. "/ca.key")))
  before = t.tree_hash(self.root)
  msg = phase_error(certs.ensure, new_ctx(self.root), "ca")
  lu.assertStrContains(msg, PKI .. "/ca.key does not match " .. PKI .. "/ca.crt")
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestCerts:test_garbage_pem_is_a_clear_error()
  certs.run_all(new_ctx(self.root))
  t.write(self.root .. PKI .. "/apiserver.crt", "not a certificate\n")
  t.write(self.root .. PKI .. "/sa.key", "garbage")
  local before = t.tree_hash(self.root)
  local msg = phase_error(certs.ensure, new_ctx(self.root), "apiserver")
  lu.assertStrContains(msg, PKI .. "/apiserver.crt is not a valid PEM certificate")
  msg = phase_error(certs.ensure_sa, new_ctx(self.root))
  lu.assertStrContains(msg, PKI .. "/sa.key is not a valid PEM private key")
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestCerts:test_ca_is_never_replaced_and_leaves_follow()
  certs.run_all(new_ctx(self.root))
  local ca_before = t.read(self.root .. PKI .. "/ca.crt")
  -- a lost leaf is re-created from the existing CA, which stays as it is
  t.must(("rm %s %s"):format(t.q(self.root .. PKI .. "/apiserver.crt"), t.q(self.root .. PKI .. "/apiserver.key")))
  certs.run_all(new_ctx(self.root))
  lu.assertEquals(t.read(self.root .. PKI .. "/ca.crt"), ca_before)
  local ca = assert(pki.load_cert(ca_before))
  lu.assertTrue(assert(pki.load_cert(t.read(self.root .. PKI .. "/apiserver.crt"))):verify(ca))
end

function TestCerts:test_interrupted_run_keeps_the_orphan_key()
  certs.run_all(new_ctx(self.root))
  -- as if killed between writing apiserver.key and apiserver.crt
  local key_before = t.read(self.root .. PKI .. "/apiserver.key")
  os.remove(self.root .. PKI .. "/apiserver.crt")
  local ca_key_before = t.read(self.root .. PKI .. "/etcd/ca.key")
  os.remove(self.root .. PKI .. "/etcd/ca.crt")
  os.remove(self.root .. PKI .. "/etcd/server.crt")
  os.remove(self.root .. PKI .. "/etcd/server.key")
  certs.run_all(new_ctx(self.root))
  lu.assertEquals(t.read(self.root .. PKI .. "/apiserver.key"), key_before)
  lu.assertEquals(t.read(self.root .. PKI .. "/etcd/ca.key"), ca_key_before)
  local k = assert(pki.load_key(key_before))
  lu.assertTrue(k:matches(assert(pki.load_cert(t.read(self.root .. PKI .. "/apiserver.crt")))))
  -- the old etcd leaves still chain to the re-issued etcd CA (same key, same subject)
  local eca = assert(pki.load_cert(t.read(self.root .. PKI .. "/etcd/ca.crt")))
  lu.assertTrue(assert(pki.load_cert(t.read(self.root .. PKI .. "/etcd/peer.crt"))):verify(eca))
end

function TestCerts:test_cert_without_key_is_reported()
  certs.run_all(new_ctx(self.root))
  os.remove(self.root .. PKI .. "/apiserver-kubelet-client.key")
  local before = t.tree_hash(self.root)
  local msg = phase_error(certs.ensure, new_ctx(self.root), "apiserver-kubelet-client")
  lu.assertStrContains(msg, "its key " .. PKI .. "/apiserver-kubelet-client.key is missing")
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestCerts:test_external_ca_mode()
  certs.run_all(new_ctx(self.root))
  os.remove(self.root .. PKI .. "/ca.key")
  local before = t.tree_hash(self.root)
  -- everything provided: accepted, nothing written
  local ctx = new_ctx(self.root)
  certs.run_all(ctx)
  lu.assertEquals(t.tree_hash(self.root), before)
  lu.assertNil(ctx.cas.ca.key)
  -- a missing leaf cannot be signed: clear error, nothing created
  os.remove(self.root .. PKI .. "/apiserver.crt")
  os.remove(self.root .. PKI .. "/apiserver.key")
  before = t.tree_hash(self.root)
  local msg = phase_error(certs.ensure, new_ctx(self.root), "apiserver")
  lu.assertStrContains(msg, "external CA mode")
  lu.assertStrContains(msg, PKI .. "/apiserver.crt is missing")
  lu.assertEquals(t.tree_hash(self.root), before)
  -- the other CAs still have keys and work normally
  certs.ensure(new_ctx(self.root), "front-proxy-client")
end

function TestCerts:test_missing_ca_for_a_leaf()
  local empty = t.tree_hash(self.root)
  local msg = phase_error(certs.ensure, new_ctx(self.root), "apiserver")
  lu.assertStrContains(msg, 'the "ca" CA does not exist')
  lu.assertEquals(t.tree_hash(self.root), empty)
end

function TestCerts:test_not_a_ca()
  certs.run_all(new_ctx(self.root))
  t.must(("cp %s %s"):format(t.q(self.root .. PKI .. "/apiserver.crt"), t.q(self.root .. PKI .. "/front-proxy-ca.crt")))
  t.must(("cp %s %s"):format(t.q(self.root .. PKI .. "/apiserver.key"), t.q(self.root .. PKI .. "/front-proxy-ca.key")))
  local msg = phase_error(certs.ensure, new_ctx(self.root), "front-proxy-ca")
  lu.assertStrContains(msg, "front-proxy-ca.crt is not a CA")
end

function TestCerts:test_sa_pair()
  local ctx = new_ctx(self.root)
  certs.ensure(ctx, "ca")
  certs.ensure_sa(ctx)
  local key = t.read(self.root .. PKI .. "/sa.key")
  -- lost public half is re-derived from the private key
  os.remove(self.root .. PKI .. "/sa.pub")
  certs.ensure_sa(new_ctx(self.root))
  lu.assertEquals(t.read(self.root .. PKI .. "/sa.key"), key)
  lu.assertTrue(assert(pki.load_key(key)):matches(assert(pki.load_key(t.read(self.root .. PKI .. "/sa.pub")))))
  -- mismatching public half is reported
  local other = pki.generate_key("ECDSA-P256")
  t.write(self.root .. PKI .. "/sa.pub", other:public_pem())
  local before = t.tree_hash(self.root)
  lu.assertStrContains(phase_error(certs.ensure_sa, new_ctx(self.root)), "sa.pub does not match")
  lu.assertEquals(t.tree_hash(self.root), before)
  -- public half without private half
  os.remove(self.root .. PKI .. "/sa.key")
  before = t.tree_hash(self.root)
  lu.assertStrContains(phase_error(certs.ensure_sa, new_ctx(self.root)), "exists without its private key")
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestCerts:test_external_etcd_skips_etcd_certs()
  local ctx = new_ctx(self.root, { external_etcd = { endpoints = { "https://10.0.0.2:2379" } } })
  certs.run_all(ctx)
  lu.assertFalse(fs.exists(PKI .. "/etcd/ca.crt"))
  lu.assertFalse(fs.exists(PKI .. "/apiserver-etcd-client.crt"))
  lu.assertTrue(fs.exists(PKI .. "/apiserver.crt"))
end

function TestCerts:test_ecdsa_keys_written_as_sec1()
  local ctx = new_ctx(self.root, { cluster = { encryptionAlgorithm = "ECDSA-P256" } })
  certs.run_all(ctx)
  lu.assertStrContains(t.read(self.root .. PKI .. "/ca.key"), "BEGIN EC PRIVATE KEY")
  local c = assert(pki.load_cert(t.read(self.root .. PKI .. "/apiserver.crt")))
  lu.assertEquals(c:info().key_type, "EC")
  lu.assertEquals(c:info().curve, "P-256")
end

function TestCerts:test_dry_run_writes_nothing_but_records_everything()
  local empty = t.tree_hash(self.root)
  fs.set_root(self.root)
  fs.set_dry_run(true)
  local ok, err = pcall(function()
    local ctx = new_ctx(self.root)
    certs.run_all(ctx)
    -- later phases of the dry run see the files
    lu.assertTrue(fs.exists(PKI .. "/ca.crt"))
  end)
  local rec = fs.recorded()
  fs.set_dry_run(false)
  fs.reset_recorded()
  lu.assertTrue(ok, tostring(err))
  lu.assertEquals(t.tree_hash(self.root), empty)
  local written = {}
  for _, r in ipairs(rec) do if r.op == "write" then written[r.path] = r.mode end end
  lu.assertEquals(written[PKI .. "/ca.key"], 384)
  lu.assertEquals(written[PKI .. "/etcd/peer.crt"], 420)
  lu.assertEquals(written[PKI .. "/sa.pub"], 384)
end

function TestCerts:test_bad_configuration_fails_before_writing()
  local ctx = new_ctx(self.root)
  certs.ensure(ctx, "ca")
  local before = t.tree_hash(self.root)
  local msg = phase_error(certs.ensure, new_ctx(self.root, { init = { localAPIEndpoint = { advertiseAddress = "10.0.0" } } }), "apiserver")
  lu.assertStrContains(msg, 'localAPIEndpoint.advertiseAddress "10.0.0" is not a valid IP address')
  msg = phase_error(certs.ensure, new_ctx(self.root, { cluster = { networking = { serviceSubnet = "10.96.0.0/33" } } }), "apiserver")
  lu.assertStrContains(msg, "networking.serviceSubnet")
  msg = phase_error(certs.ensure, new_ctx(self.root, { cluster = { controlPlaneEndpoint = "a:b:c:" } }), "apiserver")
  lu.assertStrContains(msg, "controlPlaneEndpoint")
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestCerts:test_phase_list()
  local names = {}
  for _, p in ipairs(certs.phases()) do
    names[#names + 1] = p.name
    lu.assertEquals(type(p.run), "function")
    lu.assertEquals(type(p.help), "string")
  end
  lu.assertEquals(names, { "certs/ca", "certs/apiserver", "certs/apiserver-kubelet-client", "certs/front-proxy-ca",
    "certs/front-proxy-client", "certs/etcd-ca", "certs/etcd-server", "certs/etcd-peer",
    "certs/etcd-healthcheck-client", "certs/apiserver-etcd-client", "certs/sa" })
end

function TestCerts:test_keys_needed_follows_enabled_phases()
  local ctx = new_ctx(self.root)
  ctx.phase_enabled = nil
  lu.assertEquals(#certs.keys_needed(ctx), 11)
  ctx.phase_enabled = function(name) return name ~= "certs/sa" and not name:match("^certs/etcd") end
  lu.assertEquals(#certs.keys_needed(ctx), 6) -- not sa, etcd-ca, etcd-server, etcd-peer, etcd-healthcheck-client
end

os.exit(lu.LuaUnit.run("-v"))

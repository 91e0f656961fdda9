-- kboot.tls_bootstrap: the CSR the kubelet itself would send (name, subject, usages, signer), the
-- CSR states, and mint() against the API server double playing the approver and the signer.
local lu = require("luaunit")
local t = require("testlib")
local pki = require("kboot.pki")
local crypto = require("kboot.crypto")
local fixture = require("ctx_fixture")
local tls = require("kboot.tls_bootstrap")

local API = require("fake_api").start()

TestCSR = {}

function TestCSR:test_name_is_the_kubelets()
  -- the answer comes from the kubelet's own digestedName, run in Go (tests/data/join/README.md)
  local key = assert(pki.load_key(t.read(t.src .. "/tests/data/join/csr-name-key.pem")))
  local obj = tls.csr_object("worker-1", key)
  lu.assertEquals(obj.metadata.name, "node-csr-BYlrOHjTJ5d8n377Xz8ut7ryBDkkLxKf4GmV0iCR0ho")
end

function TestCSR:test_object_is_what_csrapproving_accepts()
  local key = pki.generate_key("ECDSA-P256")
  local obj = tls.csr_object("worker-1", key)
  lu.assertEquals(obj.apiVersion, "certificates.k8s.io/v1")
  lu.assertEquals(obj.spec.signerName, "kubernetes.io/kube-apiserver-client-kubelet")
  lu.assertEquals(obj.spec.usages, { "digital signature", "key encipherment", "client auth" })
  local csr = assert(pki.load_csr(crypto.unbase64(obj.spec.request)))
  local info = csr:info()
  lu.assertEquals(info.subject.cn, "system:node:worker-1")
  lu.assertEquals(info.subject.o, { "system:nodes" })
  lu.assertEquals(info.dns or {}, {})
  lu.assertEquals(info.ip or {}, {})
  lu.assertTrue(key:matches(csr))
  -- another key, another name
  lu.assertNotEquals(tls.csr_object("worker-1", pki.generate_key("ECDSA-P256")).metadata.name, obj.metadata.name)
end

function TestCSR:test_states()
  lu.assertEquals(tls.state({}), "pending")
  lu.assertEquals(tls.state({ status = { conditions = { { type = "Approved" } } } }), "approved")
  lu.assertEquals(tls.state({ status = { conditions = { { type = "Approved" } }, certificate = "eA==" } }), "issued")
  lu.assertEquals({ tls.state({ status = { conditions = { { type = "Denied", message = "no" } } } }) }, { "denied", "no" })
  lu.assertEquals({ tls.state({ status = { conditions = { { type = "Failed", reason = "SignerError" } } } }) }, { "failed", "SignerError" })
end

-- A root with a CA the "signer" below signs with.
local CA_KEY = pki.generate_key("ECDSA-P256")
local CA = assert(pki.self_signed_ca(CA_KEY, { cn = "kubernetes" }))

local function ctx(root)
  local c = fixture.new{ root = root, now = os.time() }
  c.log = { info = function() end, warn = function() end, error = function() end, debug = function() end }
  c.node.name = "worker-1"
  c.timeouts.tlsBootstrap = 2
  return c
end

-- approve and sign every pending CSR on the double, as csrapproving and csrsigning would
local function approve_and_sign()
  local k = API:kube()
  for _, csr in ipairs(assert(k:list("certificates.k8s.io/v1", "CertificateSigningRequest"))) do
    local req = assert(pki.load_csr(crypto.unbase64(csr.spec.request)))
    local cert = assert(pki.sign_csr(req, { usages = { "digital signature", "key encipherment" },
                                            ext_key_usages = { "client auth" } }, CA, CA_KEY))
    csr.status = { conditions = { { type = "Approved", status = "True", reason = "AutoApproved" } },
                   certificate = crypto.base64(cert:pem()) }
    assert(k:patch("certificates.k8s.io/v1", "CertificateSigningRequest", nil, csr.metadata.name,
                   { status = csr.status }, "merge"))
  end
end

TestMint = {}
function TestMint:setUp() API:reset() end
function TestMint:tearDown() require("kboot.fs").set_root("/"); t.cleanup() end

function TestMint:test_pending_then_issued_then_kept()
  local root = t.tmpdir()
  local c = ctx(root)
  local b = { kube = API:kube(), server = "https://10.0.0.1:6443", ca_pem = CA:pem() }
  -- nobody approves: a clear error naming the state and the likely cause, no kubelet.conf
  local ok, err = tls.mint(c, b)
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "is still pending after 2s: not approved")
  lu.assertStrContains(tostring(err), "kubeadm:node-autoapprove-bootstrap")
  lu.assertFalse(c.fs.exists(tls.KUBELET_CONF))
  -- approved and signed (before the next mint's first poll)
  API:reset()
  local done = false
  local real_wait = tls.wait
  tls.wait = function(k, name, timeout) if not done then approve_and_sign(); done = true end return real_wait(k, name, timeout) end
  ok, err = tls.mint(c, b)
  tls.wait = real_wait
  lu.assertTrue(ok, tostring(err))
  local link = t.must("readlink " .. t.q(root .. tls.CURRENT)):gsub("%s+$", "")
  lu.assertStrMatches(link, "kubelet%-client%-%d%d%d%d%-%d%d%-%d%d%-%d%d%-%d%d%-%d%d%.pem")
  lu.assertEquals(t.must("stat -c %a " .. t.q(root .. tls.PKI_DIR .. "/" .. link)):gsub("%s+$", ""), "600")
  local pem = t.read(root .. tls.CURRENT)
  local cert = assert(pki.load_cert(pem))
  lu.assertEquals(cert:info().subject.cn, "system:node:worker-1")
  lu.assertTrue(assert(pki.load_key(pem)):matches(cert))
  local kc = assert(require("kboot.kubeconfig").load(tls.KUBELET_CONF))
  lu.assertEquals(kc.users[1].user["client-certificate"], tls.CURRENT)
  lu.assertEquals(kc.clusters[1].cluster.server, "https://10.0.0.1:6443")
  -- a re-run finds it current: nothing sent, nothing written
  local before = t.tree_hash(root)
  API:forget()
  assert(tls.mint(c, b))
  lu.assertEquals(API:writes(), {})
  lu.assertEquals(t.tree_hash(root), before)
  -- another server (the admin moved to a VIP): minted again
  b.server = "https://10.0.0.100:6443"
  lu.assertFalse((tls.current(c, b.server, b.ca_pem)))
end

function TestMint:test_signed_soon_is_seen_soon()
  -- csrapproving and the signer answer within tens of ms: signed between the first and the
  -- second look, the wait must not sit out a long fixed interval
  local c = ctx(t.tmpdir())
  local time = require("kboot.time")
  local k, gets, t0 = API:kube(), 0, nil
  local real_get = k.get
  k.get = function(self, ...)
    gets = gets + 1
    if gets == 1 then t0 = time.now() end
    if gets == 2 then approve_and_sign() end
    return real_get(self, ...)
  end
  local ok, err = tls.mint(c, { kube = k, server = "https://10.0.0.1:6443", ca_pem = CA:pem() })
  lu.assertTrue(ok, tostring(err))
  lu.assertEquals(gets, 2)
  lu.assertTrue(time.now() - t0 < 0.25, ("took %.3fs"):format(time.now() - t0))
end

function TestMint:test_poll_backs_off_to_a_cap_and_keeps_the_timeout()
  -- on a virtual clock: 20 ms doubling to 1 s, and the same timeout and diagnosis as ever
  local time = require("kboot.time")
  local real_now, real_sleep = time.now, time.sleep
  local clock, sleeps = 1000, {}
  time.now = function() return clock end
  time.sleep = function(s) sleeps[#sleeps + 1] = s; clock = clock + s end
  local k = API:kube()
  local name = "node-csr-pending"
  assert(k:create{ apiVersion = "certificates.k8s.io/v1", kind = "CertificateSigningRequest",
                   metadata = { name = name }, spec = { signerName = tls.SIGNER } })
  local pem, err = tls.wait(k, name, 5)
  time.now, time.sleep = real_now, real_sleep
  lu.assertNil(pem)
  lu.assertStrContains(tostring(err), "CertificateSigningRequest node-csr-pending is still pending after 5s: not approved")
  lu.assertEquals(sleeps[1], 0.02)
  for i = 2, #sleeps do lu.assertTrue(sleeps[i] == math.min(sleeps[i - 1] * 2, 1), tostring(sleeps[i])) end
  lu.assertEquals(sleeps[#sleeps], 1)
  lu.assertTrue(clock - 1000 >= 5 and clock - 1000 < 6, tostring(clock - 1000))
end

function TestMint:test_denied_is_said()
  local c = ctx(t.tmpdir())
  local b = { kube = API:kube(), server = "https://10.0.0.1:6443", ca_pem = CA:pem() }
  local real_wait = tls.wait
  tls.wait = function(k, name, timeout)
    assert(k:patch("certificates.k8s.io/v1", "CertificateSigningRequest", nil, name,
      { status = { conditions = { { type = "Denied", status = "True", message = "not on my watch" } } } }, "merge"))
    return real_wait(k, name, timeout)
  end
  local ok, err = tls.mint(c, b)
  tls.wait = real_wait
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "was denied: not on my watch")
  lu.assertFalse(c.fs.exists(tls.KUBELET_CONF))
end

os.exit(lu.LuaUnit.run("-v"))

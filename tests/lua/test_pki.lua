-- kboot.pki: every function and its error cases, kboot against itself and against
-- certificates a real kubeadm wrote (see test_pki_openssl.lua for the openssl CLI checks).
local lu = require("luaunit")
local t = require("testlib")
local pki = require("kboot.pki")
local json = require("kboot.json")

local DAY = 24 * 3600

-- Keys are shared: RSA keygen is slow under valgrind.
local K = {}
local function key(alg)
  if not K[alg] then K[alg] = assert(pki.generate_key(alg)) end
  return K[alg]
end

local function ca(alg, spec)
  local k = key(alg or "ECDSA-P256")
  return assert(pki.self_signed_ca(k, spec or { cn = "test-ca" })), k
end

-- The message of a raised error (argument errors).
local function raises(f, ...)
  local ok, e = pcall(f, ...)
  lu.assertFalse(ok, "expected an error")
  return tostring(e)
end

-- nil, err with err an error object whose message contains want.
local function fails(want, v, e)
  lu.assertNil(v)
  lu.assertNotNil(e, "expected nil, err")
  lu.assertTrue(require("kboot.error").is(e), "err is a kboot.error")
  lu.assertStrContains(tostring(e), want)
  return e
end

local function contains(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

TestKeys = {}


local raises_arg = t.raises_arg

function TestKeys:test_each_algorithm()
  local want = {
    ["RSA-2048"] = { "RSA", 2048, nil }, ["ECDSA-P256"] = { "EC", 256, "P-256" },
    ["ECDSA-P384"] = { "EC", 384, "P-384" }, ["ED25519"] = { "ED25519", 256, nil },
  }
  for alg, w in pairs(want) do
    local k = key(alg)
    lu.assertEquals(k:type(), w[1], alg)
    lu.assertEquals(k:bits(), w[2], alg)
    lu.assertEquals(k:curve(), w[3], alg)
    lu.assertEquals(k:algorithm(), alg)
    lu.assertTrue(k:is_private())
    lu.assertStrMatches(k:spki_pin(), "sha256:%x+")
    lu.assertEquals(#k:spki_pin(), 71)
    lu.assertStrContains(tostring(k), "kboot.pki.key: " .. alg .. " private")
  end
end

function TestKeys:test_big_rsa_algorithms_by_load()
  -- Generating 3072/4096-bit keys is left to the integration test: too slow under valgrind.
  for _, bits in ipairs({ 3072, 4096 }) do
    local pem = t.must("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:" .. bits .. " 2>/dev/null")
    local k = assert(pki.load_key(pem))
    lu.assertEquals(k:algorithm(), "RSA-" .. bits)
    lu.assertEquals(k:bits(), bits)
  end
  local odd = assert(pki.load_key(t.must("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 2>/dev/null")))
  lu.assertNil(odd:algorithm())
  lu.assertEquals(odd:type(), "RSA")
  lu.assertEquals(tostring(odd), "kboot.pki.key: RSA-1024 private")
end

function TestKeys:test_default_algorithm_is_rsa2048()
  lu.assertEquals(pki.generate_batch(1)[1]:algorithm(), "RSA-2048")
end

function TestKeys:test_unknown_algorithm_is_argument_error()
  lu.assertStrContains(raises(pki.generate_key, "DSA-1024"), "unknown key algorithm 'DSA-1024'")
  lu.assertStrContains(raises(pki.generate_key, {}), "string expected")
  lu.assertStrContains(raises(pki.generate_batch, 2, "RSA-1024"), "unknown key algorithm 'RSA-1024'")
  lu.assertStrContains(raises(pki.generate_batch, { "ED25519", "nope" }), "generate_batch' ([2]: unknown key algorithm 'nope'")
  lu.assertStrContains(raises(pki.generate_batch, { "ED25519", 7 }), "[2]: string expected, got number")
  lu.assertStrContains(raises(pki.generate_batch, -1, "ED25519"), "count must be")
end

function TestKeys:test_batch_distinct_and_ordered()
  local ks = assert(pki.generate_batch(8, "ECDSA-P256"))
  lu.assertEquals(#ks, 8)
  local seen = {}
  for _, k in ipairs(ks) do
    lu.assertEquals(k:algorithm(), "ECDSA-P256")
    lu.assertNil(seen[k:spki_pin()], "duplicate key")
    seen[k:spki_pin()] = true
  end
  local mixed = assert(pki.generate_batch({ "ED25519", "ECDSA-P384", "RSA-2048", "ECDSA-P256", "ED25519" }))
  local got = {}
  for i, k in ipairs(mixed) do got[i] = k:algorithm() end
  lu.assertEquals(got, { "ED25519", "ECDSA-P384", "RSA-2048", "ECDSA-P256", "ED25519" })
  lu.assertEquals(pki.generate_batch(0, "ED25519"), {})
  lu.assertEquals(pki.generate_batch({}), {})
end

function TestKeys:test_pem_formats()
  local rsa, ec, ed = key("RSA-2048"), key("ECDSA-P256"), key("ED25519")
  lu.assertStrMatches(rsa:pem(), "^%-%-%-%-%-BEGIN PRIVATE KEY%-%-%-%-%-\n.*")
  lu.assertStrMatches(rsa:pem("pkcs8"), "^%-%-%-%-%-BEGIN PRIVATE KEY%-%-%-%-%-\n.*")
  lu.assertStrMatches(rsa:pem("traditional"), "^%-%-%-%-%-BEGIN RSA PRIVATE KEY%-%-%-%-%-\n.*")
  lu.assertStrMatches(ec:pem("traditional"), "^%-%-%-%-%-BEGIN EC PRIVATE KEY%-%-%-%-%-\n.*")
  lu.assertStrMatches(ed:pem(), "^%-%-%-%-%-BEGIN PRIVATE KEY%-%-%-%-%-\n.*")
  lu.assertStrContains(raises(ed.pem, ed, "traditional"), "use pkcs8")
  lu.assertStrContains(raises(rsa.pem, rsa, "pkcs1"), "invalid option 'pkcs1'")
  for _, k in ipairs({ rsa, ec, ed }) do
    lu.assertStrMatches(k:public_pem(), "^%-%-%-%-%-BEGIN PUBLIC KEY%-%-%-%-%-\n.*")
  end
end

function TestKeys:test_load_roundtrip_all_forms()
  for _, alg in ipairs({ "RSA-2048", "ECDSA-P256", "ECDSA-P384", "ED25519" }) do
    local k = key(alg)
    local forms = { k:pem(), k:public_pem() }
    if alg ~= "ED25519" then forms[#forms + 1] = k:pem("traditional") end
    for i, pem in ipairs(forms) do
      local l = assert(pki.load_key(pem))
      lu.assertTrue(l:matches(k), alg .. " form " .. i)
      lu.assertTrue(k:matches(l))
      lu.assertEquals(l:algorithm(), alg)
      lu.assertEquals(l:is_private(), i ~= 2)
      lu.assertEquals(l:spki_pin(), k:spki_pin())
    end
    -- the re-encoded private key is the same key material
    lu.assertEquals(assert(pki.load_key(k:pem())):pem(), k:pem())
  end
end

function TestKeys:test_load_key_skips_other_blocks()
  local c, k = ca()
  local l = assert(pki.load_key(c:pem() .. k:pem("traditional")))
  lu.assertTrue(l:is_private())
  lu.assertTrue(l:matches(k))
end

function TestKeys:test_public_key_has_no_private_pem()
  local pub = assert(pki.load_key(key("ECDSA-P256"):public_pem()))
  lu.assertFalse(pub:is_private())
  lu.assertStrContains(tostring(pub), "public")
  fails("no private part", pub:pem())
end

function TestKeys:test_matches()
  local a, b = key("ECDSA-P256"), key("ED25519")
  lu.assertFalse(a:matches(b))
  lu.assertFalse(a:matches(key("RSA-2048")))
  local c, ck = ca("ECDSA-P256")
  lu.assertTrue(ck:matches(c))
  lu.assertFalse(b:matches(c))
  lu.assertTrue(b:matches(pki.csr(b, { cn = "x" })))
  lu.assertStrContains(raises(a.matches, a, "pem"), "kboot.pki.key, kboot.pki.cert or kboot.pki.csr expected")
end

function TestKeys:test_load_key_errors()
  fails("no PEM data found", pki.load_key("garbage"))
  fails("no PEM data found", pki.load_key(""))
  local c = ca()
  fails("no key in PEM data (first block is CERTIFICATE)", pki.load_key(c:pem()))
  fails("encrypted private keys are not supported",
        pki.load_key(pki.pem_encode("ENCRYPTED PRIVATE KEY", "\48\3\2\1\0")))
  fails("cannot parse PRIVATE KEY", pki.load_key(pki.pem_encode("PRIVATE KEY", "not der")))
  fails("cannot parse PUBLIC KEY", pki.load_key(pki.pem_encode("PUBLIC KEY", "\48\0")))
  local pem = key("ECDSA-P256"):pem()
  fails("malformed", pki.load_key(pem:sub(1, 60) .. "!!!!" .. pem:sub(65)))
  lu.assertStrContains(raises(pki.load_key, nil), "string expected")
end

function TestKeys:test_close_and_gc()
  local ref
  do
    local k <close> = assert(pki.generate_key("ED25519"))
    ref = k
    lu.assertEquals(k:type(), "ED25519")
  end
  lu.assertStrContains(raises(ref.type, ref), "key is closed")
  lu.assertEquals(tostring(ref), "kboot.pki.key (closed)")
  getmetatable(ref).__gc(ref) -- a second free is harmless
  local cref
  do
    local c <close> = ca()
    cref = c
  end
  lu.assertStrContains(raises(cref.pem, cref), "certificate is closed")
  lu.assertEquals(getmetatable(cref).__name, "kboot.pki.cert")
  lu.assertEquals(getmetatable(ref).__name, "kboot.pki.key")
  lu.assertEquals(getmetatable(pki.csr(key("ED25519"), {})).__name, "kboot.pki.csr")
  collectgarbage()
end

TestCerts = {}

function TestCerts:test_self_signed_ca_defaults()
  local before = os.time()
  local c, k = ca("ECDSA-P256", { cn = "kubernetes", dns = { "kubernetes" } })
  local i = c:info()
  lu.assertEquals(i.subject, { cn = "kubernetes", o = {} })
  lu.assertEquals(i.issuer, i.subject)
  lu.assertEquals(i.subject_string, "CN=kubernetes")
  lu.assertTrue(i.is_ca)
  lu.assertNil(i.path_len)
  lu.assertEquals(i.usages, { "digital signature", "key encipherment", "cert sign" })
  lu.assertEquals(i.ext_key_usages, {})
  lu.assertEquals(i.dns, { "kubernetes" })
  lu.assertEquals(i.ip, {})
  lu.assertStrMatches(i.ski, "%x+")
  lu.assertEquals(#i.ski, 40)
  lu.assertNil(i.aki) -- Go leaves it out on self-signed certificates
  lu.assertEquals(i.version, 3)
  lu.assertStrMatches(i.serial, "%x+")
  lu.assertTrue(#i.serial <= 32 and #i.serial % 2 == 0) -- whole bytes
  lu.assertTrue(i.not_before >= before and i.not_before <= os.time())
  lu.assertEquals(i.not_after - i.not_before, 365 * DAY)
  lu.assertEquals(i.key_type, "EC")
  lu.assertEquals(i.key_bits, 256)
  lu.assertEquals(i.curve, "P-256")
  lu.assertEquals(i.signature_algorithm, "ecdsa-with-SHA256")
  lu.assertEquals(i.spki_pin, k:spki_pin())
  lu.assertTrue(c:verify(c))
  lu.assertTrue(c:issued_by(c))
  lu.assertStrContains(tostring(c), "kboot.pki.cert: CN=kubernetes")
end

function TestCerts:test_random_serials_differ()
  local a, b = ca(), ca()
  lu.assertNotEquals(a:info().serial, b:info().serial)
end

function TestCerts:test_leaf_fields()
  local c, ck = ca("ECDSA-P256")
  local lk = key("RSA-2048")
  local nb, na = os.time() - 300, os.time() + 30 * DAY
  local leaf = assert(pki.sign({
    cn = "kube-apiserver", o = { "system:masters", "kubeadm:cluster-admins" },
    dns = { "kubernetes", "kubernetes.default.svc.cluster.local" },
    ip = { "10.96.0.1", "::1", "2001:db8::0:1" },
    usages = { "digital signature", "key encipherment" },
    ext_key_usages = { "server auth", "client auth" },
    not_before = nb, not_after = na, serial = 4660,
  }, lk, c, ck))
  local i = leaf:info()
  lu.assertEquals(i.subject.cn, "kube-apiserver")
  table.sort(i.subject.o)
  lu.assertEquals(i.subject.o, { "kubeadm:cluster-admins", "system:masters" })
  lu.assertEquals(i.issuer, { cn = "test-ca", o = {} })
  lu.assertEquals(i.dns, { "kubernetes", "kubernetes.default.svc.cluster.local" })
  lu.assertEquals(i.ip, { "10.96.0.1", "::1", "2001:db8::1" })
  lu.assertEquals(i.usages, { "digital signature", "key encipherment" })
  lu.assertEquals(i.ext_key_usages, { "server auth", "client auth" })
  lu.assertFalse(i.is_ca)
  lu.assertNil(i.ski)
  lu.assertEquals(i.aki, c:info().ski)
  lu.assertEquals(i.not_before, nb)
  lu.assertEquals(i.not_after, na)
  lu.assertEquals(i.serial, "1234")
  lu.assertEquals(i.key_type, "RSA")
  lu.assertEquals(i.key_bits, 2048)
  lu.assertNil(i.curve)
  lu.assertEquals(i.signature_algorithm, "ecdsa-with-SHA256") -- the CA's key decides
  lu.assertTrue(leaf:verify(c))
  lu.assertTrue(leaf:issued_by(c))
  lu.assertFalse(c:issued_by(leaf))
  local left = leaf:expires_in()
  lu.assertTrue(left <= 30 * DAY and left > 30 * DAY - 60)
  lu.assertTrue(lk:matches(leaf))
  lu.assertFalse(ck:matches(leaf))
end

function TestCerts:test_subject_string_types_like_go()
  -- PrintableString when every character allows it, else UTF8String (Go's asn1 rule).
  local c, ck = ca()
  local leaf = assert(pki.sign({ cn = "system:node:a_b", o = { "system:nodes" } }, key("ED25519"), c, ck))
  local der = leaf:der()
  lu.assertStrContains(der, "\19\12system:nodes")     -- 0x13 PrintableString
  lu.assertStrContains(der, "\12\15system:node:a_b")  -- 0x0c UTF8String ('_' is not printable)
  -- O comes before CN
  lu.assertTrue(der:find("system:nodes", 1, true) < der:find("system:node:a_b", 1, true))
end

function TestCerts:test_signature_algorithm_follows_ca_key()
  local want = { ["RSA-2048"] = "sha256WithRSAEncryption", ["ECDSA-P256"] = "ecdsa-with-SHA256",
                 ["ECDSA-P384"] = "ecdsa-with-SHA384", ["ED25519"] = "ED25519" }
  for alg, sig in pairs(want) do
    local c, ck = ca(alg)
    lu.assertEquals(c:info().signature_algorithm, sig, alg)
    local leaf = assert(pki.sign({ cn = "x" }, key("ECDSA-P256"), c, ck))
    lu.assertEquals(leaf:info().signature_algorithm, sig, alg)
    lu.assertTrue(leaf:verify(c))
  end
end

function TestCerts:test_defaults_and_empty_lists()
  local c, ck = ca()
  local leaf = assert(pki.sign({ cn = "x" }, key("ED25519"), c, ck))
  local i = leaf:info()
  lu.assertEquals(i.usages, { "digital signature", "key encipherment" })
  lu.assertEquals(i.dns, {})
  lu.assertNotStrContains(leaf:der(), "\6\3\85\29\17") -- no subjectAltName OID 2.5.29.17
  lu.assertEquals(i.not_after - i.not_before, 365 * DAY)
  local none = assert(pki.sign({ cn = "x", usages = {} }, key("ED25519"), c, ck))
  lu.assertEquals(none:info().usages, {})
  lu.assertNotStrContains(none:der(), "\6\3\85\29\15") -- no keyUsage OID 2.5.29.15
  local nocn = assert(pki.sign(nil, key("ED25519"), c, ck))
  lu.assertEquals(nocn:info().subject, { o = {} })
end

function TestCerts:test_serial_forms()
  local c, ck = ca()
  local s1 = assert(pki.sign({ serial = "00ABcdef" }, key("ED25519"), c, ck))
  lu.assertEquals(s1:info().serial, "abcdef")
  lu.assertEquals(assert(pki.sign({ serial = "abc" }, key("ED25519"), c, ck)):info().serial, "0abc")
  local big = string.rep("f", 40)
  lu.assertEquals(assert(pki.sign({ serial = big }, key("ED25519"), c, ck)):info().serial, big)
  lu.assertStrContains(raises(pki.sign, { serial = 0 }, key("ED25519"), c, ck), "spec.serial")
  lu.assertStrContains(raises(pki.sign, { serial = -5 }, key("ED25519"), c, ck), "spec.serial")
  lu.assertStrContains(raises(pki.sign, { serial = "xyz" }, key("ED25519"), c, ck), "spec.serial")
  lu.assertStrContains(raises(pki.sign, { serial = big .. "f" }, key("ED25519"), c, ck), "spec.serial")
  lu.assertStrContains(raises(pki.sign, { serial = true }, key("ED25519"), c, ck), "spec.serial: integer or hex string expected, got boolean")
end

function TestCerts:test_intermediate_chain_and_path_len()
  local root, rk = ca("ECDSA-P384", { cn = "root" })
  local ik = key("ECDSA-P256")
  local inter = assert(pki.sign({ cn = "intermediate", is_ca = true, path_len = 0 }, ik, root, rk))
  local ii = inter:info()
  lu.assertTrue(ii.is_ca)
  lu.assertEquals(ii.path_len, 0)
  lu.assertEquals(ii.usages, { "digital signature", "key encipherment", "cert sign" })
  lu.assertEquals(ii.aki, root:info().ski)
  lu.assertNotNil(ii.ski)
  local leaf = assert(pki.sign({ cn = "leaf" }, key("ED25519"), inter, ik))
  lu.assertTrue(leaf:verify({ root, inter }))
  lu.assertTrue(leaf:verify(inter)) -- without a root, the given CA is the anchor
  lu.assertTrue(leaf:verify({ inter, root })) -- order does not matter
  raises_arg(2, "option 'time': number expected, got string",
    function() return leaf:verify(root, { time = "now" }) end)
  fails("unable to get local issuer certificate", leaf:verify(root))
  lu.assertFalse(leaf:issued_by(root))
  lu.assertTrue(leaf:issued_by(inter))
  -- path_len 0: the intermediate may not sign another CA that then signs
  local sub = assert(pki.sign({ cn = "sub", is_ca = true }, key("ED25519"), inter, ik))
  local leaf2 = assert(pki.sign({ cn = "leaf2" }, key("ECDSA-P256"), sub, key("ED25519")))
  fails("path length constraint exceeded", leaf2:verify({ root, inter, sub }))
end

function TestCerts:test_verify_errors_and_time()
  local c, ck = ca()
  local other = ca("ED25519", { cn = "other-ca" })
  local leaf = assert(pki.sign({ cn = "x", not_before = os.time() - 10, not_after = os.time() + DAY },
                               key("ECDSA-P256"), c, ck))
  local e = fails("certificate verify failed: unable to get local issuer certificate", leaf:verify(other))
  lu.assertEquals(e.op, "verify")
  lu.assertTrue(leaf:verify({ other, c }))
  fails("certificate has expired", leaf:verify(c, { time = os.time() + 2 * DAY }))
  fails("certificate is not yet valid", leaf:verify(c, { time = os.time() - DAY }))
  lu.assertTrue(leaf:verify(c, { time = os.time() + 3600 }))
  lu.assertStrContains(raises(leaf.verify, leaf, {}), "empty CA list")
  lu.assertStrContains(raises(leaf.verify, leaf, { "x" }), "CA list[1]: kboot.pki.cert expected")
  lu.assertStrContains(raises(leaf.verify, leaf, c, { time = "soon" }), "time")
  local old = assert(pki.sign({ cn = "old", not_before = os.time() - 2 * DAY, not_after = os.time() - DAY },
                              key("ECDSA-P256"), c, ck))
  lu.assertTrue(old:expires_in() < -DAY + 60)
  fails("certificate has expired", old:verify(c))
end

function TestCerts:test_ca_checks()
  local c, ck = ca("ECDSA-P256")
  local wrong = key("ED25519")
  local e = fails("CA key does not match CA certificate", pki.sign({ cn = "x" }, wrong, c, wrong))
  lu.assertEquals(e.op, "sign")
  fails("CA key has no private part", pki.sign({ cn = "x" }, wrong, c, c:public_key()))
  local leaf = assert(pki.sign({ cn = "leaf" }, wrong, c, ck))
  fails("not a CA", pki.sign({ cn = "x" }, key("ECDSA-P256"), leaf, wrong))
  local nosign = assert(pki.sign({ cn = "ca2", is_ca = true, usages = { "digital signature" } }, wrong, c, ck))
  fails("does not allow cert sign", pki.sign({ cn = "x" }, key("ECDSA-P256"), nosign, wrong))
  fails("key has no private part", pki.self_signed_ca(c:public_key(), { cn = "x" }))
  lu.assertStrContains(raises(pki.self_signed_ca, ck, { is_ca = false }), "always a CA")
end

function TestCerts:test_public_subject_key()
  local c, ck = ca()
  local pub = assert(pki.load_key(key("RSA-2048"):public_pem()))
  local leaf = assert(pki.sign({ cn = "from-public" }, pub, c, ck))
  lu.assertTrue(key("RSA-2048"):matches(leaf))
  local pk = leaf:public_key()
  lu.assertFalse(pk:is_private())
  lu.assertTrue(pk:matches(pub))
end

function TestCerts:test_spec_argument_errors()
  local c, ck = ca()
  local k = key("ED25519")
  local cases = {
    { "x", "table expected, got string" },
    { { cn = 5 }, "spec.cn: string expected, got number" },
    { { cn = "a\0b" }, "spec.cn: contains a NUL byte" },
    { { o = "system:masters" }, "spec.o: table of strings expected, got string" },
    { { dns = { "a", 1 } }, "spec.dns[2]: string expected, got number" },
    { { dns = { "bad name" } }, "spec.dns[1]: invalid character in 'bad name'" },
    { { dns = { "" } }, "spec.dns[1]: empty name" },
    { { ip = { "10.0.0.1", "999.1.1.1" } }, "spec.ip[2]: invalid IP address '999.1.1.1'" },
    { { ip = { "kubernetes" } }, "spec.ip[1]: invalid IP address 'kubernetes'" },
    { { usages = { "digital signature", "sign" } }, "spec.usages[2]: unknown key usage 'sign'" },
    { { usages = "cert sign" }, "spec.usages: table of strings expected" },
    { { ext_key_usages = { "server auth", "serverAuth" } }, "spec.ext_key_usages[2]: unknown extended key usage 'serverAuth'" },
    { { is_ca = "yes" }, "spec.is_ca: boolean expected, got string" },
    { { path_len = 1 }, "spec.path_len: only allowed with is_ca" },
    { { is_ca = true, path_len = -1 }, "spec.path_len: want 0..1000" },
    { { not_before = 1.5 }, "spec.not_before: integer expected, got float" },
    { { not_after = "tomorrow" }, "spec.not_after: integer expected, got string" },
    { { not_before = os.time(), not_after = os.time() - 1 }, "spec.not_after: must be later than not_before" },
    { { not_after = 253402300800 }, "spec.not_after: later than 9999-12-31T23:59:59Z, the last X.509 time" },
    { { not_before = -62167219201 }, "spec.not_before: outside what an X.509 time can hold (years 0 to 9999)" },
  }
  for _, case in ipairs(cases) do
    local msg = raises(pki.sign, case[1], k, c, ck)
    lu.assertStrContains(msg, case[2])
    lu.assertStrContains(msg, "bad argument #1 to")
  end
  lu.assertStrContains(raises(pki.self_signed_ca, ck, { ip = { "x" } }), "spec.ip[1]")
  lu.assertStrContains(raises(pki.self_signed_ca, ck, { cn = "ca", not_after = 253402300800 }), "spec.not_after: later than")
  -- the last X.509 time itself is still a certificate that reads back as asked
  local last = assert(pki.self_signed_ca(ck, { cn = "ca", not_after = 253402300799 }))
  lu.assertEquals(last:info().not_after, 253402300799)
  lu.assertStrContains(raises(pki.sign, {}, "key", c, ck), "kboot.pki.key expected")
  lu.assertStrContains(raises(pki.sign, {}, k, ck, ck), "kboot.pki.cert expected")
end

function TestCerts:test_all_usage_names_roundtrip()
  local c, ck = ca()
  local us = { "digital signature", "content commitment", "key encipherment", "data encipherment",
               "key agreement", "cert sign", "crl sign", "encipher only", "decipher only" }
  local eks = { "server auth", "client auth", "code signing", "email protection", "timestamping", "ocsp signing" }
  local leaf = assert(pki.sign({ cn = "all", usages = us, ext_key_usages = eks }, key("ED25519"), c, ck))
  lu.assertEquals(leaf:info().usages, us)
  lu.assertEquals(leaf:info().ext_key_usages, eks)
end

function TestCerts:test_pem_der_load_and_eq()
  local c = ca()
  local pem = c:pem()
  lu.assertStrMatches(pem, "^%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-\n.*%-%-%-%-%-END CERTIFICATE%-%-%-%-%-\n$")
  local l = assert(pki.load_cert(pem))
  lu.assertTrue(l == c)
  lu.assertEquals(l:der(), c:der())
  lu.assertEquals(pki.pem_decode(pem)[1].der, c:der())
  lu.assertFalse(l == ca())
end

function TestCerts:test_load_certs_bundle()
  local a, b = ca(nil, { cn = "a" }), ca(nil, { cn = "b" })
  local bundle = a:pem() .. key("ED25519"):pem() .. "\n" .. b:pem()
  local all = assert(pki.load_certs(bundle))
  lu.assertEquals(#all, 2)
  lu.assertEquals(all[1]:info().subject.cn, "a")
  lu.assertEquals(all[2]:info().subject.cn, "b")
  lu.assertEquals(assert(pki.load_cert(bundle)):info().subject.cn, "a")
  lu.assertEquals(assert(pki.load_cert(key("ED25519"):pem() .. b:pem())):info().subject.cn, "b")
end

function TestCerts:test_load_cert_errors()
  fails("no PEM data found", pki.load_cert("hello"))
  fails("no CERTIFICATE in PEM data (first block is PRIVATE KEY)", pki.load_cert(key("ED25519"):pem()))
  fails("certificate 1: invalid DER", pki.load_cert(pki.pem_encode("CERTIFICATE", "junk")))
  local der = ca():der()
  fails("invalid DER", pki.load_cert(pki.pem_encode("CERTIFICATE", der .. "x")))
  fails("no PEM data found", pki.load_certs(""))
  fails("malformed", pki.load_certs(ca():pem() .. "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n"))
end

function TestCerts:test_spki_pin_everywhere()
  local c, k = ca()
  local pin = k:spki_pin()
  lu.assertEquals(c:spki_pin(), pin)
  lu.assertEquals(c:info().spki_pin, pin)
  lu.assertEquals(pki.spki_pin(c), pin)
  lu.assertEquals(pki.spki_pin(k), pin)
  lu.assertEquals(pki.spki_pin(c:pem()), pin)
  lu.assertEquals(pki.spki_pin(k:public_pem()), pin)
  lu.assertEquals(c:public_key():spki_pin(), pin)
  fails("no PEM data found", pki.spki_pin("nope"))
end

function TestCerts:test_real_kubeadm_ca()
  local f = assert(io.open(t.vectors .. "/kubeadm-certs.json"))
  local v = json.decode(f:read("a"))
  f:close()
  local c = assert(pki.load_cert(v.plaintext["ca.crt"]))
  local i = c:info()
  lu.assertEquals(i.subject.cn, "kubernetes")
  lu.assertTrue(i.is_ca)
  lu.assertEquals(i.usages, { "digital signature", "key encipherment", "cert sign" })
  lu.assertEquals(i.serial, "0")
  lu.assertEquals(i.not_after - i.not_before, 3650 * DAY) -- 10 x 365 days, as Go adds them
  lu.assertEquals(i.signature_algorithm, "sha256WithRSAEncryption")
  lu.assertTrue(c:verify(c, { time = i.not_before + 60 }))
  local sa = assert(pki.load_key(v.plaintext["sa.pub"]))
  lu.assertFalse(sa:is_private())
  lu.assertEquals(sa:algorithm(), "RSA-2048")
end

TestCsr = {}

function TestCsr:test_create_and_inspect()
  local k = key("ECDSA-P256")
  local r = assert(pki.csr(k, { cn = "system:node:n1", o = { "system:nodes" }, dns = { "n1" }, ip = { "192.0.2.7" } }))
  local pem = r:pem()
  lu.assertStrMatches(pem, "^%-%-%-%-%-BEGIN CERTIFICATE REQUEST%-%-%-%-%-\n.*")
  local i = r:info()
  lu.assertEquals(i.subject, { cn = "system:node:n1", o = { "system:nodes" } })
  lu.assertEquals(i.subject_string, "CN=system:node:n1,O=system:nodes")
  lu.assertEquals(i.dns, { "n1" })
  lu.assertEquals(i.ip, { "192.0.2.7" })
  lu.assertEquals(i.key_type, "EC")
  lu.assertEquals(i.curve, "P-256")
  lu.assertEquals(i.spki_pin, k:spki_pin())
  lu.assertEquals(i.signature_algorithm, "ecdsa-with-SHA256")
  lu.assertTrue(k:matches(r:public_key()))
  lu.assertFalse(r:public_key():is_private())
  lu.assertStrContains(tostring(r), "kboot.pki.csr: CN=system:node:n1,O=system:nodes")
  local l = assert(pki.load_csr(pem))
  lu.assertEquals(l:info(), i)
  local bare = assert(pki.csr(key("ED25519"), { cn = "bare" }))
  lu.assertEquals(bare:info().dns, {})
  lu.assertEquals(bare:info().signature_algorithm, "ED25519")
end

function TestCsr:test_csr_errors()
  local k = key("ECDSA-P256")
  fails("key has no private part", pki.csr(assert(pki.load_key(k:public_pem())), { cn = "x" }))
  lu.assertStrContains(raises(pki.csr, k, { ip = { "1.2.3" } }), "spec.ip[1]: invalid IP address")
  lu.assertStrContains(raises(pki.csr, k, { o = "x" }), "spec.o: table of strings expected")
  fails("no PEM data found", pki.load_csr("junk"))
  fails("no CERTIFICATE REQUEST in PEM data (first block is CERTIFICATE)", pki.load_csr(ca():pem()))
  fails("invalid CSR DER", pki.load_csr(pki.pem_encode("CERTIFICATE REQUEST", "junk")))
end

function TestCsr:test_tampered_csr_is_rejected()
  local r = assert(pki.csr(key("RSA-2048"), { cn = "system:node:node1", o = { "system:nodes" } }))
  local der = pki.pem_decode(r:pem())[1].der
  local forged = der:gsub("node1", "node2")
  lu.assertNotEquals(forged, der)
  fails("CSR signature is invalid", pki.load_csr(pki.pem_encode("CERTIFICATE REQUEST", forged)))
  local badsig = der:sub(1, -2) .. string.char((der:byte(-1) + 1) % 256)
  local e = fails("CSR signature is invalid", pki.load_csr(pki.pem_encode("CERTIFICATE REQUEST", badsig)))
  lu.assertEquals(e.op, "load_csr")
end

function TestCsr:test_sign_csr()
  local c, ck = ca()
  local k = key("ED25519")
  local r = assert(pki.csr(k, { cn = "system:node:n1", o = { "system:nodes" }, dns = { "n1" }, ip = { "::1" } }))
  local cert = assert(pki.sign_csr(r, { usages = { "digital signature", "key encipherment" },
                                        ext_key_usages = { "client auth" } }, c, ck))
  local i = cert:info()
  lu.assertEquals(i.subject, { cn = "system:node:n1", o = { "system:nodes" } })
  lu.assertEquals(i.dns, { "n1" })
  lu.assertEquals(i.ip, { "::1" })
  lu.assertEquals(i.ext_key_usages, { "client auth" })
  lu.assertTrue(k:matches(cert))
  lu.assertTrue(cert:verify(c))
  -- the spec wins when it names a subject or SANs
  local o = assert(pki.sign_csr(r, { cn = "override", dns = { "other" } }, c, ck))
  lu.assertEquals(o:info().subject, { cn = "override", o = {} })
  lu.assertEquals(o:info().dns, { "other" })
  lu.assertEquals(o:info().ip, {})
  local o2 = assert(pki.sign_csr(r, nil, c, ck))
  lu.assertEquals(o2:info().dns, { "n1" })
  fails("CA key does not match CA certificate", pki.sign_csr(r, {}, c, k))
  lu.assertStrContains(raises(pki.sign_csr, "csr", {}, c, ck), "kboot.pki.csr expected")
end

TestPem = {}

function TestPem:test_decode_encode()
  local c, k = ca()
  local text = "junk before\n" .. c:pem() .. "between\n" .. k:public_pem() .. "after"
  local blocks = assert(pki.pem_decode(text))
  lu.assertEquals(#blocks, 2)
  lu.assertEquals(blocks[1].type, "CERTIFICATE")
  lu.assertEquals(blocks[1].der, c:der())
  lu.assertEquals(blocks[2].type, "PUBLIC KEY")
  lu.assertEquals(pki.pem_encode("CERTIFICATE", c:der()), c:pem())
  lu.assertEquals(pki.pem_encode("PUBLIC KEY", blocks[2].der), k:public_pem())
  local bin = ""
  for b = 0, 255 do bin = bin .. string.char(b) end
  lu.assertEquals(pki.pem_decode(pki.pem_encode("TEST DATA 1", bin))[1], { type = "TEST DATA 1", der = bin })
end

function TestPem:test_errors()
  fails("no PEM data found", pki.pem_decode("nothing here"))
  fails("no PEM data found", pki.pem_decode(""))
  local e = fails("PEM block 2 is malformed",
                  pki.pem_decode(ca():pem() .. "-----BEGIN X-----\n%%%%\n-----END X-----\n"))
  lu.assertEquals(e.op, "pem_decode")
  fails("PEM block 1 is malformed", pki.pem_decode("-----BEGIN X-----\nAAAA\n-----END Y-----\n"))
  lu.assertStrContains(raises(pki.pem_encode, "bad-type", "x"), "PEM type")
  lu.assertStrContains(raises(pki.pem_encode, "", "x"), "PEM type")
  lu.assertStrContains(raises(pki.pem_encode, "X"), "string expected")
end

os.exit(lu.LuaUnit.run("-v"))

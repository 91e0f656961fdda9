-- kboot.pki against the real openssl CLI, both ways: openssl reads and verifies what kboot
-- writes, and kboot reads and verifies what openssl writes.
local lu = require("luaunit")
local t = require("testlib")
local pki = require("kboot.pki")
local json = require("kboot.json")

local q = t.q
local DAY = 24 * 3600
local ALGS = { "RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384", "ED25519" }
local SIG = { ["RSA-2048"] = "sha256WithRSAEncryption", ["RSA-3072"] = "sha256WithRSAEncryption",
              ["RSA-4096"] = "sha256WithRSAEncryption", ["ECDSA-P256"] = "ecdsa-with-SHA256",
              ["ECDSA-P384"] = "ecdsa-with-SHA384", ["ED25519"] = "ED25519" }

-- One key per algorithm, made in one parallel batch.
local KEYS = {}
do
  local ks = assert(pki.generate_batch(ALGS))
  for i, alg in ipairs(ALGS) do KEYS[alg] = ks[i] end
end

local dir
local function file(name, data)
  local p = dir .. "/" .. name
  if data then t.write(p, data) end
  return p
end

local function openssl(args) return t.must("openssl " .. args) end

local function iso(ts) return os.date("!%Y-%m-%d %H:%M:%SZ", ts) end

local function fails(want, v, e)
  lu.assertNil(v)
  lu.assertStrContains(tostring(e), want)
end

TestOpensslReadsKboot = {}
function TestOpensslReadsKboot:setUp() dir = t.tmpdir() end
function TestOpensslReadsKboot:tearDown() t.cleanup() end

function TestOpensslReadsKboot:test_chain_and_text_for_every_key_type()
  local other = assert(pki.self_signed_ca(KEYS["ED25519"], { cn = "other-ca" }))
  file("other.pem", other:pem())
  for _, alg in ipairs(ALGS) do
    local k = KEYS[alg]
    local ca = assert(pki.self_signed_ca(k, { cn = "kubernetes", dns = { "kubernetes" } }))
    local nb, na = os.time() - 300, os.time() + 90 * DAY
    local leaf = assert(pki.sign({
      cn = "kube-apiserver", o = { "system:masters" },
      dns = { "kubernetes", "kubernetes.default.svc" }, ip = { "10.96.0.1", "fd00:10:96::1" },
      usages = { "digital signature", "key encipherment" },
      ext_key_usages = { "server auth", "client auth" }, not_before = nb, not_after = na,
    }, KEYS["ECDSA-P256"], ca, k))
    file("ca.pem", ca:pem())
    file("leaf.pem", leaf:pem())
    lu.assertStrContains(openssl("verify -CAfile " .. q(file("ca.pem")) .. " " .. q(file("leaf.pem"))), ": OK")
    local ok, out = t.sh("openssl verify -CAfile " .. q(file("other.pem")) .. " " .. q(file("leaf.pem")))
    lu.assertFalse(ok, alg .. ": verified against the wrong CA")
    lu.assertStrContains(out, "unable to get local issuer certificate")

    local text = openssl("x509 -noout -text -in " .. q(file("leaf.pem")))
    lu.assertStrContains(text, "Version: 3 (0x2)")
    lu.assertStrContains(text, "Subject: O = system:masters, CN = kube-apiserver")
    lu.assertStrContains(text, "Issuer: CN = kubernetes")
    lu.assertStrContains(text, "Signature Algorithm: " .. SIG[alg])
    lu.assertStrContains(text, "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment\n")
    lu.assertStrContains(text, "X509v3 Extended Key Usage: \n                TLS Web Server Authentication, TLS Web Client Authentication\n")
    lu.assertStrContains(text, "X509v3 Basic Constraints: critical\n                CA:FALSE\n")
    lu.assertStrContains(text, "DNS:kubernetes, DNS:kubernetes.default.svc, IP Address:10.96.0.1, IP Address:FD00:10:96:0:0:0:0:1")
    lu.assertStrContains(text, "X509v3 Authority Key Identifier:")
    lu.assertNotStrContains(text, "X509v3 Subject Key Identifier")
    local dates = openssl("x509 -noout -dates -dateopt iso_8601 -in " .. q(file("leaf.pem")))
    lu.assertStrContains(dates, "notBefore=" .. iso(nb))
    lu.assertStrContains(dates, "notAfter=" .. iso(na))

    local catext = openssl("x509 -noout -text -in " .. q(file("ca.pem")))
    lu.assertStrContains(catext, "X509v3 Basic Constraints: critical\n                CA:TRUE\n")
    lu.assertStrContains(catext, "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment, Certificate Sign\n")
    lu.assertStrContains(catext, "X509v3 Subject Key Identifier:")
    lu.assertStrContains(catext, "Signature Algorithm: " .. SIG[alg])
    -- the leaf's AKI is the CA's SKI, in openssl's own words
    local ski = catext:match("Subject Key Identifier: *\n *([%x:]+)")
    lu.assertStrContains(text, ski)
    lu.assertEquals(ski:gsub(":", ""):lower(), ca:info().ski)
  end
end

function TestOpensslReadsKboot:test_multiple_o_and_path_len()
  local k = KEYS["ECDSA-P256"]
  local root = assert(pki.self_signed_ca(k, { cn = "root", o = { "b-org", "a-org" } }))
  local inter = assert(pki.sign({ cn = "inter", is_ca = true, path_len = 0 }, KEYS["ED25519"], root, k))
  local leaf = assert(pki.sign({ cn = "leaf" }, KEYS["ECDSA-P384"], inter, KEYS["ED25519"]))
  file("root.pem", root:pem())
  file("inter.pem", inter:pem())
  file("leaf.pem", leaf:pem())
  -- Go puts every O in one multi-valued RDN; openssl shows it with '+'.
  lu.assertStrContains(openssl("x509 -noout -subject -in " .. q(file("root.pem"))), "O = a-org + O = b-org, CN = root")
  lu.assertStrContains(openssl("x509 -noout -text -in " .. q(file("inter.pem"))), "CA:TRUE, pathlen:0")
  lu.assertStrContains(openssl("verify -CAfile " .. q(file("root.pem")) .. " -untrusted " .. q(file("inter.pem")) ..
                               " " .. q(file("leaf.pem"))), ": OK")
end

function TestOpensslReadsKboot:test_key_pems()
  for _, alg in ipairs(ALGS) do
    local k = KEYS[alg]
    local pin = k:spki_pin():sub(8)
    file("k8.pem", k:pem())
    file("pub.pem", k:public_pem())
    -- openssl's view of the public key is the same SPKI kboot pins
    local der = "openssl pkey -in " .. q(file("k8.pem")) .. " -pubout -outform DER | openssl dgst -sha256 -r"
    lu.assertStrContains(t.must(der), pin)
    lu.assertStrContains(t.must("openssl pkey -pubin -in " .. q(file("pub.pem")) .. " -outform DER | openssl dgst -sha256 -r"), pin)
    lu.assertStrContains(openssl("pkey -check -noout -in " .. q(file("k8.pem"))), "Key is valid")
    if k:type() == "RSA" then
      file("k1.pem", k:pem("traditional"))
      lu.assertStrContains(openssl("rsa -check -noout -in " .. q(file("k1.pem"))), "RSA key ok")
      lu.assertStrContains(openssl("rsa -noout -text -in " .. q(file("k1.pem"))), "Private-Key: (" .. k:bits() .. " bit, 2 primes)")
      -- re-encoded by openssl as PKCS#1, byte for byte the same as kboot's
      lu.assertEquals(openssl("rsa -traditional -in " .. q(file("k8.pem")) .. " 2>/dev/null"), k:pem("traditional"))
    elseif k:type() == "EC" then
      file("sec1.pem", k:pem("traditional"))
      local text = openssl("ec -noout -text -in " .. q(file("sec1.pem")))
      lu.assertStrContains(text, "NIST CURVE: " .. k:curve())
      lu.assertEquals(openssl("ec -in " .. q(file("k8.pem")) .. " 2>/dev/null"), k:pem("traditional"))
    end
    lu.assertEquals(openssl("pkey -in " .. q(file("k8.pem"))), k:pem())
  end
end

function TestOpensslReadsKboot:test_csr()
  for _, alg in ipairs({ "RSA-2048", "ECDSA-P256", "ED25519" }) do
    local r = assert(pki.csr(KEYS[alg], { cn = "system:node:n1", o = { "system:nodes" }, dns = { "n1" }, ip = { "192.0.2.1", "::1" } }))
    file("csr.pem", r:pem())
    local out = openssl("req -verify -noout -text -in " .. q(file("csr.pem")))
    lu.assertStrContains(out, "verify OK")
    lu.assertStrContains(out, "Subject: O = system:nodes, CN = system:node:n1")
    lu.assertStrContains(out, "DNS:n1, IP Address:192.0.2.1, IP Address:0:0:0:0:0:0:0:1")
  end
end

function TestOpensslReadsKboot:test_spki_pin_matches_openssl_pipeline()
  for _, alg in ipairs(ALGS) do
    local ca = assert(pki.self_signed_ca(KEYS[alg], { cn = "pin" }))
    file("ca.pem", ca:pem())
    local want = t.must("openssl x509 -pubkey -noout -in " .. q(file("ca.pem")) ..
                        " | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r"):match("^(%x+)")
    lu.assertEquals(ca:spki_pin(), "sha256:" .. want)
    lu.assertEquals(pki.spki_pin(ca:pem()), "sha256:" .. want)
  end
end

-- Same ASN.1 layout as kubeadm's own CA (from the real cluster in the test vectors).
function TestOpensslReadsKboot:test_ca_layout_like_kubeadm()
  local f = assert(io.open(t.vectors .. "/kubeadm-certs.json"))
  local v = json.decode(f:read("a"))
  f:close()
  local function shape(pem)
    file("s.pem", pem)
    local lines = {}
    for line in openssl("asn1parse -in " .. q(file("s.pem"))):gmatch("[^\n]+") do
      -- keep depth, constructed/primitive, tag and OIDs; drop offsets, lengths and values
      local d, kind, rest = line:match("d=(%d+).-(%a+): (.*)$")
      local tag, val = rest:match("^(%S+)%s*:?(.*)$")
      lines[#lines + 1] = d .. " " .. kind .. " " .. tag .. (tag == "OBJECT" and val or "")
    end
    return table.concat(lines, "\n")
  end
  local ours = assert(pki.self_signed_ca(KEYS["RSA-2048"], { cn = "kubernetes", serial = 1 }))
  lu.assertEquals(shape(ours:pem()), shape(v.plaintext["ca.crt"]))
end

TestKbootReadsOpenssl = {}
function TestKbootReadsOpenssl:setUp() dir = t.tmpdir() end
function TestKbootReadsOpenssl:tearDown() t.cleanup() end

function TestKbootReadsOpenssl:test_openssl_ca_leaf_and_csr()
  openssl("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " .. q(file("ca.key")) ..
          " -out " .. q(file("ca.pem")) .. " -subj /O=example/CN=openssl-ca -days 10 2>&1")
  openssl("req -new -newkey rsa:2048 -nodes -keyout " .. q(file("leaf.key")) .. " -out " .. q(file("leaf.csr")) ..
          " -subj /O=system:nodes/CN=system:node:x -addext subjectAltName=DNS:x,IP:10.0.0.9 2>&1")
  openssl("x509 -req -in " .. q(file("leaf.csr")) .. " -CA " .. q(file("ca.pem")) .. " -CAkey " .. q(file("ca.key")) ..
          " -CAcreateserial -days 5 -copy_extensions copy -out " .. q(file("leaf.pem")) .. " 2>&1")
  local ca = assert(pki.load_cert(t.read(file("ca.pem"))))
  local cak = assert(pki.load_key(t.read(file("ca.key"))))
  local leaf = assert(pki.load_cert(t.read(file("leaf.pem"))))
  lu.assertTrue(cak:matches(ca))
  lu.assertTrue(leaf:verify(ca))
  lu.assertTrue(leaf:issued_by(ca))
  local i = leaf:info()
  lu.assertEquals(i.subject, { cn = "system:node:x", o = { "system:nodes" } })
  lu.assertEquals(i.dns, { "x" })
  lu.assertEquals(i.ip, { "10.0.0.9" })
  lu.assertTrue(ca:info().is_ca)
  lu.assertEquals(ca:info().subject_string, "CN=openssl-ca,O=example")
  local serial = openssl("x509 -noout -serial -in " .. q(file("leaf.pem"))):match("serial=(%x+)")
  lu.assertEquals(i.serial, serial:lower()) -- both byte-aligned hex
  -- the openssl CSR, signed by kboot with the openssl CA, verified by openssl
  local r = assert(pki.load_csr(t.read(file("leaf.csr"))))
  lu.assertEquals(r:info().subject.cn, "system:node:x")
  local c = assert(pki.sign_csr(r, { ext_key_usages = { "client auth" } }, ca, cak))
  file("kboot-leaf.pem", c:pem())
  lu.assertStrContains(openssl("verify -CAfile " .. q(file("ca.pem")) .. " " .. q(file("kboot-leaf.pem"))), ": OK")
  lu.assertStrContains(openssl("x509 -noout -subject -in " .. q(file("kboot-leaf.pem"))), "O = system:nodes, CN = system:node:x")
end

function TestKbootReadsOpenssl:test_openssl_keys()
  local gens = {
    { "genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048", "RSA-2048" },
    { "genrsa -traditional 2048 2>/dev/null", "RSA-2048" },
    { "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384", "ECDSA-P384" },
    { "ecparam -name prime256v1 -genkey", "ECDSA-P256" }, -- EC PARAMETERS block first
    { "genpkey -algorithm ED25519", "ED25519" },
  }
  for _, g in ipairs(gens) do
    local pem = openssl(g[1])
    local k = assert(pki.load_key(pem))
    lu.assertEquals(k:algorithm(), g[2], g[1])
    lu.assertTrue(k:is_private())
    file("k.pem", pem)
    local pub = openssl("pkey -in " .. q(file("k.pem")) .. " -pubout")
    local pk = assert(pki.load_key(pub))
    lu.assertTrue(pk:matches(k))
    lu.assertFalse(pk:is_private())
  end
  local p521 = assert(pki.load_key(openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521")))
  lu.assertEquals(p521:curve(), "P-521")
  lu.assertNil(p521:algorithm())
end

function TestKbootReadsOpenssl:test_unsupported_and_encrypted_keys()
  fails("unsupported key type", pki.load_key(openssl("genpkey -algorithm X25519")))
  fails("unsupported key type", pki.load_key(openssl("genpkey -algorithm ED448")))
  fails("unsupported key type", pki.load_key(openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1")))
  fails("encrypted private keys are not supported",
        pki.load_key(openssl("genpkey -algorithm ED25519 -aes-128-cbc -pass pass:secret")))
  fails("encrypted private keys are not supported",
        pki.load_key(openssl("genrsa -traditional -aes128 -passout pass:secret 2048 2>/dev/null")))
end

function TestKbootReadsOpenssl:test_bad_csr_signature_from_openssl()
  openssl("req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null -subj /CN=victim -out " ..
          q(file("r.csr")) .. " 2>&1")
  local der = pki.pem_decode(t.read(file("r.csr")))[1].der
  local forged = pki.pem_encode("CERTIFICATE REQUEST", (der:gsub("victim", "mallet")))
  file("forged.csr", forged)
  -- openssl 3.0 exits 0 here; its message is what tells
  local _, out = t.sh("openssl req -verify -noout -in " .. q(file("forged.csr")))
  lu.assertStrContains(out, "self-signature verify failure")
  fails("CSR signature is invalid", pki.load_csr(forged))
end

os.exit(lu.LuaUnit.run("-v"))

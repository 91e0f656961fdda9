-- Every certificate the certs phases write, checked by a real peer: the openssl CLI.
-- Chain (openssl verify), subject CN/O, SANs (DNS and IP), key usages, EKUs, basic
-- constraints, validity window, key type per encryptionAlgorithm, key file formats.
local lu = require("luaunit")
local t = require("testlib")
local fixture = require("ctx_fixture")
local certs = require("kboot.certs")
local tbl = require("kboot.certs_table")
local fs = require("kboot.fs")

local PKI = "/etc/kubernetes/pki"
local quiet = { info = function() end, warn = function() end, debug = function() end, error = function() end }

local function x509(file, args) return t.must(("openssl x509 -noout %s -in %s"):format(args, t.q(file))) end

-- "Not Before: Nov 25 12:00:00 2026 GMT" -> unix seconds, through date(1).
local function date_of(s) return tonumber(t.must(("date -u -d %s +%%s"):format(t.q(s))):match("%d+")) end

local function run(root, o)
  o = o or {}
  o.root = root
  o.now = o.now or os.time()
  o.init = o.init or { localAPIEndpoint = { advertiseAddress = "192.168.10.5" } }
  o.cluster = o.cluster or {}
  o.cluster.controlPlaneEndpoint = o.cluster.controlPlaneEndpoint or "cp.example.com:6443"
  o.cluster.apiServer = o.cluster.apiServer or { certSANs = { "10.20.30.40", "api.example.com", "fd00::42" } }
  o.cluster.etcd = o.cluster.etcd or { ["local"] = { serverCertSANs = { "etcd.example.com" }, peerCertSANs = { "10.9.9.9" } } }
  local ctx = fixture.new(o)
  ctx.log = quiet
  -- only the certs phases run here: no kubeconfig keys in the batch
  ctx.phase_enabled = function(name) return name:match("^certs/") ~= nil end
  certs.run_all(ctx)
  return ctx
end

-- What openssl prints for the SAN extension, as sorted items ("DNS:x", "IP Address:y").
local function sans(file)
  local out = x509(file, "-ext subjectAltName")
  local items = {}
  for item in (out:match("Subject Alternative Name:%s*\n%s*(.-)\n") or ""):gmatch("[^,]+") do
    items[#items + 1] = item:match("^%s*(.-)%s*$")
  end
  table.sort(items)
  return items
end

local function expect_sans(dns, ips)
  local out = {}
  for _, d in ipairs(dns) do out[#out + 1] = "DNS:" .. d end
  for _, i in ipairs(ips) do out[#out + 1] = "IP Address:" .. i end
  table.sort(out)
  return out
end

TestOpenssl = {}
function TestOpenssl:tearDown() fs.set_root("/"); t.cleanup() end

function TestOpenssl:test_full_tree_rsa2048()
  local root = t.tmpdir()
  local ctx = run(root, { cluster = { encryptionAlgorithm = "RSA-2048" } })
  local P = root .. PKI
  local expected = {
    ca = { subject = "CN=kubernetes", dns = { "kubernetes" }, ip = {} },
    apiserver = { subject = "CN=kube-apiserver", eku = "TLS Web Server Authentication",
      dns = { "api.example.com", "cp.example.com", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
              "kubernetes.default.svc.cluster.local", "node-1" },
      ip = { "10.96.0.1", "192.168.10.5", "10.20.30.40", "FD00:0:0:0:0:0:0:42" } },
    ["apiserver-kubelet-client"] = { subject = "O=kubeadm:cluster-admins, CN=kube-apiserver-kubelet-client",
      eku = "TLS Web Client Authentication", dns = {}, ip = {} },
    ["front-proxy-ca"] = { subject = "CN=front-proxy-ca", dns = { "front-proxy-ca" }, ip = {} },
    ["front-proxy-client"] = { subject = "CN=front-proxy-client", eku = "TLS Web Client Authentication", dns = {}, ip = {} },
    ["etcd-ca"] = { subject = "CN=etcd-ca", dns = { "etcd-ca" }, ip = {} },
    ["etcd-server"] = { subject = "CN=node-1", eku = "TLS Web Server Authentication, TLS Web Client Authentication",
      dns = { "etcd.example.com", "localhost", "node-1" }, ip = { "192.168.10.5", "127.0.0.1", "0:0:0:0:0:0:0:1" } },
    ["etcd-peer"] = { subject = "CN=node-1", eku = "TLS Web Server Authentication, TLS Web Client Authentication",
      dns = { "localhost", "node-1" }, ip = { "192.168.10.5", "127.0.0.1", "0:0:0:0:0:0:0:1", "10.9.9.9" } },
    ["etcd-healthcheck-client"] = { subject = "CN=kube-etcd-healthcheck-client", eku = "TLS Web Client Authentication", dns = {}, ip = {} },
    ["apiserver-etcd-client"] = { subject = "CN=kube-apiserver-etcd-client", eku = "TLS Web Client Authentication", dns = {}, ip = {} },
  }
  for _, e in ipairs(tbl.certs) do
    local want = expected[e.name]
    local crt, key = root .. select(1, tbl.paths(e, ctx)), root .. select(2, tbl.paths(e, ctx))
    -- subject (openssl -nameopt RFC2253-like ordering: O before CN as Go marshals it)
    local subject = x509(crt, "-subject -nameopt sep_comma_plus_space,sname"):match("subject=(.-)%s*$")
    lu.assertEquals(subject, want.subject, e.name)
    lu.assertEquals(sans(crt), expect_sans(want.dns, want.ip), e.name)
    local ext = x509(crt, "-ext keyUsage,extendedKeyUsage,basicConstraints")
    if e.is_ca then
      lu.assertStrContains(ext, "Digital Signature, Key Encipherment, Certificate Sign", false, e.name)
      lu.assertStrContains(ext, "CA:TRUE", false, e.name)
      lu.assertNotStrContains(ext, "Extended Key Usage", false, e.name)
      t.must(("openssl verify -CAfile %s %s"):format(t.q(crt), t.q(crt)))
    else
      lu.assertStrContains(ext, "Digital Signature, Key Encipherment", false, e.name)
      lu.assertNotStrContains(ext, "Certificate Sign", false, e.name)
      lu.assertStrContains(ext, "CA:FALSE", false, e.name)
      lu.assertEquals(ext:match("Extended Key Usage:%s*\n%s*([^\n]*)"), want.eku, e.name)
      local ca_crt = root .. select(1, tbl.paths(tbl.get(e.ca), ctx))
      local out = t.must(("openssl verify -CAfile %s %s"):format(t.q(ca_crt), t.q(crt)))
      lu.assertStrContains(out, ": OK")
      -- and it does not verify against an unrelated CA of the tree
      local other = e.ca == "ca" and "front-proxy-ca" or "ca"
      local ok = t.sh(("openssl verify -CAfile %s %s"):format(t.q(root .. select(1, tbl.paths(tbl.get(other), ctx))), t.q(crt)))
      lu.assertFalse(ok, e.name .. " must not verify against " .. other)
    end
    -- validity: back-dated 5 minutes, 1 year for leaves, 10 years for CAs
    local dates = x509(crt, "-dates")
    local nb = date_of(dates:match("notBefore=([^\n]+)"))
    local na = date_of(dates:match("notAfter=([^\n]+)"))
    lu.assertEquals(nb, ctx.now - 300, e.name)
    lu.assertEquals(na, ctx.now + (e.is_ca and 3650 or 365) * 86400, e.name)
    -- key: PKCS#1 "RSA PRIVATE KEY" as kubeadm writes it, 2048 bits, matching the cert
    lu.assertStrContains(t.read(key), "-----BEGIN RSA PRIVATE KEY-----")
    lu.assertStrContains(t.must(("openssl rsa -in %s -noout -text"):format(t.q(key))), "Private-Key: (2048 bit")
    local kmod = t.must(("openssl rsa -in %s -noout -modulus"):format(t.q(key)))
    local cmod = x509(crt, "-modulus")
    lu.assertEquals(kmod, cmod, e.name)
  end
  -- sa: an RSA key pair, sa.pub the public half in PKIX "PUBLIC KEY" form
  local pub_from_key = t.must(("openssl pkey -in %s -pubout"):format(t.q(P .. "/sa.key")))
  lu.assertEquals(pub_from_key, t.read(P .. "/sa.pub"))
  lu.assertStrContains(t.read(P .. "/sa.pub"), "-----BEGIN PUBLIC KEY-----")
end

-- Under valgrind (the suite's leak check) big RSA keys take minutes; those two sizes run in the
-- normal and sanitizer builds only.
local function under_valgrind()
  local ok, exe = t.sh("readlink /proc/$PPID/exe")
  return ok and (exe:find("valgrind", 1, true) or exe:find("memcheck", 1, true)) ~= nil
end

-- Key type and signature algorithm per encryptionAlgorithm (a CA and, for the cheap key types,
-- a leaf: big RSA keys are slow to generate under valgrind).
function TestOpenssl:test_key_types()
  local cases = {
    { "ECDSA-P256", "ASN1 OID: prime256v1", "ecdsa-with-SHA256", "EC PRIVATE KEY", leaf = true },
    { "ECDSA-P384", "ASN1 OID: secp384r1", "ecdsa-with-SHA384", "EC PRIVATE KEY", leaf = true },
    { "RSA-3072", "Public-Key: (3072 bit)", "sha256WithRSAEncryption", "RSA PRIVATE KEY", big = true },
    { "RSA-4096", "Public-Key: (4096 bit)", "sha256WithRSAEncryption", "RSA PRIVATE KEY", big = true },
  }
  local slow = under_valgrind()
  for _, c in ipairs(cases) do
    if c.big and slow then goto next end
    local root = t.tmpdir()
    local ctx = fixture.new({ root = root, cluster = { encryptionAlgorithm = c[1] } })
    ctx.log = quiet
    ctx.phase_enabled = function(name) return name == "certs/front-proxy-ca" or (c.leaf and name == "certs/front-proxy-client") end
    certs.ensure(ctx, "front-proxy-ca")
    local files = { "front-proxy-ca" }
    if c.leaf then
      certs.ensure(ctx, "front-proxy-client")
      files[2] = "front-proxy-client"
      t.must(("openssl verify -CAfile %s %s"):format(t.q(root .. PKI .. "/front-proxy-ca.crt"),
        t.q(root .. PKI .. "/front-proxy-client.crt")))
    end
    for _, f in ipairs(files) do
      local text = x509(root .. PKI .. "/" .. f .. ".crt", "-text")
      lu.assertStrContains(text, c[2], false, c[1] .. " " .. f)
      lu.assertStrContains(text, "Signature Algorithm: " .. c[3], false, c[1] .. " " .. f)
      lu.assertStrContains(t.read(root .. PKI .. "/" .. f .. ".key"), "-----BEGIN " .. c[4] .. "-----")
      t.must(("openssl pkey -in %s -noout"):format(t.q(root .. PKI .. "/" .. f .. ".key")))
    end
    ::next::
  end
end

-- Configured validity periods reach the certificates.
function TestOpenssl:test_validity_periods()
  local root = t.tmpdir()
  local ctx = fixture.new({ root = root, cluster = { encryptionAlgorithm = "ECDSA-P256" },
                            cert_validity = 48 * 3600, ca_validity = 30 * 86400 })
  ctx.log = quiet
  ctx.phase_enabled = function(name) return name == "certs/ca" or name == "certs/apiserver" end
  certs.ensure(ctx, "ca")
  certs.ensure(ctx, "apiserver")
  local function after(f) return date_of(x509(root .. PKI .. "/" .. f, "-enddate"):match("notAfter=([^\n]+)")) end
  lu.assertEquals(after("ca.crt"), ctx.now + 30 * 86400)
  lu.assertEquals(after("apiserver.crt"), ctx.now + 48 * 3600)
end

os.exit(lu.LuaUnit.run("-v"))

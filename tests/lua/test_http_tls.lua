-- kboot.http over TLS against `openssl s_server -www` with certificates made by the openssl CLI:
-- CA from memory, client certificates, verification failures (not retried), bad PEM.
local lu = require("luaunit")
local t = require("testlib")
local certs = require("http_certs")
local http = require("kboot.http")

local dir = t.tmpdir()
local A = certs.make(dir, "a")          -- the cluster's CA
local B = certs.make(dir, "b")          -- some other CA
local servers = {}

-- s_server on a free port; extra = more s_server arguments. Returns the https:// base URL.
local function s_server(name, crt, key, extra)
  local port = t.free_port()
  local pid = certs.spawn(("openssl s_server -quiet -www -accept 127.0.0.1:%d -cert %s -key %s %s")
    :format(port, t.q(crt), t.q(key), extra or ""), dir .. "/" .. name .. ".log")
  servers[#servers + 1] = pid
  certs.wait_listen(port, pid, "openssl s_server " .. name)
  return "https://127.0.0.1:" .. port, port
end

local ok_run, err_run = pcall(function()
  -- plain TLS with the A server certificate
  A.url, A.port = s_server("a", A.paths.server_crt, A.paths.server_key)
  -- a server whose certificate comes from CA B
  B.url = s_server("b", B.paths.server_crt, B.paths.server_key)
  -- client certificates required, trusted only from CA A
  A.mtls = s_server("mtls", A.paths.server_crt, A.paths.server_key, "-Verify 1 -verify_return_error -CAfile " .. t.q(A.paths.ca))
end)

TestTls = {}

function TestTls:setUp() if not ok_run then error(err_run) end end

function TestTls:test_ca_from_memory()
  local c = assert(http.client({ server = A.url, ca_pem = A.ca }))
  local r = assert(c:request("GET", "/"))
  lu.assertEquals(r.status, 200)
  lu.assertStrContains(r.body, "s_server")
  lu.assertEquals(r.http_version, "1.0") -- s_server -www answers HTTP/1.0
  -- the server certificate's DNS SAN works too
  c = assert(http.client({ server = "https://localhost:" .. A.port, ca_pem = A.ca }))
  lu.assertEquals(assert(c:request("GET", "/")).status, 200)
  -- a bundle with another CA first still verifies
  c = assert(http.client({ server = A.url, ca_pem = B.ca .. A.ca }))
  lu.assertEquals(assert(c:request("GET", "/")).status, 200)
end

function TestTls:test_tls_info_chain_lines_and_timing()
  local pki = require("kboot.pki")
  local c = assert(http.client({ server = A.url, ca_pem = A.ca }))
  local r = assert(c:request("GET", "/", { tls_info = true }))
  lu.assertEquals(r.status, 200)
  -- the chain as the server sent it: its own certificate first
  lu.assertTrue(#r.certs >= 1)
  local leaf = assert(pki.load_cert(r.certs[1]))
  lu.assertTrue(leaf == assert(pki.load_cert(t.read(A.paths.server_crt))))
  lu.assertStrMatches(r.info, ".*SSL connection using TLSv1%.[23] / .*")
  lu.assertEquals(r.ip, "127.0.0.1")
  lu.assertEquals(r.port, A.port)
  local tm = r.timing
  lu.assertTrue(tm.connect > 0 and tm.tls >= tm.connect and tm.total >= tm.tls, require("kboot.pretty").format(tm))
  -- without tls_info (and on the kept-alive connection) neither chain nor lines
  r = assert(c:request("GET", "/"))
  lu.assertNil(r.certs)
  lu.assertNil(r.info)
  lu.assertNotNil(r.timing.total)
  -- insecure: the chain of a server the CA does not know, to look at
  c = assert(http.client({ server = B.url, insecure = true }))
  r = assert(c:request("GET", "/", { tls_info = true }))
  lu.assertTrue(assert(pki.load_cert(r.certs[1])) == assert(pki.load_cert(t.read(B.paths.server_crt))))
end

function TestTls:test_other_ca_fails_verification_without_retry()
  local c = assert(http.client({ server = B.url, ca_pem = A.ca, retries = 3 }))
  local r, err = c:request("GET", "/healthz")
  lu.assertNil(r)
  lu.assertEquals(err.code, 60)
  lu.assertEquals(err.op, "GET")
  lu.assertStrContains(err.msg, "GET " .. B.url .. "/healthz: TLS verification failed: ")
  lu.assertStrContains(err.msg, "check the CA")
  lu.assertNotStrContains(err.msg, "attempts")
  lu.assertEquals(c:stats().retries, 0)
end

function TestTls:test_system_trust_store_does_not_know_test_ca()
  -- no timeouts: under valgrind, loading the system bundle alone takes tens of seconds
  local c = assert(http.client({ server = A.url, retries = 0, timeout = 0, connect_timeout = 0 }))
  local _, err = c:request("GET", "/")
  lu.assertEquals(err.code, 60)
end

function TestTls:test_insecure_skips_verification()
  local c = assert(http.client({ server = B.url, insecure = true }))
  lu.assertEquals(assert(c:request("GET", "/")).status, 200)
end

function TestTls:test_client_certificate()
  local c = assert(http.client({ server = A.mtls, ca_pem = A.ca, cert_pem = A.client_crt, key_pem = A.client_key }))
  local r = assert(c:request("GET", "/"))
  lu.assertEquals(r.status, 200)
  lu.assertStrContains(r.body, "a-client") -- s_server -www shows the peer certificate
end

function TestTls:test_client_certificate_from_other_ca_refused()
  for _, o in ipairs({ { cert_pem = B.client_crt, key_pem = B.client_key }, {} }) do
    o.server, o.ca_pem, o.retries = A.mtls, A.ca, 3
    local c = assert(http.client(o))
    local r, err = c:request("GET", "/")
    lu.assertNil(r)
    certs.assert_client_cert_refused(lu, err, A.mtls .. "/", c)
  end
end

function TestTls:test_bad_pem_is_a_clear_error()
  local function fails(o, want)
    o.server = A.url
    local c, err = http.client(o)
    lu.assertNil(c)
    lu.assertEquals(err.op, "http")
    lu.assertStrContains(err.msg, want)
  end
  fails({ ca_pem = "not a pem" }, "ca_pem: no PEM certificate found")
  fails({ ca_pem = "" }, "ca_pem: no PEM certificate found")
  fails({ ca_pem = A.client_key }, "ca_pem: no PEM certificate found")
  local broken = A.ca:gsub("\n(.)(.)", "\n%2%1", 1)
  fails({ ca_pem = A.ca .. broken }, "ca_pem: certificate 2 is not valid")
  fails({ cert_pem = A.client_crt }, "cert_pem and key_pem must be given together")
  fails({ cert_pem = "junk", key_pem = A.client_key }, "cert_pem: no PEM certificate found")
  fails({ cert_pem = A.client_crt, key_pem = "junk" }, "key_pem: no PEM private key found")
  fails({ cert_pem = A.client_crt, key_pem = B.client_key }, "key_pem does not match cert_pem")
  local enc = t.must(("openssl pkey -in %s -aes256 -passout pass:secret"):format(t.q(A.paths.client_key)))
  fails({ cert_pem = A.client_crt, key_pem = enc }, "no PEM private key found (or it is encrypted)")
end

function TestTls:test_https_keepalive_and_http2_option_harmless()
  -- s_server -www closes after each answer (HTTP/1.0), so each request connects anew:
  -- stats count real connections, not requests.
  local c = assert(http.client({ server = A.url, ca_pem = A.ca }))
  for _ = 1, 3 do assert(c:request("GET", "/")) end
  lu.assertEquals(c:stats().requests, 3)
  lu.assertEquals(c:stats().connects, 3)
end

local rc = lu.LuaUnit.run("-v")
for _, pid in ipairs(servers) do certs.kill(pid) end
t.cleanup()
os.exit(rc)

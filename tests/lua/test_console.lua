-- kboot.console without a cluster: which kubeconfig connect() picks, who its credentials say we
-- are, how a transport error is read as a step, which host a certificate names, and inspect() of
-- certificates, keys, CSRs, bundles and kubeconfigs from files and strings. (The cluster side is
-- tests/integration/test_e2e_console.lua, on the real control plane.)
local lu = require("luaunit")
local t = require("testlib")
local fs = require("kboot.fs")
local pki = require("kboot.pki")
local kubeconfig = require("kboot.kubeconfig")
local console = require("kboot.console")
local connect = require("kboot.console.connect")
local tls = require("kboot.console.tls")

local now = os.time()
local ca_key = pki.generate_key("ECDSA-P256")
local ca = pki.self_signed_ca(ca_key, { cn = "kubernetes", dns = { "kubernetes" }, not_after = now + 3650 * 86400 + 60 })  -- (a minute over: a slow run under valgrind must still read 10y)
local key = pki.generate_key("ECDSA-P256")
local admin = pki.sign({ cn = "kubernetes-admin", o = { "kubeadm:cluster-admins" }, ext_key_usages = { "client auth" },
                         not_after = now + 364 * 86400 + 60 }, key, ca, ca_key)

local function env_of(vars, cmd)
  local parts = {}
  for k, v in pairs(vars) do parts[#parts + 1] = k .. "=" .. t.q(v) end
  return table.concat(parts, " ") .. " " .. cmd
end

TestConsole = {}

function TestConsole:tearDown()
  fs.set_root("/")
  t.cleanup()
end

function TestConsole:test_which_kubeconfig()
  -- run in a child: the order depends on HOME and KUBECONFIG
  local d = t.tmpdir()
  t.write(d .. "/script.lua", [[
local connect = require("kboot.console.connect")
local tls = require("kboot.console.tls")
local out = {}
for _, c in ipairs(connect.candidates()) do out[#out + 1] = (c.node and "node:" or "") .. c.path end
print(table.concat(out, " "))
local c = assert(connect.resolve())
print((c.node and "node:" or "") .. c.path)
]])
  local out = t.must(env_of({ HOME = d, KUBECONFIG = d .. "/a.conf:" .. d .. "/b.conf" }, t.q(t.bin) .. " " .. t.q(d .. "/script.lua") .. " 2>&1; true"))
  lu.assertStrContains(out, ("node:/etc/kubernetes/admin.conf %s/a.conf %s/b.conf %s/.kube/config\n"):format(d, d, d))
  lu.assertStrContains(out, "no kubeconfig found (tried /etc/kubernetes/admin.conf, " .. d .. "/a.conf")
  -- the first that exists wins: b.conf, then ~/.kube/config once b.conf is gone
  t.write(d .. "/b.conf", "x")
  t.must("mkdir -p " .. t.q(d .. "/.kube") .. " && touch " .. t.q(d .. "/.kube/config"))
  out = t.must(env_of({ HOME = d, KUBECONFIG = d .. "/a.conf:" .. d .. "/b.conf" }, t.q(t.bin) .. " " .. t.q(d .. "/script.lua")))
  lu.assertStrContains(out, "\n" .. d .. "/b.conf\n")
  out = t.must(env_of({ HOME = d, KUBECONFIG = "" }, t.q(t.bin) .. " " .. t.q(d .. "/script.lua")))
  lu.assertStrContains(out, "\n" .. d .. "/.kube/config\n")
end

function TestConsole:test_names_and_paths()
  local root = t.tmpdir()
  assert(fs.set_root(root))
  lu.assertEquals(connect.resolve("super-admin"), { path = "/etc/kubernetes/super-admin.conf", node = true })
  -- a path of this machine, else of the node when only that exists
  t.must("mkdir -p " .. t.q(root .. "/etc/kubernetes"))
  t.write(root .. "/etc/kubernetes/x.conf", "x")
  lu.assertEquals(connect.resolve("/etc/kubernetes/x.conf"), { path = "/etc/kubernetes/x.conf", node = true })
  lu.assertEquals(connect.resolve(root .. "/etc/kubernetes/x.conf"), { path = root .. "/etc/kubernetes/x.conf" })
  -- a broken file is the kubeconfig step
  local _, err = connect.load("/etc/kubernetes/x.conf")
  lu.assertEquals(err.step, "kubeconfig")
  lu.assertStrContains(err.msg, "kubeconfig /etc/kubernetes/x.conf: ")
  _, err = console.connect("/nonexistent/y.conf")
  lu.assertEquals(err.step, "kubeconfig")
  lu.assertEquals(err.msg, "kubeconfig /nonexistent/y.conf: cannot read it")
end

function TestConsole:test_identity()
  local id = connect.identity({ cert_pem = admin:pem() })
  lu.assertEquals({ id.user, id.groups, id.auth, id.cert_expires }, { "kubernetes-admin", { "kubeadm:cluster-admins" },
    "client certificate", admin:info().not_after })
  id = connect.identity({ token = "abcdef.0123456789abcdef" })
  lu.assertEquals({ id.user, id.groups, id.auth }, { "system:bootstrap:abcdef", { "system:bootstrappers" }, "bootstrap token abcdef" })
  lu.assertEquals(connect.identity({ token = "eyJhbGciOi.some.jwt" }).auth, "bearer token")
  lu.assertEquals(connect.identity({}).user, "system:anonymous")
end

function TestConsole:test_steps_of_transport_errors()
  local E = require("kboot.error").new
  local S = tls.step_of
  lu.assertEquals(S(E("GET", "GET https://x:1/version: Couldn't resolve host name", { code = 6 })), "dns")
  lu.assertEquals(S(E("GET", "GET https://x:1/version: Couldn't connect to server", { code = 7 })), "tcp")
  lu.assertEquals(S(E("GET", "GET https://x:1/version: Timeout was reached (Connection timed out after 5001 milliseconds)", { code = 28 })), "tcp")
  lu.assertEquals(S(E("GET", "GET https://x:1/version: Timeout was reached (Operation timed out after 10001 milliseconds with 0 bytes received)", { code = 28 })), "http")
  lu.assertEquals(S(E("GET", "GET https://x:1/version: TLS verification failed: ...; check the CA", { code = 60 })), "tls")
  lu.assertEquals(S(E("GET", "GET https://x:1/: Failure when receiving data from the peer (OpenSSL SSL_read: error:0A000412:SSL routines::sslv3 alert bad certificate)", { code = 56 })), "tls")
  -- no server needed for these two lines
  local _, err = tls.transport_error("https://no.such:6443", "/version", E("GET", "GET https://no.such:6443/version: Couldn't resolve host name (Could not resolve host: no.such)", { code = 6 }))
  lu.assertEquals(err.msg, "connect https://no.such:6443: DNS: cannot resolve no.such (Couldn't resolve host name (Could not resolve host: no.such))")
  _, err = tls.transport_error("https://[::1]:7", "/", E("GET", "x", { code = 7 }), { what = "probe" })
  lu.assertEquals(err.msg, "probe https://[::1]:7: TCP: cannot connect: nothing accepts connections on [::1] port 7 (is the server running? is the port right?)")
  lu.assertEquals(err.step, "tcp")
end

function TestConsole:test_names_host()
  local c = pki.sign({ cn = "x", dns = { "kubernetes", "*.example.com" }, ip = { "10.0.0.1", "::1" }, ext_key_usages = { "server auth" } }, key, ca, ca_key)
  local i = c:info()
  for _, h in ipairs({ "kubernetes", "KUBERNETES", "a.example.com", "10.0.0.1", "[::1]", "0:0::1" }) do
    lu.assertTrue(tls.names_host(i, h), h)
  end
  for _, h in ipairs({ "example.com", "a.b.example.com", "10.0.0.2", "kubernetes.default" }) do
    lu.assertFalse(tls.names_host(i, h), h)
  end
end

function TestConsole:test_inspect()
  local d = t.tmpdir()
  t.write(d .. "/admin.crt", admin:pem())
  local r = assert(console.inspect(d .. "/admin.crt"))
  lu.assertEquals({ r.type, r.subject, r.issuer, r.expiry, r.key, r.is_ca }, { "certificate", "CN=kubernetes-admin,O=kubeadm:cluster-admins",
    "CN=kubernetes", "in 364d", "EC 256 P-256", false })
  lu.assertEquals(r.ext_key_usages, { "client auth" })
  lu.assertEquals(console.inspect(ca:pem()).type, "CA certificate")
  -- a key never shows its material; a public key does
  local k = assert(console.inspect(key:pem()))
  lu.assertEquals({ k.type, k.pem, k.spki_pin }, { "private key", "<private key>", admin:spki_pin() })
  lu.assertEquals(console.inspect(key:public_pem()).type, "public key")
  -- a CSR
  local csr = assert(pki.csr(key, { cn = "system:node:n1", o = { "system:nodes" }, dns = { "n1" } }))
  r = assert(console.inspect(csr:pem()))
  lu.assertEquals({ r.type, r.subject, r.dns }, { "CSR", "CN=system:node:n1,O=system:nodes", { "n1" } })
  lu.assertEquals(console.inspect(csr).subject, r.subject)
  -- a bundle and a cert with its key: rows
  local list = assert(console.inspect(admin:pem() .. key:pem() .. ca:pem()))
  lu.assertTrue(require("kboot.rows").is_rows(list))
  lu.assertEquals({ list[1].type, list[2].type, list[3].type }, { "certificate", "private key", "CA certificate" })
  -- a kubeconfig, as text or table
  local kc = kubeconfig.build({ server = "https://10.0.0.1:6443", ca_pem = ca:pem(), cert_pem = admin:pem(), key_pem = key:pem() })
  r = assert(console.inspect(kubeconfig.encode(kc)))
  lu.assertEquals({ r.type, r.server, r.user, r.client_key }, { "kubeconfig", "https://10.0.0.1:6443", "kubernetes-admin", "<private key>" })
  lu.assertStrContains(r.ca, "CN=kubernetes, expires in 10y")
  lu.assertStrContains(r.client_certificate, "CN=kubernetes-admin,O=kubeadm:cluster-admins, issuer CN=kubernetes, expires in 364d")
  lu.assertEquals(console.inspect(kc).server, r.server)
  local tk = assert(console.inspect(kubeconfig.build({ server = "https://x:6443", ca_pem = ca:pem(), token = "abcdef.0123456789abcdef" })))
  lu.assertEquals(tk.token, "abcdef.<secret>")
  -- what it cannot read
  local _, err = console.inspect(d .. "/none")
  lu.assertStrContains(tostring(err), "cannot read " .. d .. "/none")
  _, err = console.inspect("just text\nnot pem")
  lu.assertStrContains(tostring(err), "neither PEM nor a kubeconfig")
  lu.assertErrorMsgContains("inspect: ", console.inspect, 42)
end

os.exit(lu.LuaUnit.run("-v"))

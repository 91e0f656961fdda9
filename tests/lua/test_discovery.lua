-- kboot.discovery over real TLS: the API server double (tests/lib/fake_apiserver.py) serves HTTPS
-- with a certificate made here by kboot.pki, cluster-info is seeded with a real JWS
-- (crypto.jws_sign), and every failure is checked for the one line that names its cause.
-- The same against a real kube-apiserver: tests/integration/test_e2e_discovery.lua.
local lu = require("luaunit")
local t = require("testlib")
local json = require("cjson")
local crypto = require("kboot.crypto")
local pki = require("kboot.pki")
local time = require("kboot.time")
local tokens = require("kboot.tokens")
local kubeconfig = require("kboot.kubeconfig")
local discovery = require("kboot.discovery")

local function make_ca(cn)
  local key = assert(pki.generate_key("ECDSA-P256"))
  local ca = assert(pki.self_signed_ca(key, { cn = cn, not_before = os.time() - 300, not_after = os.time() + 86400 }))
  return { cert = ca, key = key, pem = ca:pem(), pin = ca:spki_pin() }
end

local CA, OTHER = make_ca("kubernetes"), make_ca("someone-else")
local SERVER_KEY = assert(pki.generate_key("ECDSA-P256"))
local SERVER = assert(pki.sign({ cn = "kube-apiserver", ip = { "127.0.0.1" }, usages = { "digital signature" },
                                 ext_key_usages = { "server auth" }, not_after = os.time() + 86400 },
                               SERVER_KEY, CA.cert, CA.key))
local API = require("fake_api").start{ tls = { cert_pem = SERVER:pem(), key_pem = SERVER_KEY:pem(), ca_pem = CA.pem } }

local TOKEN, ID, SECRET = "abcdef.0123456789abcdef", "abcdef", "0123456789abcdef"

-- cluster-info as kboot init writes it, signed for the token; o.ca (the CA it names), o.secret (the
-- key it is signed with), o.text (the kubeconfig stored, when it differs from the one signed)
local function seed(o)
  o = o or {}
  local cm = tokens.cluster_info(API.url, o.ca or CA.pem)
  local signed = cm.data.kubeconfig
  cm.data["jws-kubeconfig-" .. ID] = crypto.jws_sign(signed, ID, o.secret or SECRET)
  if o.text then cm.data.kubeconfig = o.text end
  API:put(cm)
  API:forget() -- the test's own write is not the code's
  return signed
end

local function cluster_info_gets()
  local n = 0
  for _, r in ipairs(API:requests()) do
    if r.method == "GET" and r.path == discovery.PATH then n = n + 1 end
  end
  return n
end

local function opts(o)
  local r = { endpoint = API.endpoint, token = TOKEN, pins = { CA.pin }, timeout = 5, interval = 0.1 }
  for k, v in pairs(o or {}) do r[k] = v end
  return r
end

local function fails(o, ...)
  local r, err = discovery.token(opts(o))
  lu.assertNil(r)
  lu.assertTrue(require("kboot.error").is(err))
  lu.assertEquals(err.op, "discovery")
  lu.assertNotStrContains(err.msg, "\n")
  for _, want in ipairs({ ... }) do lu.assertStrContains(err.msg, want) end
  lu.assertNotStrContains(err.msg, SECRET) -- the token secret is never echoed
  return err
end

TestDiscoveryToken = {}
function TestDiscoveryToken:setUp() API:reset() end
function TestDiscoveryToken:tearDown() t.cleanup() end

function TestDiscoveryToken:test_second_pin_matches()
  local text = seed()
  -- kubeadm 1.20 honoured only the first pin; any of them may match, in either case of hex
  local pins = { OTHER.pin, "sha256:" .. CA.pin:sub(8):upper() }
  local r = assert(discovery.token(opts{ pins = pins }))
  lu.assertEquals(r.server, API.url)
  lu.assertEquals(r.ca_pem, CA.pem)
  lu.assertEquals(r.text, text)
  lu.assertEquals(r.kubeconfig.clusters[1].cluster.server, API.url)
  lu.assertEquals(r.pin, pins[2])
  lu.assertEquals(r.requests, 2) -- one unverified read, one verified
  lu.assertEquals(cluster_info_gets(), 2)
  lu.assertEquals(API:writes(), {}) -- discovery writes nothing
end

function TestDiscoveryToken:test_signature_appears_after_polls()
  seed()
  -- the bootstrapsigner has not signed yet: three reads without the key, then it is there
  API:mutate{ path = "cluster-info", times = 3, patch = { data = { ["jws-kubeconfig-" .. ID] = json.null } } }
  local lines = {}
  local log = { debug = function(_, fmt, ...) lines[#lines + 1] = fmt:format(...) end }
  local r = assert(discovery.token(opts{ log = log }))
  lu.assertEquals(r.requests, 5)
  lu.assertEquals(cluster_info_gets(), 5)
  lu.assertStrContains(lines[1], "has no jws-kubeconfig-abcdef yet")
end

function TestDiscoveryToken:test_wrong_secret()
  seed()
  fails({ token = ID .. ".wrongsecret00000" }, "jws-kubeconfig-abcdef does not verify",
        "wrong token secret, or cluster-info was changed after signing")
  lu.assertEquals(cluster_info_gets(), 1) -- nothing more once the signature is wrong
end

function TestDiscoveryToken:test_tampered_after_signing()
  local signed = seed{ text = tokens.cluster_info_kubeconfig("https://10.6.6.6:6443", CA.pem) }
  lu.assertNotEquals(signed, API:object("v1", "ConfigMap", "kube-public", "cluster-info").data.kubeconfig)
  fails(nil, "wrong token secret, or cluster-info was changed after signing")
end

function TestDiscoveryToken:test_unknown_token_id()
  seed()
  local t0 = time.now()
  fails({ token = "zzzzzz.0123456789abcdef", timeout = 2, interval = 0.5 },
        "no jws-kubeconfig-zzzzzz in cluster-info after 2s: the token does not exist, has expired, "
        .. "or the controller-manager's bootstrapsigner is not running")
  local took = time.now() - t0
  lu.assertTrue(took >= 2 and took < 4, "took " .. took)
  lu.assertTrue(cluster_info_gets() >= 4)
end

function TestDiscoveryToken:test_no_pin_matches()
  seed()
  local other2 = make_ca("third")
  fails({ pins = { OTHER.pin, other2.pin } }, "matches none of the 2 given CA pin(s)", "its pin is " .. CA.pin)
  lu.assertEquals(cluster_info_gets(), 1) -- the verified fetch is not even tried
end

function TestDiscoveryToken:test_second_fetch_differs()
  seed()
  API:mutate{ path = "cluster-info", skip = 1, times = 1,
              patch = { data = { kubeconfig = tokens.cluster_info_kubeconfig("https://10.6.6.6:6443", CA.pem) } } }
  fails(nil, "cluster-info from " .. API.endpoint .. " changed between the unverified and the verified fetch")
  lu.assertEquals(cluster_info_gets(), 2)
end

function TestDiscoveryToken:test_server_cert_not_from_cluster_info_ca()
  -- cluster-info names a CA (and the pin matches it) that did not sign the server's certificate
  seed{ ca = OTHER.pem }
  fails({ pins = { OTHER.pin } }, "cluster-info from " .. API.endpoint .. " over TLS verified against its CA",
        "TLS verification failed")
end

function TestDiscoveryToken:test_unreachable()
  local port = t.free_port()
  local t0 = time.now()
  fails({ endpoint = "127.0.0.1:" .. port, timeout = 1.5, interval = 0.3 },
        "cannot fetch cluster-info from 127.0.0.1:" .. port .. " within 1.5s",
        "GET https://127.0.0.1:" .. port .. discovery.PATH .. ": ")
  lu.assertTrue(time.now() - t0 < 4)
end

function TestDiscoveryToken:test_missing_cluster_info_retried_then_named()
  -- no cluster-info at all (init not that far yet): polled, then the last answer is named
  fails({ timeout = 1, interval = 0.2 }, "cluster-info from " .. API.endpoint .. ": still 404 after 1s")
end

-- cluster-info answers that are not what the bootstrapsigner makes: one line each, naming the
-- endpoint and what is wrong, never a Lua error.
function TestDiscoveryToken:test_malformed_cluster_info_one_line_each()
  local key = "jws-kubeconfig-" .. ID
  local cases = {
    { "no kubeconfig key", { patch = { data = { kubeconfig = json.null } } }, "has " .. key .. " but no kubeconfig" },
    { "JWS not three parts", { patch = { data = { [key] = "garbage" } } }, key .. " does not verify" },
    { "JWS with a payload", { patch = { data = { [key] = "a.b.c" } } }, key .. " does not verify" },
    { "kubeconfig not YAML", { sign = "clusters: [" }, "cluster-info from " .. API.endpoint .. ": kubeconfig cluster-info: yaml: " },
    { "two clusters", { sign = "apiVersion: v1\nkind: Config\nclusters:\n- {name: a, cluster: {server: 'https://x'}}\n"
                          .. "- {name: b, cluster: {server: 'https://y'}}\n" }, "its kubeconfig has 2 clusters, want exactly one" },
    { "CA not PEM", { sign = "apiVersion: v1\nkind: Config\nclusters:\n- {name: '', cluster: {server: 'https://x', "
                          .. "certificate-authority-data: aGVsbG8=}}\n" }, "certificate-authority-data holds no PEM certificate" },
    { "answer a number", { raw = "5" }, "GET " .. discovery.PATH .. ": the answer is not a JSON object" },
    { "answer not JSON", { raw = "<html>" }, "response is not valid JSON" },
  }
  for _, c in ipairs(cases) do
    API:reset()
    local o = c[2]
    if o.sign then
      local cm = tokens.cluster_info(API.url, CA.pem)
      cm.data.kubeconfig = o.sign
      cm.data[key] = crypto.jws_sign(o.sign, ID, SECRET)
      API:put(cm)
    else
      seed()
    end
    if o.patch then API:mutate{ path = "cluster-info", patch = o.patch } end
    if o.raw then API:fail{ method = "GET", path = "cluster-info", status = 200, raw = o.raw } end
    local ok, r, err = pcall(discovery.token, opts{ timeout = 1, interval = 0.3 })
    API:unmutate() API:heal()
    lu.assertTrue(ok, c[1] .. ": raised " .. tostring(r))
    lu.assertNil(r, c[1])
    lu.assertEquals(err.op, "discovery", c[1])
    lu.assertNotStrContains(err.msg, "\n", false, c[1])
    lu.assertStrContains(err.msg, c[3], false, c[1])
  end
end

function TestDiscoveryToken:test_unsafe_skip()
  seed()
  local warned
  local log = { warn = function(_, fmt, ...) warned = fmt:format(...) end }
  local r = assert(discovery.token(opts{ pins = {}, unsafe_skip = true, log = log }))
  lu.assertNil(r.pin)
  lu.assertEquals(r.ca_pem, CA.pem)
  lu.assertEquals(r.requests, 2) -- the verified re-read is still made
  lu.assertStrContains(warned, "not verified against any pin")
end

function TestDiscoveryToken:test_misuse_raises()
  local function raises(o, msg)
    local ok, err = pcall(discovery.token, o)
    lu.assertFalse(ok)
    lu.assertStrContains(tostring(err), msg)
  end
  raises(opts{ pins = {} }, "no CA pins and no unsafe_skip")
  raises(opts{ pins = { "sha256:abc" } }, "pins[1]: want sha256:<64 hex>")
  raises(opts{ token = "nope" }, "discovery: token: ")
  raises(opts{ timeout = 0 }, "timeout must be a positive number")
  raises("x", "options table expected")
  lu.assertEquals(cluster_info_gets(), 0)
end

-- The real bootstrapsigner's signature (kube-controller-manager v1.20.2) is accepted as it is.
function TestDiscoveryToken:test_real_vector()
  local v = json.decode(t.read(t.vectors .. "/cluster-info-jws.json"))
  lu.assertEquals(crypto.jws_sign(v.kubeconfig, v.token_id, v.token_secret), v.jws)
  local cm = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "cluster-info", namespace = "kube-public" },
               data = { kubeconfig = v.kubeconfig, ["jws-kubeconfig-" .. v.token_id] = v.jws } }
  API:put(cm)
  local vca = kubeconfig.parse(v.kubeconfig).clusters[1].cluster["certificate-authority-data"]
  local pin = assert(pki.spki_pin(crypto.unbase64(vca)))
  -- signature and pin pass; the verified re-read then fails, this server's certificate being ours,
  -- not that cluster's: proof that the checks before it accepted the real thing
  fails({ token = v.token, pins = { pin } }, "over TLS verified against its CA", "TLS verification failed")
  fails({ token = v.token_id .. ".aaaaaaaaaaaaaaaa", pins = { pin } }, "wrong token secret")
  cm.data.kubeconfig = v.kubeconfig:gsub("127%.0%.0%.1", "127.0.0.2")
  API:reset()
  API:put(cm)
  fails({ token = v.token, pins = { pin } }, "cluster-info was changed after signing")
end

TestDiscoveryFile = {}
function TestDiscoveryFile:tearDown() t.cleanup() end

local function write_conf(t_)
  local d = t.tmpdir()
  t.write(d .. "/discovery.conf", kubeconfig.encode(t_))
  return d .. "/discovery.conf"
end

function TestDiscoveryFile:test_path_with_credentials()
  local path = write_conf(kubeconfig.build{ server = API.url, ca_pem = CA.pem, user = "tls-bootstrap-token-user",
                                            token = TOKEN })
  local r = assert(discovery.file{ source = path })
  lu.assertEquals(r.server, API.url)
  lu.assertEquals(r.ca_pem, CA.pem)
  lu.assertEquals(r.credentials, { token = TOKEN })
  lu.assertEquals(r.kubeconfig.clusters[1].cluster.server, API.url)
  -- --tls-bootstrap-token wins over the file's own credentials, as in kubeadm
  r = assert(discovery.file{ source = path, tls_bootstrap_token = "zzzzzz.0123456789abcdef" })
  lu.assertEquals(r.credentials, { token = "zzzzzz.0123456789abcdef" })
  -- a client certificate
  path = write_conf(kubeconfig.build{ server = API.url, ca_pem = CA.pem, cert_pem = SERVER:pem(), key_pem = SERVER_KEY:pem() })
  r = assert(discovery.file{ source = path })
  lu.assertEquals(r.credentials, { cert_pem = SERVER:pem(), key_pem = SERVER_KEY:pem() })
end

function TestDiscoveryFile:test_path_without_credentials()
  local kc = kubeconfig.build{ server = API.url, ca_pem = CA.pem, token = "x" }
  kc.users[1].user = {}
  local path = write_conf(kc)
  local r, err = discovery.file{ source = path }
  lu.assertNil(r)
  lu.assertEquals(err.op, "discovery")
  lu.assertStrContains(err.msg, "discovery file " .. path .. ': user "kubernetes-admin" has no credentials')
  lu.assertStrContains(err.msg, "--tls-bootstrap-token")
  r = assert(discovery.file{ source = path, tls_bootstrap_token = TOKEN })
  lu.assertEquals(r.credentials, { token = TOKEN })
  lu.assertEquals(r.server, API.url)
end

function TestDiscoveryFile:test_bad_sources()
  local r, err = discovery.file{ source = "/nonexistent/discovery.conf" }
  lu.assertNil(r)
  lu.assertStrContains(err.msg, "cannot read the discovery file: /nonexistent/discovery.conf")
  local d = t.tmpdir()
  t.write(d .. "/bad.conf", "kind: [")
  r, err = discovery.file{ source = d .. "/bad.conf" }
  lu.assertNil(r)
  lu.assertStrContains(err.msg, d .. "/bad.conf")
  r, err = discovery.file{ source = "http://127.0.0.1/x" }
  lu.assertNil(r)
  lu.assertStrContains(err.msg, "only https URLs and paths")
  -- an https URL is verified against the host's CA bundle, which does not trust this test CA
  r, err = discovery.file{ source = API.url .. "/discovery.conf" }
  lu.assertNil(r)
  lu.assertStrContains(err.msg, "cannot fetch the discovery file " .. API.url .. "/discovery.conf: ")
  lu.assertStrContains(err.msg, "TLS verification failed")
  lu.assertFalse(pcall(discovery.file, { source = 1 }))
end

-- Every malformed discovery file: one line naming the file and what is wrong in it, never a Lua
-- error or a message without the file.
function TestDiscoveryFile:test_malformed_files_each_one_line_naming_the_file()
  local d = t.tmpdir()
  local ctx = "contexts:\n- name: c\n  context: {cluster: c}\ncurrent-context: c\n"
  local function cluster(body) return "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: " .. body .. "\n" end
  local cases = {
    { "directory", nil, "cannot read the discovery file %s: Is a directory" },
    { "not-yaml", "clusters: [", "kubeconfig %s: yaml: " },
    { "scalar", "5\n", "kubeconfig %s: not a YAML mapping" },
    { "no-clusters", "apiVersion: v1\nkind: Config\n", "discovery file %s names no cluster" },
    { "no-server", cluster("{certificate-authority-data: " .. crypto.base64(CA.pem) .. "}") .. ctx, 'kubeconfig %s: cluster "c": missing server' },
    { "no-context", cluster("{server: 'https://127.0.0.1:1'}"), "kubeconfig %s: no current-context" },
    { "bad-base64", cluster("{server: 'https://127.0.0.1:1', certificate-authority-data: '!!!'}") .. ctx,
      'kubeconfig %s: cluster "c".certificate-authority-data: invalid base64' },
    { "not-pem", cluster("{server: 'https://127.0.0.1:1', certificate-authority-data: " .. crypto.base64("hello") .. "}") .. ctx,
      'discovery file %s: cluster "c": certificate-authority-data holds no PEM certificate' },
    { "no-ca", cluster("{server: 'https://127.0.0.1:1'}") .. ctx, 'discovery file %s: cluster "c" has no certificate-authority-data' },
  }
  for _, c in ipairs(cases) do
    local path = d .. "/" .. c[1]
    if c[2] then t.write(path, c[2]) else t.must("mkdir " .. t.q(path)) end
    local ok, r, err = pcall(discovery.file, { source = path, tls_bootstrap_token = TOKEN })
    lu.assertTrue(ok, c[1] .. ": raised " .. tostring(r))
    lu.assertNil(r, c[1])
    lu.assertEquals(err.op, "discovery", c[1])
    lu.assertNotStrContains(err.msg, "\n")
    lu.assertStrContains(err.msg, c[3]:format(path), false, c[1])
  end
end

os.exit(lu.LuaUnit.run())

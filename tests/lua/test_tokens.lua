-- kboot.tokens: pure builders compared with objects from a real v1.20 cluster (the vectors), the
-- checks and their messages, kubeadm's list table, and the kubeadm-certs seal/open round trip.
local lu = require("luaunit")
local t = require("testlib")
local json = require("cjson")
local crypto = require("kboot.crypto")
local tokens = require("kboot.tokens")

local function vector(name) return json.decode(t.read(t.vectors .. "/" .. name)) end

TestChecks = {}

function TestChecks:test_parse()
  local id, sec = tokens.parse("abcdef.0123456789abcdef")
  lu.assertEquals(id, "abcdef")
  lu.assertEquals(sec, "0123456789abcdef")
  for _, bad in ipairs({ "abcdef0123456789abcdef", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdef",
                         "abcdef.0123456789abcde!", "", "abcdef.0123456789abcdef0" }) do
    local ok, why = tokens.parse(bad)
    lu.assertNil(ok, bad)
    lu.assertStrContains(why, "[a-z0-9]{6}.[a-z0-9]{16}")
    if #bad > 8 then lu.assertNotStrContains(why, bad) end -- the secret is never echoed
  end
  lu.assertNil(tokens.parse(42))
end

function TestChecks:test_id_of()
  lu.assertEquals(tokens.id_of("abcdef"), "abcdef")
  lu.assertEquals(tokens.id_of("abcdef.0123456789abcdef"), "abcdef")
  for _, bad in ipairs({ "abcde", "abcdefg", "ABCDEF", "abcdef.x", "" }) do
    local ok, why = tokens.id_of(bad)
    lu.assertNil(ok)
    lu.assertStrContains(why, "not a token ID")
  end
end

function TestChecks:test_ttl()
  lu.assertEquals(tokens.ttl("24h0m0s"), 86400)
  lu.assertEquals(tokens.ttl("1h30m"), 5400)
  lu.assertEquals(tokens.ttl("0"), 0)
  lu.assertEquals(tokens.ttl("0s"), 0)
  local ok, why = tokens.ttl("tomorrow")
  lu.assertNil(ok)
  lu.assertStrContains(why, 'invalid duration "tomorrow"')
  ok, why = tokens.ttl("-1h")
  lu.assertNil(ok)
  lu.assertStrContains(why, "negative")
  lu.assertNil(tokens.ttl("12"))
end

function TestChecks:test_usages_and_groups()
  lu.assertTrue(tokens.check_usages({ "signing", "authentication" }))
  lu.assertTrue(tokens.check_usages({}))
  local ok, why = tokens.check_usages({ "signing", "auth" })
  lu.assertNil(ok)
  lu.assertEquals(why, "invalid bootstrap token usage string: auth, valid usage options: signing,authentication")
  lu.assertTrue(tokens.check_groups({ tokens.DEFAULT_GROUP, "system:bootstrappers:a:b-c1" }, { "authentication" }))
  ok, why = tokens.check_groups({ tokens.DEFAULT_GROUP }, { "signing" })
  lu.assertNil(ok)
  lu.assertStrContains(why, 'unless --usages includes "authentication"')
  for _, g in ipairs({ "system:nodes", "system:bootstrappers:", "system:bootstrappers:x-", "system:bootstrappers:UP",
                       "system:bootstrappers:" .. ("a"):rep(257) }) do
    ok, why = tokens.check_groups({ g }, { "authentication" })
    lu.assertNil(ok, g)
    lu.assertStrContains(why, "is invalid (must match system:bootstrappers:")
  end
  lu.assertTrue(tokens.check_groups({ "system:bootstrappers:" .. ("a"):rep(256) }, { "authentication" }))
end

TestTime = {}

function TestTime:test_rfc3339()
  lu.assertEquals(tokens.rfc3339(0), "1970-01-01T00:00:00Z")
  lu.assertEquals(tokens.parse_rfc3339("1970-01-01T00:00:00Z"), 0)
  lu.assertEquals(tokens.parse_rfc3339("2026-11-26T11:50:39Z"), 1795693839)
  lu.assertEquals(tokens.rfc3339(1795693839), "2026-11-26T11:50:39Z")
  lu.assertEquals(tokens.parse_rfc3339("2026-11-26T13:50:39.123+02:00"), 1795693839)
  lu.assertEquals(tokens.parse_rfc3339("2000-02-29T00:00:00Z"), 951782400)
  for _, bad in ipairs({ "2026-11-26", "2026-11-26T11:50:39", "2026-13-01T00:00:00Z", "x" }) do
    local ok, why = tokens.parse_rfc3339(bad)
    lu.assertNil(ok, bad)
    lu.assertStrContains(why, "expiration")
  end
end

function TestTime:test_short_duration()
  lu.assertEquals(tokens.short_duration(-5), "<invalid>")
  lu.assertEquals(tokens.short_duration(-1), "0s")
  lu.assertEquals(tokens.short_duration(59), "59s")
  lu.assertEquals(tokens.short_duration(3599), "59m")
  lu.assertEquals(tokens.short_duration(86399), "23h")
  lu.assertEquals(tokens.short_duration(86400 * 3), "3d")
  lu.assertEquals(tokens.short_duration(86400 * 800), "2y")
end

TestSecret = {}

-- The Secret kubeadm created on the real cluster, rebuilt from its decoded values.
function TestSecret:test_matches_kubeadm()
  local v = vector("bootstrap-token-secret.json")
  local now = tokens.parse_rfc3339(v.decoded.expiration) - 86400
  local s = tokens.secret({ token = v.decoded["token-id"] .. "." .. v.decoded["token-secret"], ttl = 86400,
                            usages = { "signing", "authentication" }, groups = { tokens.DEFAULT_GROUP } }, now)
  lu.assertEquals(s.apiVersion, v.apiVersion)
  lu.assertEquals(s.kind, v.kind)
  lu.assertEquals(s.type, v.type)
  lu.assertEquals(s.metadata, v.metadata)
  lu.assertEquals(s.data, v.data)
end

function TestSecret:test_description_expires_never()
  local s = tokens.secret({ token = "abcdef.0123456789abcdef", ttl = 0, usages = { "signing" }, description = "for ci" }, 0)
  lu.assertNil(s.data.expiration)
  lu.assertNil(s.data["auth-extra-groups"])
  lu.assertEquals(crypto.unbase64(s.data.description), "for ci")
  lu.assertEquals(crypto.unbase64(s.data["usage-bootstrap-signing"]), "true")
  s = tokens.secret({ token = "abcdef.0123456789abcdef", expires = 1795693839, ttl = 5 }, 0)
  lu.assertEquals(crypto.unbase64(s.data.expiration), "2026-11-26T11:50:39Z")
  lu.assertErrorMsgContains("tokens.secret", tokens.secret, { token = "bad" })
end

function TestSecret:test_from_secret()
  local v = vector("bootstrap-token-secret.json")
  local p = assert(tokens.from_secret(v))
  lu.assertEquals(p.token, "8mjsec.2copzlairpsqjfy6")
  lu.assertEquals(p.usages, { "authentication", "signing" })
  lu.assertEquals(p.groups, { tokens.DEFAULT_GROUP })
  lu.assertEquals(p.expires, 1795693839)
  lu.assertNil(p.description)
  -- round trip
  local s = tokens.secret({ token = p.token, expires = p.expires, usages = p.usages, groups = p.groups, description = "d" })
  local q = assert(tokens.from_secret(s))
  lu.assertEquals(q.description, "d")
  lu.assertTrue(tokens.same(q, { token = p.token, usages = { "signing", "authentication" }, groups = p.groups,
                                 description = "d", ttl = 60 }, p.expires - 10))
  lu.assertFalse(tokens.same(q, { token = p.token, usages = { "signing" }, groups = p.groups, description = "d" }, 0))
  lu.assertFalse(tokens.same(q, { token = p.token, usages = p.usages, groups = p.groups, description = "d" }, p.expires + 1))
end

function TestSecret:test_from_secret_bad()
  local v = vector("bootstrap-token-secret.json")
  local function try(mut, want)
    local o = json.decode(json.encode(v))
    mut(o)
    local ok, why = tokens.from_secret(o)
    lu.assertNil(ok)
    lu.assertStrContains(why, want)
    lu.assertStrContains(why, "Secret kube-system/")
  end
  try(function(o) o.type = "Opaque" end, "not of type bootstrap.kubernetes.io/token")
  try(function(o) o.data["token-secret"] = nil end, "no token-id or token-secret")
  try(function(o) o.metadata.name = "bootstrap-token-zzzzzz" end, "does not match token-id")
  try(function(o) o.data.expiration = crypto.base64("soon") end, "not an RFC 3339 time")
  try(function(o) o.data["token-id"] = "!!" end, "is not base64")
  try(function(o) o.data["token-secret"] = crypto.base64("SHORT") end, "do not form a valid bootstrap token")
end

function TestSecret:test_list_table()
  local now = 1795693839 - 3600 * 23 - 120
  local out = tokens.list_table({
    { token = "8mjsec.2copzlairpsqjfy6", expires = 1795693839, usages = { "authentication", "signing" },
      groups = { tokens.DEFAULT_GROUP }, description = "The default bootstrap token generated by 'kubeadm init'." },
    { token = "abcdef.0123456789abcdef", usages = {}, groups = {} },
  }, now)
  local want = table.concat({
    "TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION                                                EXTRA GROUPS",
    "8mjsec.2copzlairpsqjfy6   23h         2026-11-26T11:50:39Z   authentication,signing   The default bootstrap token generated by 'kubeadm init'.   system:bootstrappers:kubeadm:default-node-token",
    "abcdef.0123456789abcdef   <forever>   <never>                <none>                   <none>                                                     <none>",
  }, "\n") .. "\n"
  lu.assertEquals(out, want)
  -- one token as on a fresh cluster: kubeadm's fixed cell widths keep the columns
  out = tokens.list_table({ { token = "nmjtaw.4odcpohubso6x0mb", expires = 1711972457, usages = { "authentication", "signing" },
                              groups = { tokens.DEFAULT_GROUP }, description = "The default bootstrap token generated by 'kubeadm init'." } },
                          1711972457 - 22 * 3600 - 100)
  lu.assertEquals(out, table.concat({
    "TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION                                                EXTRA GROUPS",
    "nmjtaw.4odcpohubso6x0mb   22h         2024-04-01T11:54:17Z   authentication,signing   The default bootstrap token generated by 'kubeadm init'.   system:bootstrappers:kubeadm:default-node-token",
  }, "\n") .. "\n")
end

TestClusterInfo = {}

function TestClusterInfo:test_kubeconfig_matches_kubeadm()
  local v = vector("cluster-info-jws.json")
  local ca = crypto.unbase64(v.kubeconfig:match("certificate%-authority%-data: (%S+)"))
  local cm = tokens.cluster_info("https://127.0.0.1:6443", ca)
  lu.assertEquals(cm.data.kubeconfig, v.kubeconfig)
  lu.assertEquals(cm.metadata, { name = "cluster-info", namespace = "kube-public" })
  -- and what the bootstrap signer wrote for it verifies against that exact text
  lu.assertTrue(crypto.jws_verify(v.jws, cm.data.kubeconfig, v.token_id, v.token_secret))
end

function TestClusterInfo:test_signatures_are_the_bootstrap_signers()
  local v = vector("cluster-info-jws.json")
  local cm = { data = { kubeconfig = v.kubeconfig } }
  local now = 1795600000
  local signing = { token = v.token, usages = { "authentication", "signing" } }
  -- exactly what kube-controller-manager's bootstrap signer wrote for this token
  lu.assertEquals(tokens.signatures_patch(cm, { signing }, now), { data = { ["jws-kubeconfig-" .. v.token_id] = v.jws } })
  -- tokens the signer skips: no signing usage, expired; one still valid is signed
  local auth_only = { token = "aaaaaa.0123456789abcdef", usages = { "authentication" } }
  local expired = { token = "bbbbbb.0123456789abcdef", usages = { "signing" }, expires = now - 1 }
  local valid = { token = "cccccc.0123456789abcdef", usages = { "signing" }, expires = now + 60 }
  local p = tokens.signatures_patch(cm, { auth_only, expired, valid }, now)
  lu.assertEquals(p.data["jws-kubeconfig-cccccc"], crypto.jws_sign(v.kubeconfig, "cccccc", "0123456789abcdef"))
  lu.assertNil(p.data["jws-kubeconfig-aaaaaa"])
  lu.assertNil(p.data["jws-kubeconfig-bbbbbb"])
  -- already signed: nothing to send; a wrong signature (the text changed since) is replaced
  cm.data["jws-kubeconfig-" .. v.token_id] = v.jws
  lu.assertNil(tokens.signatures_patch(cm, { signing }, now))
  cm.data.kubeconfig = v.kubeconfig .. "\n"
  lu.assertNotEquals(tokens.signatures_patch(cm, { signing }, now).data["jws-kubeconfig-" .. v.token_id], v.jws)
  lu.assertNil(tokens.signatures_patch({ data = {} }, { signing }, now))
end

function TestClusterInfo:test_rbac()
  local r = tokens.cluster_info_rbac()
  lu.assertEquals(r[1].kind, "Role")
  lu.assertEquals(r[1].rules[1].resourceNames, { "cluster-info" })
  lu.assertEquals(r[2].subjects, { { apiGroup = "rbac.authorization.k8s.io", kind = "User", name = "system:anonymous" } })
  local names = {}
  for _, o in ipairs(tokens.node_rbac()) do names[#names + 1] = o.kind .. " " .. o.metadata.name .. " -> " .. (o.roleRef and o.roleRef.name or "") end
  lu.assertEquals(names, {
    "ClusterRole kubeadm:get-nodes -> ",
    "ClusterRoleBinding kubeadm:get-nodes -> kubeadm:get-nodes",
    "ClusterRoleBinding kubeadm:kubelet-bootstrap -> system:node-bootstrapper",
    "ClusterRoleBinding kubeadm:node-autoapprove-bootstrap -> system:certificates.k8s.io:certificatesigningrequests:nodeclient",
    "ClusterRoleBinding kubeadm:node-autoapprove-certificate-rotation -> system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
  })
  lu.assertEquals(tokens.node_rbac()[5].subjects[1].name, "system:nodes")
end

TestCerts = {}

-- kboot opens what kubeadm sealed, and kboot's own Secret has kubeadm's shape.
function TestCerts:test_open_kubeadm_secret()
  local v = vector("kubeadm-certs.json")
  local files = assert(tokens.open_certs_secret(v.secret, v.certificate_key))
  lu.assertEquals(files["ca.crt"], v.plaintext["ca.crt"])
  lu.assertEquals(files["sa.pub"], v.plaintext["sa.pub"])
  local wrong = v.certificate_key:sub(1, 63) .. (v.certificate_key:sub(64) == "0" and "1" or "0")
  local ok, why = tokens.open_certs_secret(v.secret, wrong)
  lu.assertNil(ok)
  lu.assertStrContains(why, "wrong certificate key?")
  ok, why = tokens.open_certs_secret(v.secret, "abc")
  lu.assertNil(ok)
  lu.assertStrContains(why, "64 hex characters")
end

function TestCerts:test_seal_round_trip_and_shape()
  local v = vector("kubeadm-certs.json")
  local names = {}
  for _, c in ipairs(tokens.certs_to_upload({ certificatesDir = "/etc/kubernetes/pki", etcd = { ["local"] = {} } })) do
    names[#names + 1] = c.name
  end
  local vnames = {}
  for k in pairs(v.secret.data) do vnames[#vnames + 1] = k end
  table.sort(vnames)
  lu.assertEquals(names, vnames)
  local owner = { metadata = { name = "bootstrap-token-47s7uy", uid = "u-1" } }
  local key = crypto.certificate_key()
  local s = tokens.certs_secret({ ["ca.crt"] = "CA", ["sa.key"] = "KEY" }, key, owner)
  lu.assertEquals(s.metadata.name, v.secret.metadata.name)
  lu.assertEquals(s.metadata.namespace, v.secret.metadata.namespace)
  local want = v.secret.metadata.ownerReferences[1]
  want.uid = "u-1"
  lu.assertEquals(s.metadata.ownerReferences, { want })
  lu.assertEquals(s.type, "Opaque")
  lu.assertEquals(#crypto.unbase64(s.data["ca.crt"]), 12 + 2 + 16)
  lu.assertEquals(tokens.open_certs_secret(s, key), { ["ca.crt"] = "CA", ["sa.key"] = "KEY" })
  lu.assertErrorMsgContains("64 hex", tokens.certs_secret, {}, "zz", owner)
  -- a file the uploader has not: kubeadm's empty entry, both ways
  s = tokens.certs_secret({ ["ca.crt"] = "CA", ["ca.key"] = "" }, key, owner)
  lu.assertEquals(s.data["ca.key"], "")
  lu.assertEquals(tokens.open_certs_secret(s, key), { ["ca.crt"] = "CA", ["ca.key"] = "" })
end

-- A Secret whose data is not what an upload makes: one line, never a Lua error.
function TestCerts:test_open_malformed_secret_one_line()
  local key = crypto.certificate_key()
  for _, c in ipairs({
    { { data = "x" }, "kubeadm-certs: data is not a mapping" },
    { { data = { ["ca.crt"] = 5 } }, 'kubeadm-certs: data["ca.crt"] is not a string' },
    { { data = { ["ca.crt"] = { "x" } } }, 'kubeadm-certs: data["ca.crt"] is not a string' },
    { { data = { ["ca.crt"] = "!!!" } }, "kubeadm-certs: ca.crt is not base64" },
    { { data = { ["ca.crt"] = crypto.base64("short") } }, "kubeadm-certs: cannot decrypt ca.crt" },
    { "x", "kubeadm-certs: data is not a mapping" },
  }) do
    local ok, files, why = pcall(tokens.open_certs_secret, c[1], key)
    lu.assertTrue(ok, files)
    lu.assertNil(files)
    lu.assertStrContains(why, c[2])
  end
  lu.assertEquals(tokens.open_certs_secret({}, key), {})
end

function TestCerts:test_external_etcd_and_token()
  local names = {}
  for _, c in ipairs(tokens.certs_to_upload({ certificatesDir = "/p", etcd = { external = {
      endpoints = { "https://e:2379" }, caFile = "/e/ca.crt", certFile = "/e/c.crt", keyFile = "/e/c.key" } } })) do
    names[#names + 1] = c.name .. "=" .. c.path
  end
  lu.assertEquals(names, { "ca.crt=/p/ca.crt", "ca.key=/p/ca.key", "external-etcd-ca.crt=/e/ca.crt",
                           "external-etcd.crt=/e/c.crt", "external-etcd.key=/e/c.key", "front-proxy-ca.crt=/p/front-proxy-ca.crt",
                           "front-proxy-ca.key=/p/front-proxy-ca.key", "sa.key=/p/sa.key", "sa.pub=/p/sa.pub" })
  local ct = tokens.certs_token()
  lu.assertTrue(crypto.token_valid(ct.token))
  local s = tokens.secret(ct, 0)
  lu.assertEquals(crypto.unbase64(s.data.expiration), "1970-01-01T02:00:00Z")
  lu.assertEquals(crypto.unbase64(s.data.description), "Proxy for managing TTL for the kubeadm-certs secret")
  lu.assertNil(s.data["usage-bootstrap-signing"])
  lu.assertNil(s.data["auth-extra-groups"])
end

TestJoin = {}

function TestJoin:test_join_command()
  local v = vector("kubeadm-certs.json")
  local kc = require("kboot.kubeconfig").build{ server = "https://10.0.0.1:6443", ca_pem = v.plaintext["ca.crt"], token = "x" }
  local p = assert(tokens.join_params(kc))
  lu.assertEquals(p.endpoint, "10.0.0.1:6443")
  -- the pin of the CA, computed independently with the openssl CLI
  local dir = t.tmpdir()
  t.write(dir .. "/ca.crt", v.plaintext["ca.crt"])
  local hex = t.must("openssl x509 -in " .. t.q(dir .. "/ca.crt") .. " -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum"):match("^(%x+)")
  lu.assertEquals(p.hashes, { "sha256:" .. hex })
  lu.assertEquals(tokens.join_command{ endpoint = p.endpoint, token = "abcdef.0123456789abcdef", hashes = p.hashes },
    "kboot join 10.0.0.1:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash sha256:" .. hex)
  lu.assertEquals(tokens.join_command{ endpoint = "e:6443", token = "abcdef.0123456789abcdef", hashes = { "sha256:00" },
                                       control_plane = true, certificate_key = "ff", program = "kubeadm" },
    "kubeadm join e:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash sha256:00 \\\n\t--control-plane --certificate-key ff")
  local bad = require("kboot.kubeconfig").build{ server = "https://h:1", ca_pem = "nothing", token = "x" }
  local ok, why = tokens.join_params(bad)
  lu.assertNil(ok)
  lu.assertStrContains(why, "no certificate")
  t.cleanup()
end

os.exit(lu.LuaUnit.run("-v"))

-- `kboot join`: kboot.join_config's defaults and conversion, and every bad input a clear line,
-- exit 2, before any request is sent and with nothing written under --root.
local lu = require("luaunit")
local t = require("testlib")
local jc = require("kboot.join_config")

local HOST = { hostname = "worker-1", default_address = "192.0.2.7" }
local TOKEN = "k8stst.q1w2e3r4t5y6u7i8"
local PIN = "sha256:" .. ("ab"):rep(32)

local function load(flags, text)
  return jc.load{ flags = flags, text = text, host = HOST }
end

TestJoinConfig = {}

function TestJoinConfig:test_flags_and_defaults()
  local p = assert(load{ endpoint = "10.0.0.10:6443", token = TOKEN, discovery_token_ca_cert_hash = { PIN } })
  local d = p.join
  lu.assertEquals(d.apiVersion, "kubeadm.k8s.io/v1beta4")
  lu.assertEquals(d.discovery.bootstrapToken, { token = TOKEN, apiServerEndpoint = "10.0.0.10:6443",
                                                caCertHashes = { PIN }, unsafeSkipCAVerification = false })
  lu.assertEquals(d.discovery.tlsBootstrapToken, TOKEN) -- --token sets both, as kubeadm
  lu.assertEquals(d.caCertPath, "/etc/kubernetes/pki/ca.crt")
  lu.assertEquals(d.nodeRegistration.name, "worker-1")
  lu.assertEquals(d.nodeRegistration.taints, {}) -- a worker registers untainted
  lu.assertNil(d.controlPlane)
  lu.assertEquals(d.timeouts.discovery, "5m0s")
  lu.assertEquals(d.timeouts.tlsBootstrap, "5m0s")
  -- a control-plane join: the control-plane taint and this host's address
  p = assert(load{ endpoint = "10.0.0.10:6443", token = TOKEN, discovery_token_ca_cert_hash = { PIN },
                   control_plane = true, certificate_key = ("0f"):rep(32) })
  lu.assertEquals(p.join.controlPlane.localAPIEndpoint, { advertiseAddress = "192.0.2.7", bindPort = 6443 })
  lu.assertEquals(p.join.nodeRegistration.taints[1].key, "node-role.kubernetes.io/control-plane")
end

function TestJoinConfig:test_v1beta3_file_converted_flags_win()
  local p = assert(load({ node_name = "from-flag" }, [[
apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
nodeRegistration:
  name: from-file
  kubeletExtraArgs: {node-labels: "a=b", v: "2"}
discovery:
  bootstrapToken: {token: k8stst.q1w2e3r4t5y6u7i8, apiServerEndpoint: "[::1]:6443", unsafeSkipCAVerification: true}
  timeout: 2m0s
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
]]))
  lu.assertEquals(p.join.nodeRegistration.name, "from-flag")
  lu.assertEquals(p.join.nodeRegistration.kubeletExtraArgs, { { name = "node-labels", value = "a=b" }, { name = "v", value = "2" } })
  lu.assertEquals(p.join.timeouts.discovery, "2m0s")
  lu.assertNil(p.join.discovery.timeout)
  lu.assertStrContains(p.warnings[1], "ignoring ClusterConfiguration")
end

local function problems(flags, text)
  local p, errs = load(flags, text)
  lu.assertNil(p)
  return table.concat(errs, "\n")
end

function TestJoinConfig:test_bad_input_names_field_and_flag()
  local base = function(o)
    local f = { endpoint = "10.0.0.10:6443", token = TOKEN, discovery_token_ca_cert_hash = { PIN } }
    for k, v in pairs(o) do f[k] = v end
    return f
  end
  lu.assertStrContains(problems(base{ token = "abcdef.0123456789ABCDEF" }), "bootstrapToken.token: ")
  lu.assertStrContains(problems(base{ endpoint = "10.0.0.10" }), '"10.0.0.10" has no port (want host:port, e.g. 10.0.0.10:6443) (the API server endpoint argument)')
  lu.assertStrContains(problems(base{ discovery_token_ca_cert_hash = { "md5:ab" } }), '[0] "md5:ab" is not sha256:<64 hex characters>')
  lu.assertStrContains(problems(base{ discovery_token_ca_cert_hash = {} }), "give at least one CA pin with --discovery-token-ca-cert-hash")
  lu.assertStrContains(problems(base{ discovery_file = "/x.conf" }), "bootstrapToken and file are mutually exclusive")
  lu.assertStrContains(problems{}, "no discovery: give the API server endpoint")
  lu.assertStrContains(problems(base{ certificate_key = ("0f"):rep(32) }), "--certificate-key only mean something with --control-plane")
  lu.assertStrContains(problems(base{ control_plane = true, certificate_key = "abc" }), "controlPlane.certificateKey: must be 64 hex")
  lu.assertStrContains(problems(base{ node_name = "Bad_Name" }), 'nodeRegistration.name: "Bad_Name" is not a valid node name')
  -- flags set addresses after the file's schema check: the same words as a file's value gets
  lu.assertStrContains(problems(base{ endpoint = "api_1.example.com:6443" }),
    'apiServerEndpoint: "api_1.example.com" is not a valid IP address or DNS name (the API server endpoint argument)')
  lu.assertStrContains(problems(base{ endpoint = "10.0.0.10:0" }), '"10.0.0.10:0" has an invalid port (1-65535)')
  lu.assertStrContains(problems(base{ control_plane = true, apiserver_advertise_address = "10.0.0.300" }),
    'localAPIEndpoint.advertiseAddress: "10.0.0.300" is not a valid IP address (--apiserver-advertise-address)')
  lu.assertStrContains(problems({}, "apiVersion: kubeadm.k8s.io/v1beta2\nkind: JoinConfiguration\n"), "kubeadm config migrate")
  lu.assertStrContains(problems({}, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nbogus: 1\n"), "JoinConfiguration.bogus")
  -- caCertPath is a host path as init's certificatesDir: absolute, not climbing above / (config_validate.host_path)
  local J = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ncaCertPath: %s\n"
  lu.assertStrContains(problems(base{}, J:format("/etc/kubernetes/../../../../tmp/ca.crt")),
    'JoinConfiguration.caCertPath: "/etc/kubernetes/../../../../tmp/ca.crt" climbs above / through ".."')
  lu.assertStrContains(problems(base{}, J:format("pki/ca.crt")), 'JoinConfiguration.caCertPath: "pki/ca.crt" must be an absolute path')
end

-- The binary: exit 2, one line per problem, nothing under --root, no connection attempted (the
-- endpoint is a port nothing listens on: reaching it would say "cluster-info")
TestJoinCli = {}
function TestJoinCli:tearDown() t.cleanup() end

function TestJoinCli:test_bad_input_exit_2_nothing_written()
  local root = t.tmpdir()
  local before = t.tree_hash(root)
  local ep = "127.0.0.1:" .. t.free_port()
  local cases = {
    { ep .. " --token k8stst.q1w2e3r4t5y6u7iX --discovery-token-ca-cert-hash " .. PIN, "bootstrapToken.token" },
    { ep .. " --token " .. TOKEN .. " --discovery-token-ca-cert-hash sha256:abc", "is not sha256:<64 hex characters>" },
    { "127.0.0.1 --token " .. TOKEN .. " --discovery-token-ca-cert-hash " .. PIN, "has no port" },
    { ep .. " --token " .. TOKEN .. " --discovery-token-ca-cert-hash " .. PIN .. " --discovery-file /x", "mutually exclusive" },
    { ep .. " --token " .. TOKEN .. " --discovery-token-ca-cert-hash " .. PIN .. " --apiserver-bind-port 7443", "only mean something with --control-plane" },
    { ep .. " " .. ep .. " --token " .. TOKEN, "unexpected argument" },
    { "phase bogus", 'unknown phase "bogus"' },
  }
  for _, c in ipairs(cases) do
    local ok, out, code = t.kboot("join " .. c[1] .. " --root " .. t.q(root))
    lu.assertFalse(ok, c[1])
    lu.assertEquals(code, 2, c[1] .. ": " .. out)
    lu.assertStrContains(out, c[2])
    lu.assertNotStrContains(out, "cluster-info")
    lu.assertNotStrContains(out, "q1w2e3r4") -- no token secret echoed
  end
  lu.assertEquals(t.tree_hash(root), before)
end

-- A bad discovery file (missing, a directory, not YAML, no cluster, no server, a CA that is not
-- base64 or not PEM): exit 1, one error line naming the file, nothing under --root.
function TestJoinCli:test_bad_discovery_file_one_line_nothing_written()
  local root = t.tmpdir()
  local before = t.tree_hash(root)
  local d = t.tmpdir()
  local ctx = "\ncontexts:\n- name: c\n  context: {cluster: c}\ncurrent-context: c\n"
  local head = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: "
  local cases = {
    { "missing", false, "cannot read the discovery file: %s: No such file or directory" },
    { "dir", nil, "cannot read the discovery file %s: Is a directory" },
    { "not-yaml", "clusters: [", "kubeconfig %s: yaml: line " },
    { "no-cluster", "apiVersion: v1\nkind: Config\n", "discovery file %s names no cluster" },
    { "no-server", head .. "{}" .. ctx, 'kubeconfig %s: cluster "c": missing server' },
    { "bad-base64", head .. "{server: 'https://127.0.0.1:1', certificate-authority-data: '!!!'}" .. ctx,
      'kubeconfig %s: cluster "c".certificate-authority-data: invalid base64' },
    { "not-pem", head .. "{server: 'https://127.0.0.1:1', certificate-authority-data: aGVsbG8=}" .. ctx,
      'discovery file %s: cluster "c": certificate-authority-data holds no PEM certificate' },
  }
  for _, c in ipairs(cases) do
    local path = d .. "/" .. c[1]
    if c[2] then t.write(path, c[2]) elseif c[2] == nil then t.must("mkdir " .. t.q(path)) end
    local ok, out, code = t.kboot("join --discovery-file " .. t.q(path) .. " --tls-bootstrap-token " .. TOKEN
      .. " --ignore-preflight-errors=all --root " .. t.q(root))
    lu.assertFalse(ok, c[1])
    lu.assertEquals(code, 1, c[1] .. ": " .. out)
    local errors = {}
    for line in out:gmatch("[^\n]+") do if line:find("^error: ") then errors[#errors + 1] = line end end
    lu.assertEquals(#errors, 1, c[1] .. ": " .. out)
    lu.assertStrContains(errors[1], c[3]:format(path), false, c[1])
    lu.assertNotStrContains(out, "q1w2e3r4")
  end
  lu.assertEquals(t.tree_hash(root), before)
end

-- Discovery that cannot reach the endpoint: one line naming it, exit 1, nothing written.
function TestJoinCli:test_unreachable_endpoint_one_line()
  local root = t.tmpdir()
  local ep = "127.0.0.1:" .. t.free_port()
  local d = t.tmpdir()
  t.write(d .. "/join.yaml", ([[
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken: {token: %s, apiServerEndpoint: "%s", caCertHashes: ["%s"]}
timeouts: {discovery: 1s}
]]):format(TOKEN, ep, PIN))
  local ok, out, code = t.kboot("join --config " .. t.q(d .. "/join.yaml") .. " --root " .. t.q(root))
  lu.assertFalse(ok)
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, "cannot fetch cluster-info from " .. ep .. " within 1s")
  lu.assertEquals(t.tree_hash(root), t.tree_hash(t.tmpdir()))
end

os.exit(lu.LuaUnit.run())

-- kboot.config: defaults as kubeadm, v1beta3 -> v1beta4 conversion, flags, validation paths, durations,
-- advertise address detection from fake /proc files. Files under tests/data/config need kboot.yaml.
local lu = require("luaunit")
local t = require("testlib")
local config = require("kboot.config")

local DATA = t.src .. "/tests/data/config"
local G = "kubeadm.k8s.io/"

local function load(docs, flags, extra)
  local o = { docs = docs, flags = flags, hostname = "testnode", read = function() return nil end }
  for k, v in pairs(extra or {}) do o[k] = v end
  return config.load(o)
end

local function must_load(docs, flags, extra)
  local p, errs = load(docs, flags, extra)
  lu.assertNotNil(p, errs and table.concat(errs, "\n"))
  return p
end

local function errors_of(docs, flags)
  local p, errs = load(docs, flags)
  lu.assertNil(p)
  return table.concat(errs, "\n")
end

local function yaml_ok()
  local ok, y = pcall(require, "kboot.yaml")
  return ok and type(y.decode_all) == "function"
end

TestDuration = {}
function TestDuration:test_parse()
  local cases = { ["8760h0m0s"] = 31536000, ["87600h0m0s"] = 315360000, ["1h30m"] = 5400, ["24h"] = 86400,
                  ["90s"] = 90, ["0"] = 0, ["0s"] = 0, ["1.5h"] = 5400, ["-1h"] = -3600, ["300ms"] = 0.3,
                  ["2m0s"] = 120 }
  for s, want in pairs(cases) do lu.assertEquals(config.duration(s), want, s) end
  lu.assertEquals(math.type(config.duration("8760h0m0s")), "integer")
  for _, bad in ipairs({ "", "1", "h", "1d", "1 h", "1h 2m", "abc", ".h", "1.5" }) do
    local v, err = config.duration(bad)
    lu.assertNil(v, bad)
    lu.assertStrContains(err, "invalid duration")
  end
  lu.assertNil(config.duration(5))
end
function TestDuration:test_format()
  lu.assertEquals(config.format_duration(31536000), "8760h0m0s")
  lu.assertEquals(config.format_duration(86400), "24h0m0s")
  lu.assertEquals(config.format_duration(61), "1m1s")
  lu.assertEquals(config.format_duration(5), "5s")
  lu.assertEquals(config.format_duration(0), "0s")
end

TestDefaults = {}
function TestDefaults:test_empty_config_gets_kubeadm_defaults()
  local p = must_load({}, { apiserver_advertise_address = "10.1.2.3" })
  local c, i = p.cluster, p.init
  lu.assertEquals(c.networking.serviceSubnet, "10.96.0.0/12")
  lu.assertEquals(c.networking.dnsDomain, "cluster.local")
  lu.assertEquals(c.networking.podSubnet, "")
  lu.assertEquals(c.imageRepository, "registry.k8s.io")
  lu.assertEquals(c.clusterName, "kubernetes")
  lu.assertEquals(c.certificatesDir, "/etc/kubernetes/pki")
  lu.assertEquals(c.encryptionAlgorithm, "RSA-2048")
  lu.assertEquals(c.etcd["local"].dataDir, "/var/lib/etcd")
  lu.assertEquals(c.kubernetesVersion, require("kboot.versions").default_version)
  lu.assertEquals(c.apiServer, { certSANs = {}, extraArgs = {}, extraVolumes = {}, extraEnvs = {} })
  lu.assertEquals(c.dns.disabled, false)
  lu.assertEquals(c.proxy.disabled, false)
  lu.assertEquals(i.localAPIEndpoint.bindPort, 6443)
  lu.assertEquals(i.nodeRegistration.criSocket, "unix:///var/run/containerd/containerd.sock")
  lu.assertEquals(i.nodeRegistration.taints, { { key = "node-role.kubernetes.io/control-plane", effect = "NoSchedule" } })
  lu.assertEquals(i.nodeRegistration.imagePullPolicy, "IfNotPresent")
  lu.assertEquals(i.bootstrapTokens, { { ttl = "24h0m0s", usages = { "signing", "authentication" },
    groups = { "system:bootstrappers:kubeadm:default-node-token" } } })
  lu.assertEquals(i.timeouts.controlPlaneComponentHealthCheck, "4m0s")
  lu.assertEquals(p.cert_validity, 365 * 86400)
  lu.assertEquals(p.ca_validity, 3650 * 86400)
  lu.assertEquals(p.node_name, "testnode")
  lu.assertEquals(p.advertise_address, "10.1.2.3")
  lu.assertEquals(p.bind_port, 6443)
  lu.assertEquals(p.version.minor, 34)
end

function TestDefaults:test_hostname_lowercased_and_loopback_warning()
  local p, _, w = config.load({ docs = {}, hostname = "MyHost\n", read = function() return nil end })
  lu.assertEquals(p.node_name, "myhost")
  lu.assertEquals(p.advertise_address, "127.0.0.1")
  local all = table.concat(w, "\n")
  lu.assertStrContains(all, "could not find the default-route address")
  lu.assertStrContains(all, "loopback")
end

function TestDefaults:test_empty_taints_kept_empty()
  local p = must_load({ { apiVersion = G .. "v1beta4", kind = "InitConfiguration",
    nodeRegistration = { taints = setmetatable({}, require("kboot.yaml").array_mt or {}) } } })
  lu.assertEquals(#p.init.nodeRegistration.taints, 0)
end

TestConvert = {}
function TestConvert:test_v1beta3_maps_become_lists()
  local p = must_load({
    { apiVersion = G .. "v1beta3", kind = "InitConfiguration",
      nodeRegistration = { kubeletExtraArgs = { ["node-ip"] = "10.0.0.1", ["max-pods"] = "10" } },
      localAPIEndpoint = { advertiseAddress = "10.0.0.1" } },
    { apiVersion = G .. "v1beta3", kind = "ClusterConfiguration", kubernetesVersion = "v1.29.1",
      apiServer = { extraArgs = { b = "2", a = "1" }, timeoutForControlPlane = "6m0s" },
      etcd = { ["local"] = { extraArgs = { ["quota-backend-bytes"] = "1" } } } } })
  lu.assertEquals(p.init.nodeRegistration.kubeletExtraArgs, { { name = "max-pods", value = "10" }, { name = "node-ip", value = "10.0.0.1" } })
  lu.assertEquals(p.cluster.apiServer.extraArgs, { { name = "a", value = "1" }, { name = "b", value = "2" } })
  lu.assertEquals(p.cluster.etcd["local"].extraArgs, { { name = "quota-backend-bytes", value = "1" } })
  lu.assertNil(p.cluster.apiServer.timeoutForControlPlane)
  lu.assertEquals(p.init.timeouts.controlPlaneComponentHealthCheck, "6m0s")
  lu.assertEquals(p.cluster.apiVersion, G .. "v1beta4")
  lu.assertEquals(p.version.etcd, "3.5.10-0")
end

TestFlags = {}
function TestFlags:test_flags_override_file()
  local p = must_load({ { apiVersion = G .. "v1beta4", kind = "ClusterConfiguration",
                          networking = { podSubnet = "10.1.0.0/16" }, clusterName = "x" } }, {
    apiserver_advertise_address = "192.168.1.2", apiserver_bind_port = "7443",
    apiserver_cert_extra_sans = { "a.example.com", "10.9.9.9" }, cert_dir = "/srv/pki",
    control_plane_endpoint = "lb.example.com", kubernetes_version = "v1.31.2", node_name = "n1",
    pod_network_cidr = "10.244.0.0/16", service_cidr = "10.100.0.0/16", service_dns_domain = "corp.local",
    image_repository = "reg.local/k8s", skip_phases = { "preflight" }, ignore_preflight_errors = { "Swap" },
    token = "abcdef.0123456789abcdef", token_ttl = "2h", certificate_key = ("ab"):rep(32),
  })
  lu.assertEquals(p.advertise_address, "192.168.1.2")
  lu.assertEquals(p.bind_port, 7443)
  lu.assertEquals(p.cluster.apiServer.certSANs, { "a.example.com", "10.9.9.9" })
  lu.assertEquals(p.cluster.certificatesDir, "/srv/pki")
  lu.assertEquals(p.cluster.controlPlaneEndpoint, "lb.example.com")
  lu.assertEquals(p.cluster.kubernetesVersion, "v1.31.2")
  lu.assertEquals(p.node_name, "n1")
  lu.assertEquals(p.cluster.networking, { podSubnet = "10.244.0.0/16", serviceSubnet = "10.100.0.0/16", dnsDomain = "corp.local" })
  lu.assertEquals(p.cluster.clusterName, "x")
  lu.assertEquals(p.cluster.imageRepository, "reg.local/k8s")
  lu.assertEquals(p.init.skipPhases, { "preflight" })
  lu.assertEquals(p.init.nodeRegistration.ignorePreflightErrors, { "Swap" })
  lu.assertEquals(p.init.bootstrapTokens[1].token, "abcdef.0123456789abcdef")
  lu.assertEquals(p.init.bootstrapTokens[1].ttl, "2h")
  lu.assertEquals(p.init.certificateKey, ("ab"):rep(32))
end

function TestFlags:test_given_table_respected_and_bad_flag_values_named()
  -- kboot.cli opts: only flags in _given count (defaults in opts are ignored)
  local p = must_load({}, { node_name = "ignored", apiserver_advertise_address = "10.0.0.1",
    _given = { ["apiserver-advertise-address"] = true } })
  lu.assertEquals(p.node_name, "testnode")
  local errs = errors_of({}, { apiserver_bind_port = "x", apiserver_advertise_address = "1.2.3.4" })
  lu.assertStrContains(errs, "InitConfiguration.localAPIEndpoint.bindPort: \"x\" is not a port number (from --apiserver-bind-port)")
  errs = errors_of({}, { token_ttl = "1 day", apiserver_advertise_address = "1.2.3.4" })
  lu.assertStrContains(errs, "InitConfiguration.bootstrapTokens[0].ttl: invalid duration \"1 day\"")
  errs = errors_of({}, { token = "bad", apiserver_advertise_address = "1.2.3.4" })
  lu.assertStrContains(errs, "InitConfiguration.bootstrapTokens[0].token: \"bad\" is not a valid bootstrap token")
  errs = errors_of({}, { service_cidr = "10.96.0.0/12", pod_network_cidr = "10.100.0.0/16", apiserver_advertise_address = "1.2.3.4" })
  lu.assertStrContains(errs, "ClusterConfiguration.networking.podSubnet: 10.100.0.0/16 overlaps the service subnet 10.96.0.0/12")
end

TestValidate = {}
function TestValidate:test_many_problems_reported_together()
  local errs = errors_of({ { apiVersion = G .. "v1beta4", kind = "ClusterConfiguration",
    networking = { serviceSubnet = "10.96.0.0/30", dnsDomain = "UPPER" }, encryptionAlgorithm = "DSA",
    kubernetesVersion = "v9.0.0" } })
  lu.assertStrContains(errs, "serviceSubnet: 10.96.0.0/30 is too small")
  lu.assertStrContains(errs, "dnsDomain: \"UPPER\" is not a valid DNS domain")
  lu.assertStrContains(errs, "encryptionAlgorithm: unknown algorithm \"DSA\"")
  lu.assertStrContains(errs, "kubernetesVersion: unsupported Kubernetes version v9.0.0")
end

function TestValidate:test_helpers()
  lu.assertTrue(config.is_token("abcdef.0123456789abcdef"))
  lu.assertFalse(config.is_token("abcdef.0123456789abcde"))
  lu.assertFalse(config.is_token("abcdefg.123456789abcdef"))
  lu.assertTrue(config.is_dns_subdomain("a-b.c"))
  lu.assertFalse(config.is_dns_subdomain("-a"))
  lu.assertFalse(config.is_dns_subdomain(("a"):rep(64)))
  lu.assertEquals({ config.split_host_port("[fd00::1]:6443") }, { "fd00::1", 6443 })
  lu.assertEquals({ config.split_host_port("lb:443") }, { "lb", 443 })
  lu.assertEquals({ config.split_host_port("fd00::1") }, { "fd00::1" })
  lu.assertNil(config.split_host_port("lb:"))
end

TestDetect = {}
local ROUTE = [[
Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	0100A8C0	0003	0	0	100	00000000	0	0	0
eth0	0000A8C0	00000000	0001	0	0	100	00FFFFFF	0	0	0
docker0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
]]
local TRIE = [[
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     |-- 127.0.0.1
        /32 host LOCAL
     +-- 172.17.0.0/16 2 0 2
        |-- 172.17.0.1
           /32 host LOCAL
     +-- 192.168.0.0/24 2 0 2
        |-- 192.168.0.0
           /24 link UNICAST
        |-- 192.168.0.42
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
]]
function TestDetect:test_default_route_interface_address()
  local files = { ["/proc/net/route"] = ROUTE, ["/proc/net/fib_trie"] = TRIE }
  lu.assertEquals(config.detect_address(function(p) return files[p] end), "192.168.0.42")
  local p = must_load({}, nil, { read = function(path) return files[path] end })
  lu.assertEquals(p.advertise_address, "192.168.0.42")
end
function TestDetect:test_no_default_route()
  local files = { ["/proc/net/route"] = ROUTE:gsub("eth0\t00000000[^\n]*\n", ""), ["/proc/net/fib_trie"] = TRIE }
  local ip, why = config.detect_address(function(p) return files[p] end)
  lu.assertNil(ip)
  lu.assertStrContains(why, "no default route")
end
function TestDetect:test_real_host()
  -- this machine's own /proc: either an address or a clear reason, never an error
  local function read(p) local f = io.open(p) if not f then return nil end local s = f:read("a") f:close() return s end
  local ip, why = config.detect_address(read)
  lu.assertTrue(ip ~= nil and require("kboot.net").is_ip(ip) or type(why) == "string")
  -- iproute2 is the peer: the first address of the default-route interface
  local ok, dev = t.sh("ip -4 route show default | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p' | head -1")
  dev = dev and dev:gsub("%s+$", "")
  if not ok or dev == "" then lu.skip("no iproute2 or no default route here") end
  local addrs = t.must("ip -4 -o addr show dev " .. t.q(dev))
  lu.assertNotNil(ip, why)
  lu.assertStrContains(addrs, " inet " .. ip .. "/")
end

TestFiles = {}
function TestFiles:setUp() if not yaml_ok() then lu.skip("kboot.yaml not in this build yet") end end

function TestFiles:test_good_files()
  for _, name in ipairs({ "v1beta4-init-defaults", "v1beta3-init-defaults", "v1beta3-full", "v1beta4-full" }) do
    local p, errs = config.load({ file = DATA .. "/good/" .. name .. ".yaml", hostname = "h", read = function() return nil end })
    lu.assertNotNil(p, name .. ": " .. (errs and table.concat(errs, "\n") or ""))
  end
end

function TestFiles:test_init_defaults_exact()
  local p = config.load({ file = DATA .. "/good/v1beta4-init-defaults.yaml", read = function() return nil end })
  lu.assertEquals(p.node_name, "node")
  lu.assertEquals(p.advertise_address, "1.2.3.4")
  lu.assertEquals(p.cluster.kubernetesVersion, "v1.31.0")
  lu.assertEquals(p.version.etcd, "3.5.15-0")
  lu.assertEquals(p.init.bootstrapTokens[1].token, "abcdef.0123456789abcdef")
  lu.assertEquals(#p.init.nodeRegistration.taints, 1) -- "taints: null" means the default taint
  local p3 = config.load({ file = DATA .. "/good/v1beta3-init-defaults.yaml", read = function() return nil end })
  lu.assertEquals(p3.cluster.kubernetesVersion, "v1.30.0")
  lu.assertEquals(p3.init.timeouts.controlPlaneComponentHealthCheck, "4m0s")
end

function TestFiles:test_full_files()
  local p = config.load({ file = DATA .. "/good/v1beta3-full.yaml", read = function() return nil end })
  lu.assertEquals(p.init.nodeRegistration.taints, {})
  lu.assertEquals(p.cluster.apiServer.extraArgs[2], { name = "authorization-mode", value = "Node,RBAC" })
  lu.assertEquals(p.kubelet.maxPods, 200)
  lu.assertEquals(p.kubeproxy.mode, "ipvs")
  lu.assertEquals(p.cluster.etcd["local"].dataDir, "/data/etcd")
  local p4 = config.load({ file = DATA .. "/good/v1beta4-full.yaml", read = function() return nil end })
  lu.assertEquals(p4.cert_validity, 2160 * 3600)
  lu.assertEquals(p4.ca_validity, 43800 * 3600)
  lu.assertEquals(p4.bind_port, 6444)
  lu.assertEquals(p4.cluster.encryptionAlgorithm, "ECDSA-P256")
  lu.assertEquals(p4.cluster.scheduler.extraVolumes[1].readOnly, true)
end

function TestFiles:test_bad_files_name_the_field()
  local names = t.must("ls " .. t.q(DATA .. "/bad"))
  local n = 0
  for name in names:gmatch("[^\n]+") do
    local path = DATA .. "/bad/" .. name
    local want = t.read(path):match("^# expect: ([^\n]+)")
    local p, errs = config.load({ file = path, hostname = "h", read = function() return nil end })
    lu.assertNil(p, name)
    lu.assertStrContains(table.concat(errs, "\n"), want, false)
    n = n + 1
  end
  lu.assertTrue(n >= 30)
end

os.exit(lu.LuaUnit.run("-v"))

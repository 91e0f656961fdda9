-- kboot.config: defaults as kubeadm, v1beta3 -> v1beta4 conversion, flags, validation paths, the
-- advertise address and node name from the host facts it is given, the files under tests/data/config.
local lu = require("luaunit")
local t = require("testlib")
local config = require("kboot.config")

local DATA = t.src .. "/tests/data/config"
local G = "kubeadm.k8s.io/"

local function load(docs, flags, extra)
  local o = { docs = docs, flags = flags, host = { hostname = "testnode" } }
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
  lu.assertEquals(p.init.nodeRegistration.name, "testnode")
  lu.assertEquals(p.init.localAPIEndpoint.advertiseAddress, "10.1.2.3")
  lu.assertEquals(p.init.localAPIEndpoint.bindPort, 6443)
  lu.assertEquals(p.version.minor, 34)
end

function TestDefaults:test_host_name_and_loopback_warning()
  local p, _, w = config.load({ docs = {}, host = { hostname = "myhost" } })
  lu.assertEquals(p.init.nodeRegistration.name, "myhost")
  lu.assertEquals(p.init.localAPIEndpoint.advertiseAddress, "127.0.0.1")
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
  lu.assertEquals(p.init.localAPIEndpoint.advertiseAddress, "192.168.1.2")
  lu.assertEquals(p.init.localAPIEndpoint.bindPort, 7443)
  lu.assertEquals(p.cluster.apiServer.certSANs, { "a.example.com", "10.9.9.9" })
  lu.assertEquals(p.cluster.certificatesDir, "/srv/pki")
  lu.assertEquals(p.cluster.controlPlaneEndpoint, "lb.example.com")
  lu.assertEquals(p.cluster.kubernetesVersion, "v1.31.2")
  lu.assertEquals(p.init.nodeRegistration.name, "n1")
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
  lu.assertEquals(p.init.nodeRegistration.name, "testnode")
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

function TestValidate:test_bootstrap_tokens_follow_kboot_tokens_rules()
  local G = "kubeadm.k8s.io/v1beta4"
  local errs = errors_of({ { apiVersion = G, kind = "InitConfiguration",
    localAPIEndpoint = { advertiseAddress = "10.0.0.1" },
    bootstrapTokens = { { token = "abcdef.0123456789abcdef", ttl = "-1h", usages = { "signing", "sign" },
                          groups = { "system:bootstrappers:ok", "system:masters" } } } } })
  lu.assertStrContains(errs, 'InitConfiguration.bootstrapTokens[0].ttl: TTL "-1h" is negative')
  lu.assertStrContains(errs, 'InitConfiguration.bootstrapTokens[0].usages[1]: unknown usage "sign" (want signing or authentication)')
  lu.assertStrContains(errs, 'InitConfiguration.bootstrapTokens[0].groups[1]: bootstrap group "system:masters" is invalid')
  lu.assertNotStrContains(errs, "groups[0]")
  lu.assertNotStrContains(errs, "usages[0]")
  lu.assertNotStrContains(errs, ".token:")
end
function TestValidate:test_paths_climbing_above_the_root_name_the_field()
  local cc = { apiVersion = G .. "v1beta4", kind = "ClusterConfiguration",
    certificatesDir = "/etc/kubernetes/../../../../tmp/x", etcd = { ["local"] = { dataDir = "/var/lib/../../../x" } } }
  local errs = errors_of({ cc }, { apiserver_advertise_address = "10.0.0.1" })
  lu.assertStrContains(errs, 'ClusterConfiguration.certificatesDir: "/etc/kubernetes/../../../../tmp/x" climbs above / through ".."')
  lu.assertStrContains(errs, 'ClusterConfiguration.etcd.local.dataDir: "/var/lib/../../../x" climbs above / through ".."')
  cc.etcd = { external = { endpoints = { "https://10.0.0.2:2379" }, caFile = "/../ca.crt", certFile = "/c", keyFile = "/k" } }
  errs = errors_of({ cc }, { apiserver_advertise_address = "10.0.0.1" })
  lu.assertStrContains(errs, 'ClusterConfiguration.etcd.external.caFile: "/../ca.crt" climbs above / through ".."')
  -- a ".." that stays below / is a path like any other
  cc.certificatesDir, cc.etcd = "/etc/kubernetes/../pki", nil
  lu.assertEquals(must_load({ cc }, { apiserver_advertise_address = "10.0.0.1" }).cluster.certificatesDir, "/etc/kubernetes/../pki")
end

function TestValidate:test_bootstrap_token_groups_need_authentication_as_kubeadm()
  -- kubeadm (v1.20 run, v1.31 read) defaults an empty usages or groups list as a missing one, then
  -- refuses groups, given or defaulted, on a token that does not authenticate
  local G = "kubeadm.k8s.io/v1beta4"
  local function init(t)
    return { { apiVersion = G, kind = "InitConfiguration", localAPIEndpoint = { advertiseAddress = "10.0.0.1" },
               bootstrapTokens = { t } } }
  end
  local want = 'InitConfiguration.bootstrapTokens[0].groups: token groups (system:bootstrappers:kubeadm:default-node-token) '
    .. 'cannot be specified unless usages includes "authentication"'
  lu.assertStrContains(errors_of(init{ token = "abcdef.0123456789abcdef", usages = { "signing" } }), want)
  lu.assertStrContains(errors_of(init{ token = "abcdef.0123456789abcdef", usages = { "signing" }, groups = {} }), want)
  lu.assertStrContains(errors_of(init{ usages = { "signing" }, groups = { "system:bootstrappers:a", "system:bootstrappers:b" } }),
    "groups: token groups (system:bootstrappers:a,system:bootstrappers:b) cannot be specified")
  local p = must_load(init{ token = "abcdef.0123456789abcdef", usages = {}, groups = {} })
  lu.assertEquals(p.init.bootstrapTokens[1].usages, { "signing", "authentication" })
  lu.assertEquals(p.init.bootstrapTokens[1].groups, { "system:bootstrappers:kubeadm:default-node-token" })
  must_load(init{ usages = { "authentication" } })
end

function TestValidate:test_many_problems_reported_together()
  local errs = errors_of({ { apiVersion = G .. "v1beta4", kind = "ClusterConfiguration",
    networking = { serviceSubnet = "10.96.0.0/30", dnsDomain = "UPPER" }, encryptionAlgorithm = "DSA",
    kubernetesVersion = "v9.0.0" } })
  lu.assertStrContains(errs, "serviceSubnet: 10.96.0.0/30 is too small")
  lu.assertStrContains(errs, "dnsDomain: \"UPPER\" is not a valid DNS domain")
  lu.assertStrContains(errs, "encryptionAlgorithm: unknown algorithm \"DSA\"")
  lu.assertStrContains(errs, "kubernetesVersion: unsupported Kubernetes version v9.0.0")
end

TestHost = {}
function TestHost:test_empty_address_and_name_come_from_the_host_facts()
  local p = must_load({}, nil, { host = { hostname = "h1", default_address = "192.168.0.42" } })
  lu.assertEquals(p.init.localAPIEndpoint.advertiseAddress, "192.168.0.42")
  lu.assertEquals(p.init.nodeRegistration.name, "h1")
  -- explicit values win, and the host is not asked
  local asked = {}
  local host = setmetatable({}, { __index = function(_, k) asked[#asked + 1] = k end })
  p = must_load({}, { apiserver_advertise_address = "10.0.0.1", node_name = "n1" }, { host = host })
  lu.assertEquals(p.init.localAPIEndpoint.advertiseAddress, "10.0.0.1")
  lu.assertEquals(asked, {})
end
function TestHost:test_no_address_falls_back_to_loopback_with_the_reason()
  local p, _, w = config.load({ docs = {}, host = { default_address_err = "no default route in /proc/net/route" } })
  lu.assertEquals(p.init.localAPIEndpoint.advertiseAddress, "127.0.0.1")
  lu.assertEquals(p.init.nodeRegistration.name, "localhost")
  lu.assertStrContains(table.concat(w, "\n"), "could not find the default-route address (no default route in /proc/net/route)")
end

TestFiles = {}
function TestFiles:test_good_files()
  for _, name in ipairs({ "v1beta4-init-defaults", "v1beta3-init-defaults", "v1beta3-full", "v1beta4-full" }) do
    local p, errs = config.load({ file = DATA .. "/good/" .. name .. ".yaml", host = { hostname = "h" } })
    lu.assertNotNil(p, name .. ": " .. (errs and table.concat(errs, "\n") or ""))
  end
end

function TestFiles:test_init_defaults_exact()
  local p = config.load({ file = DATA .. "/good/v1beta4-init-defaults.yaml", host = {} })
  lu.assertEquals(p.init.nodeRegistration.name, "node")
  lu.assertEquals(p.init.localAPIEndpoint.advertiseAddress, "1.2.3.4")
  lu.assertEquals(p.cluster.kubernetesVersion, "v1.31.0")
  lu.assertEquals(p.version.etcd, "3.5.15-0")
  lu.assertEquals(p.init.bootstrapTokens[1].token, "abcdef.0123456789abcdef")
  lu.assertEquals(#p.init.nodeRegistration.taints, 1) -- "taints: null" means the default taint
  local p3 = config.load({ file = DATA .. "/good/v1beta3-init-defaults.yaml", host = {} })
  lu.assertEquals(p3.cluster.kubernetesVersion, "v1.30.0")
  lu.assertEquals(p3.init.timeouts.controlPlaneComponentHealthCheck, "4m0s")
end

function TestFiles:test_full_files()
  local p = config.load({ file = DATA .. "/good/v1beta3-full.yaml", host = {} })
  lu.assertEquals(p.init.nodeRegistration.taints, {})
  lu.assertEquals(p.cluster.apiServer.extraArgs[2], { name = "authorization-mode", value = "Node,RBAC" })
  lu.assertEquals(p.kubelet.maxPods, 200)
  lu.assertEquals(p.kubeproxy.mode, "ipvs")
  lu.assertEquals(p.cluster.etcd["local"].dataDir, "/data/etcd")
  local p4 = config.load({ file = DATA .. "/good/v1beta4-full.yaml", host = {} })
  lu.assertEquals(p4.cert_validity, 2160 * 3600)
  lu.assertEquals(p4.ca_validity, 43800 * 3600)
  lu.assertEquals(p4.init.localAPIEndpoint.bindPort, 6444)
  lu.assertEquals(p4.cluster.encryptionAlgorithm, "ECDSA-P256")
  lu.assertEquals(p4.cluster.scheduler.extraVolumes[1].readOnly, true)
end

function TestFiles:test_bad_files_name_the_field()
  local names = t.must("ls " .. t.q(DATA .. "/bad"))
  local n = 0
  for name in names:gmatch("[^\n]+") do
    local path = DATA .. "/bad/" .. name
    local want = t.read(path):match("^# expect: ([^\n]+)")
    local p, errs = config.load({ file = path, host = { hostname = "h" } })
    lu.assertNil(p, name)
    lu.assertStrContains(table.concat(errs, "\n"), want, false)
    n = n + 1
  end
  lu.assertTrue(n >= 30)
end


-- A document that fails its type check is not converted or defaulted: one line naming the field.
TestTyped = {}
function TestTyped:test_join_v1beta3_not_converted_after_a_type_error()
  local jc = require("kboot.join_config")
  local p, errs = jc.load({ text = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\n"
    .. "nodeRegistration: {kubeletExtraArgs: [a]}\ndiscovery: {timeout: 5}\n", host = {} })
  lu.assertNil(p)
  lu.assertEquals(errs, { "JoinConfiguration.discovery.timeout: must be a duration such as \"24h0m0s\", got number 5",
                          "JoinConfiguration.nodeRegistration.kubeletExtraArgs: must be a mapping, got a list" })
end

function TestTyped:test_every_problem_one_line_with_the_value()
  local p, errs = config.load({ text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
    .. "networking: [1]\nfeatureGates: {a: true, 1: true}\nclusterName: {a: 1}\n", host = {} })
  lu.assertNil(p)
  lu.assertEquals(errs, { "ClusterConfiguration.clusterName: must be a string, got a mapping",
                          "ClusterConfiguration.featureGates: field names must be strings, got number 1",
                          "ClusterConfiguration.networking: must be a mapping, got a list" })
end

function TestTyped:test_component_configs_open_but_typed()
  local base = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
  local p = config.load({ text = base .. "someFutureField: 1\nsystemReserved: {cpu: 500m, memory: 1Gi, pid: 100}\n", host = {} })
  lu.assertNotNil(p)
  local _, errs = config.load({ text = base .. "rotateCertificates: \"no\"\n", host = {} })
  lu.assertEquals(errs, { 'KubeletConfiguration.rotateCertificates: must be true or false, got string "no"' })
end

-- The address types accept what kubeadm, the kubelet and kube-proxy accept: IPv6, dual-stack pairs,
-- a host without a port, "" for "not set"; each refusal is one line naming the field.
function TestTyped:test_addresses_typed_in_every_kind()
  local p, errs = config.load({ text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
    .. "controlPlaneEndpoint: lb.example.com\nnetworking: {podSubnet: '10.244.0.0/16, fd00:10:244::/56', serviceSubnet: ''}\n"
    .. "---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
    .. "bindAddress: '::'\nclusterCIDR: 'fd00::/48'\nmetricsBindAddress: '[::1]:10249'\nhealthzBindAddress: ''\n"
    .. "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
    .. "address: 0.0.0.0\nclusterDNS: [10.96.0.10, 'fd00::a']\n", host = {} })
  lu.assertNotNil(p, errs and table.concat(errs, "\n"))
  p, errs = config.load({ text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
    .. "localAPIEndpoint: {advertiseAddress: 10.0.0.1/24}\n---\napiVersion: kubeadm.k8s.io/v1beta4\n"
    .. "kind: ClusterConfiguration\ncontrolPlaneEndpoint: 'lb.example.com:'\nnetworking: {serviceSubnet: true}\n", host = {} })
  lu.assertEquals(errs, { 'InitConfiguration.localAPIEndpoint.advertiseAddress: "10.0.0.1/24" is not a valid IP address',
                          'ClusterConfiguration.controlPlaneEndpoint: "lb.example.com:" has an empty port',
                          'ClusterConfiguration.networking.serviceSubnet: must be a CIDR such as "10.96.0.0/12", got boolean true' })
  -- a join names its endpoint's problem before any default or flag is applied
  p, errs = require("kboot.join_config").load({ text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
    .. "discovery: {bootstrapToken: {apiServerEndpoint: 'api:http', token: abcdef.0123456789abcdef, unsafeSkipCAVerification: true}}\n", host = {} })
  lu.assertEquals(errs, { 'JoinConfiguration.discovery.bootstrapToken.apiServerEndpoint: "api:http" is not host[:port]' })
end

-- certificateValidityPeriod: Go's whole syntax, at least a minute, at most Go's range (which ends
-- long before 9999-12-31, an X.509 time's last).
function TestTyped:test_validity_periods_bounds()
  local function period(v)
    return config.load({ text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
      .. "certificateValidityPeriod: '" .. v .. "'\n", host = {} })
  end
  lu.assertEquals(period("1m").cert_validity, 60)
  lu.assertEquals(period("1h30m").cert_validity, 5400)
  lu.assertEquals(period("1.5h").cert_validity, 5400)
  lu.assertEquals(period("2562047h").cert_validity, 2562047 * 3600)
  local _, errs = period("59.5s")
  lu.assertEquals(errs, { 'ClusterConfiguration.certificateValidityPeriod: "59.5s" must be whole seconds' })
  _, errs = period("30s")
  lu.assertEquals(errs, { 'ClusterConfiguration.certificateValidityPeriod: "30s" is shorter than a minute (1m0s)' })
  local v = require("kboot.config_validate")
  errs = {}
  lu.assertNil(v.validity_period("2562047h", "X", errs, v.X509_LAST - 3600))
  lu.assertEquals(errs, { 'X: "2562047h" ends after 9999-12-31, the last time an X.509 certificate can hold' })
end

os.exit(lu.LuaUnit.run("-v"))

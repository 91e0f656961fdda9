-- kubeadm configuration for `kboot init`: load InitConfiguration / ClusterConfiguration (v1beta3 or
-- v1beta4, plus optional KubeletConfiguration / KubeProxyConfiguration), convert to the v1beta4 shape,
-- apply kubeadm's defaults and the command-line flags, validate, and return the ctx parts phases use.
-- Every problem is one "Kind.field.path: what is wrong" line; nothing is written here.
local net = require("kboot.net")
local versions = require("kboot.versions")
local schema = require("kboot.config_schema")
local time = require("kboot.time")
local duration = time.parse_duration

local M = {}

M.GROUP = "kubeadm.k8s.io"
M.DEFAULT_CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"
M.DEFAULT_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
M.ALGORITHMS = { ["RSA-2048"] = true, ["RSA-3072"] = true, ["RSA-4096"] = true,
                 ["ECDSA-P256"] = true, ["ECDSA-P384"] = true }
-- kubeadm's own feature gates (cmd/kubeadm/app/features); anything else is an error.
M.FEATURE_GATES = { PublicKeysECDSA = true, RootlessControlPlane = true, EtcdLearnerMode = true,
                    WaitForAllControlPlaneComponents = true, ControlPlaneKubeletLocalMode = true,
                    NodeLocalCRISocket = true }

---------------------------------------------------------------------------------------------------
-- small helpers
local null = require("cjson").null
local function isnull(v) return v == nil or v == null end

local array_mt = require("kboot.yaml").array_mt

local function is_array(t)
  if type(t) ~= "table" then return false end
  local mt = getmetatable(t)
  if mt and mt == array_mt then return true end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t and (n > 0 or mt ~= nil and mt.__name == "array")
end
M.is_array = is_array

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end
M.copy = copy

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

---------------------------------------------------------------------------------------------------
-- check_schema(doc, schema, path, errs): appends "path.to.field: problem" lines (kboot.join_config too)
local check = schema.check
M.check_schema = check

-- Drop YAML nulls so "field: null" means "not set", as Go's decoder does (taints handled by caller).
local function strip_nulls(v)
  if type(v) ~= "table" then return v end
  for k, x in pairs(v) do
    if isnull(x) then v[k] = nil else strip_nulls(x) end
  end
  return v
end
M.strip_nulls = strip_nulls

---------------------------------------------------------------------------------------------------
-- v1beta3 -> v1beta4
local function args_list(m)
  if m == nil then return nil end
  local out = {}
  for _, k in ipairs(sorted_keys(m)) do out[#out + 1] = { name = k, value = m[k] } end
  return out
end
M.args_list = args_list

local function convert_v1beta3(kind, d)
  d = copy(d)
  d.apiVersion = M.GROUP .. "/v1beta4"
  if kind == "InitConfiguration" then
    local nr = d.nodeRegistration
    if nr and nr.kubeletExtraArgs then nr.kubeletExtraArgs = args_list(nr.kubeletExtraArgs) end
  else
    for _, c in ipairs({ "apiServer", "controllerManager", "scheduler" }) do
      if d[c] and d[c].extraArgs then d[c].extraArgs = args_list(d[c].extraArgs) end
    end
    if d.etcd and d.etcd["local"] and d.etcd["local"].extraArgs then
      d.etcd["local"].extraArgs = args_list(d.etcd["local"].extraArgs)
    end
    -- v1beta4 moved the API server wait timeout to InitConfiguration.timeouts
    if d.apiServer and d.apiServer.timeoutForControlPlane then
      d._timeoutForControlPlane = d.apiServer.timeoutForControlPlane
      d.apiServer.timeoutForControlPlane = nil
    end
  end
  return d
end

---------------------------------------------------------------------------------------------------
-- documents
local function split_docs(docs, errs, warnings)
  local out = {}
  for i, d in ipairs(docs) do
    local where = ("document %d"):format(i)
    if isnull(d) then goto continue end
    if type(d) ~= "table" or is_array(d) then
      errs[#errs + 1] = where .. ": must be a mapping with apiVersion and kind"
      goto continue
    end
    local kind, av = d.kind, d.apiVersion
    if type(kind) ~= "string" or kind == "" then errs[#errs + 1] = where .. ".kind: missing"; goto continue end
    if type(av) ~= "string" or av == "" then errs[#errs + 1] = kind .. ".apiVersion: missing"; goto continue end
    local group, ver = av:match("^(.-)/(.+)$")
    if schema.component_kinds[kind] then
      if av ~= schema.component_kinds[kind] then
        errs[#errs + 1] = ("%s.apiVersion: %q is not supported (want %s)"):format(kind, av, schema.component_kinds[kind])
      end
    elseif group == M.GROUP then
      if schema.ignored_kinds[kind] then
        warnings[#warnings + 1] = ("ignoring %s document (%s): kboot init does not use it"):format(kind, av)
        goto continue
      end
      if not (schema.v1beta3[kind]) then
        errs[#errs + 1] = ("%s.kind: unknown kind %q in %s"):format(kind, kind, av)
        goto continue
      end
      if ver ~= "v1beta3" and ver ~= "v1beta4" then
        errs[#errs + 1] = ("%s.apiVersion: %q is not supported (use kubeadm.k8s.io/v1beta3 or v1beta4; migrate older files with 'kubeadm config migrate')"):format(kind, av)
        goto continue
      end
    else
      errs[#errs + 1] = ("%s.apiVersion: unknown API group in %q"):format(kind, av)
      goto continue
    end
    if out[kind] then
      errs[#errs + 1] = ("%s: more than one %s document"):format(kind, kind)
      goto continue
    end
    out[kind] = d
    ::continue::
  end
  return out
end

---------------------------------------------------------------------------------------------------
-- defaults (kubeadm v1beta4 defaults.go)
local function default_token(t)
  t.ttl = t.ttl or "24h0m0s"
  -- as kubeadm (len == 0): an empty list is a missing one
  if not t.usages or #t.usages == 0 then t.usages = { "signing", "authentication" } end
  if not t.groups or #t.groups == 0 then t.groups = { M.DEFAULT_TOKEN_GROUP } end
  return t
end

function M.default_init(d)
  d = d or {}
  d.apiVersion, d.kind = M.GROUP .. "/v1beta4", "InitConfiguration"
  if d.bootstrapTokens == nil then d.bootstrapTokens = { {} } end
  for _, t in ipairs(d.bootstrapTokens) do default_token(t) end
  d.localAPIEndpoint = d.localAPIEndpoint or {}
  d.localAPIEndpoint.advertiseAddress = d.localAPIEndpoint.advertiseAddress or ""
  if d.localAPIEndpoint.bindPort == nil or d.localAPIEndpoint.bindPort == 0 then d.localAPIEndpoint.bindPort = 6443 end
  local nr = d.nodeRegistration or {}
  d.nodeRegistration = nr
  nr.name = nr.name or ""
  if nr.criSocket == nil or nr.criSocket == "" then nr.criSocket = M.DEFAULT_CRI_SOCKET end
  nr.imagePullPolicy = (nr.imagePullPolicy ~= nil and nr.imagePullPolicy ~= "") and nr.imagePullPolicy or "IfNotPresent"
  if nr.imagePullSerial == nil then nr.imagePullSerial = true end
  if nr.taints == nil then
    nr.taints = { { key = "node-role.kubernetes.io/control-plane", effect = "NoSchedule" } }
  end
  nr.kubeletExtraArgs = nr.kubeletExtraArgs or {}
  nr.ignorePreflightErrors = nr.ignorePreflightErrors or {}
  d.skipPhases = d.skipPhases or {}
  d.certificateKey = d.certificateKey or ""
  d.timeouts = M.default_timeouts(d.timeouts)
  return d
end

-- v1beta4's Timeouts (InitConfiguration and JoinConfiguration alike), as duration strings
function M.default_timeouts(to)
  to = to or {}
  to.controlPlaneComponentHealthCheck = to.controlPlaneComponentHealthCheck or "4m0s"
  to.kubeletHealthCheck = to.kubeletHealthCheck or "4m0s"
  to.kubernetesAPICall = to.kubernetesAPICall or "1m0s"
  to.etcdAPICall = to.etcdAPICall or "2m0s"
  to.tlsBootstrap = to.tlsBootstrap or "5m0s"
  to.discovery = to.discovery or "5m0s"
  to.upgradeManifests = to.upgradeManifests or "5m0s"
  return to
end

local function default_component(c)
  c = c or {}
  c.extraArgs = c.extraArgs or {}
  c.extraVolumes = c.extraVolumes or {}
  c.extraEnvs = c.extraEnvs or {}
  for _, v in ipairs(c.extraVolumes) do
    if v.readOnly == nil then v.readOnly = false end
    v.pathType = v.pathType or ""
  end
  return c
end

local function nonempty(v, dflt) if v == nil or v == "" then return dflt end return v end

function M.default_cluster(d)
  d = d or {}
  d.apiVersion, d.kind = M.GROUP .. "/v1beta4", "ClusterConfiguration"
  d.kubernetesVersion = versions.resolve(d.kubernetesVersion)
  d.controlPlaneEndpoint = d.controlPlaneEndpoint or ""
  d.certificatesDir = nonempty(d.certificatesDir, "/etc/kubernetes/pki")
  d.imageRepository = nonempty(d.imageRepository, "registry.k8s.io")
  d.clusterName = nonempty(d.clusterName, "kubernetes")
  d.encryptionAlgorithm = nonempty(d.encryptionAlgorithm, "RSA-2048")
  d.certificateValidityPeriod = nonempty(d.certificateValidityPeriod, "8760h0m0s")
  d.caCertificateValidityPeriod = nonempty(d.caCertificateValidityPeriod, "87600h0m0s")
  local n = d.networking or {}
  d.networking = n
  n.serviceSubnet = nonempty(n.serviceSubnet, "10.96.0.0/12")
  n.podSubnet = n.podSubnet or ""
  n.dnsDomain = nonempty(n.dnsDomain, "cluster.local")
  d.apiServer = default_component(d.apiServer)
  d.apiServer.certSANs = d.apiServer.certSANs or {}
  d.controllerManager = default_component(d.controllerManager)
  d.scheduler = default_component(d.scheduler)
  d.etcd = d.etcd or {}
  if d.etcd.external == nil then
    local l = d.etcd["local"] or {}
    d.etcd["local"] = l
    l.dataDir = nonempty(l.dataDir, "/var/lib/etcd")
    l.extraArgs = l.extraArgs or {}
    l.extraEnvs = l.extraEnvs or {}
    l.serverCertSANs = l.serverCertSANs or {}
    l.peerCertSANs = l.peerCertSANs or {}
  end
  d.dns = d.dns or {}
  if d.dns.disabled == nil then d.dns.disabled = false end
  d.proxy = d.proxy or {}
  if d.proxy.disabled == nil then d.proxy.disabled = false end
  d.featureGates = d.featureGates or {}
  return d
end

---------------------------------------------------------------------------------------------------
-- flags (kubeadm init's names; opts from kboot.cli use underscores). Flags override the file.
-- Each entry: flag -> function(init, cluster, value); the path is used in messages.
M.FLAG_PATHS = {
  apiserver_advertise_address = "InitConfiguration.localAPIEndpoint.advertiseAddress",
  apiserver_bind_port = "InitConfiguration.localAPIEndpoint.bindPort",
  apiserver_cert_extra_sans = "ClusterConfiguration.apiServer.certSANs",
  cert_dir = "ClusterConfiguration.certificatesDir",
  control_plane_endpoint = "ClusterConfiguration.controlPlaneEndpoint",
  kubernetes_version = "ClusterConfiguration.kubernetesVersion",
  node_name = "InitConfiguration.nodeRegistration.name",
  cri_socket = "InitConfiguration.nodeRegistration.criSocket",
  pod_network_cidr = "ClusterConfiguration.networking.podSubnet",
  service_cidr = "ClusterConfiguration.networking.serviceSubnet",
  service_dns_domain = "ClusterConfiguration.networking.dnsDomain",
  image_repository = "ClusterConfiguration.imageRepository",
  skip_phases = "InitConfiguration.skipPhases",
  ignore_preflight_errors = "InitConfiguration.nodeRegistration.ignorePreflightErrors",
  token = "InitConfiguration.bootstrapTokens[0].token",
  token_ttl = "InitConfiguration.bootstrapTokens[0].ttl",
  certificate_key = "InitConfiguration.certificateKey",
  patches = "InitConfiguration.patches.directory",
}

local function given(flags, k)
  if flags == nil or flags[k] == nil then return false end
  if flags._given then return flags._given[(k:gsub("_", "-"))] == true end
  return true
end
-- given(flags, "node_name"): was the flag on the command line (a plain table: is it set)
M.given = given

local function apply_flags(init, cluster, flags, errs)
  local function v(k) return given(flags, k) and flags[k] or nil end
  if v("apiserver_advertise_address") then init.localAPIEndpoint = init.localAPIEndpoint or {}; init.localAPIEndpoint.advertiseAddress = v("apiserver_advertise_address") end
  if v("apiserver_bind_port") then
    local p = v("apiserver_bind_port")
    local n = math.tointeger(tonumber(p))
    if not n then errs[#errs + 1] = ("%s: %q is not a port number (from --apiserver-bind-port)"):format(M.FLAG_PATHS.apiserver_bind_port, tostring(p))
    else init.localAPIEndpoint = init.localAPIEndpoint or {}; init.localAPIEndpoint.bindPort = n end
  end
  if v("apiserver_cert_extra_sans") then
    cluster.apiServer = cluster.apiServer or {}
    local sans = v("apiserver_cert_extra_sans")
    cluster.apiServer.certSANs = type(sans) == "table" and copy(sans) or net.split_list(sans)
  end
  local simple = {
    cert_dir = { cluster, "certificatesDir" }, control_plane_endpoint = { cluster, "controlPlaneEndpoint" },
    kubernetes_version = { cluster, "kubernetesVersion" }, image_repository = { cluster, "imageRepository" },
    certificate_key = { init, "certificateKey" },
  }
  for k, dst in pairs(simple) do if v(k) then dst[1][dst[2]] = v(k) end end
  local nw = { pod_network_cidr = "podSubnet", service_cidr = "serviceSubnet", service_dns_domain = "dnsDomain" }
  for k, f in pairs(nw) do
    if v(k) then cluster.networking = cluster.networking or {}; cluster.networking[f] = v(k) end
  end
  if v("node_name") or v("cri_socket") then
    init.nodeRegistration = init.nodeRegistration or {}
    if v("node_name") then init.nodeRegistration.name = v("node_name") end
    if v("cri_socket") then init.nodeRegistration.criSocket = v("cri_socket") end
  end
  if v("skip_phases") then init.skipPhases = copy(v("skip_phases")) end
  if v("patches") then init.patches = { directory = v("patches") } end
  if v("ignore_preflight_errors") then
    init.nodeRegistration = init.nodeRegistration or {}
    local list = init.nodeRegistration.ignorePreflightErrors or {}
    for _, e in ipairs(v("ignore_preflight_errors")) do list[#list + 1] = e end
    init.nodeRegistration.ignorePreflightErrors = list
  end
  if v("token") or v("token_ttl") then
    init.bootstrapTokens = init.bootstrapTokens or { {} }
    if #init.bootstrapTokens == 0 then init.bootstrapTokens[1] = {} end
    if v("token") then init.bootstrapTokens[1].token = v("token") end
    if v("token_ttl") then init.bootstrapTokens[1].ttl = v("token_ttl") end
  end
end

---------------------------------------------------------------------------------------------------
-- validation (kubeadm's validation.go rules plus the ones the issue adds)
local validate = require("kboot.config_validate").validate

---------------------------------------------------------------------------------------------------
-- load{ file=, text=, docs=, flags=, host= } -> parts | nil, errs (list of lines), warnings
-- The file is the admin's, read from this host as given (never under --root). host: the host facts
-- (kboot.context.host_facts(), or a test's table) that fill an empty advertise address (its
-- default_address) and node name (its hostname); default: this host's.
-- read_docs{ file=, text=, docs= } -> the documents (a list, {} when none is given), nil, a warning
-- (a file that holds no document) | nil, errs
function M.read_docs(o)
  if o.docs or not (o.file or o.text) then return o.docs or {} end
  local text = o.text
  if not text then
    -- the admin's file on this host (not under --root, which is the node being set up); a
    -- directory opens, and fails on the read
    local f, ferr = io.open(o.file, "rb")
    local rerr
    if f then text, rerr = f:read("a"); f:close() end
    if not text then return nil, { ("cannot read config file %s"):format(f and (o.file .. ": " .. tostring(rerr)) or tostring(ferr)) } end
  end
  local d, err = require("kboot.yaml").decode_all(text)
  if not d then return nil, { ("%s: %s"):format(o.file or "config", tostring(err)) } end
  local n = 0
  for _, doc in ipairs(d) do if type(doc) == "table" then n = n + 1 end end
  if n == 0 then return d, nil, ("%s holds no documents: using defaults"):format(o.file or "the config") end
  return d
end

local function load(o)
  o = o or {}
  local errs, warnings = {}, {}
  local docs, rerrs, rwarn = M.read_docs(o)
  if not docs then return nil, rerrs, warnings end
  warnings[#warnings + 1] = rwarn
  local byk = split_docs(docs, errs, warnings)
  local init_doc, cluster_doc = byk.InitConfiguration, byk.ClusterConfiguration
  -- type-check against the schema of the declared version, then convert to v1beta4
  -- (a document that failed its check is not converted: the conversion trusts the types)
  local converted = {}
  for _, kind in ipairs({ "InitConfiguration", "ClusterConfiguration" }) do
    local d = byk[kind]
    if d then
      local ver = d.apiVersion:match("/(.+)$")
      local n = #errs
      check(d, schema[ver][kind], kind, errs)
      if #errs == n then
        d = strip_nulls(copy(d))
        if ver == "v1beta3" then d = convert_v1beta3(kind, d) end
        converted[kind] = d
      end
    end
  end
  for kind in pairs(schema.component_kinds) do
    if byk[kind] then check(byk[kind], schema[kind], kind, errs) end
  end
  if #errs > 0 then return nil, errs, warnings end
  local init = converted.InitConfiguration or {}
  local cluster = converted.ClusterConfiguration or {}
  if cluster._timeoutForControlPlane then
    init.timeouts = init.timeouts or {}
    init.timeouts.controlPlaneComponentHealthCheck = init.timeouts.controlPlaneComponentHealthCheck or cluster._timeoutForControlPlane
    cluster._timeoutForControlPlane = nil
  end
  apply_flags(init, cluster, o.flags, errs)
  init = M.default_init(init)
  cluster = M.default_cluster(cluster)
  local kubelet = byk.KubeletConfiguration and strip_nulls(copy(byk.KubeletConfiguration))
  local kubeproxy = byk.KubeProxyConfiguration and strip_nulls(copy(byk.KubeProxyConfiguration))
  -- what the host itself tells (after flags, so explicit values win)
  local host = o.host or require("kboot.context").host_facts()
  if init.localAPIEndpoint.advertiseAddress == "" or init.localAPIEndpoint.advertiseAddress == "0.0.0.0" then
    local ip = host.default_address
    if ip then init.localAPIEndpoint.advertiseAddress = ip
    else
      init.localAPIEndpoint.advertiseAddress = "127.0.0.1"
      warnings[#warnings + 1] = ("could not find the default-route address (%s); using 127.0.0.1 (set --apiserver-advertise-address)"):format(host.default_address_err or "not known")
    end
  end
  if init.nodeRegistration.name == "" then init.nodeRegistration.name = host.hostname or "localhost" end
  local ver = validate(init, cluster, kubelet, errs, warnings)
  if #errs > 0 then return nil, errs, warnings end
  return {
    init = init, cluster = cluster, kubelet = kubelet, kubeproxy = kubeproxy, version = ver,
    cert_validity = duration(cluster.certificateValidityPeriod),
    ca_validity = duration(cluster.caCertificateValidityPeriod),
    warnings = warnings,
  }, nil, warnings
end

function M.load(o)
  local parts, errs, warnings = load(o)
  return parts, errs and schema.one_line(errs), warnings
end

---------------------------------------------------------------------------------------------------
-- The documents `kboot config print init-defaults` prints: kubeadm's placeholders, v1beta4 shape
-- (taints printed as null, kubernetesVersion without the "v", empty component sections as {}).
function M.print_defaults()
  local v = versions.default_version
  local init = {
    apiVersion = M.GROUP .. "/v1beta4", kind = "InitConfiguration",
    bootstrapTokens = { { groups = { M.DEFAULT_TOKEN_GROUP }, token = "abcdef.0123456789abcdef",
                          ttl = "24h0m0s", usages = { "signing", "authentication" } } },
    localAPIEndpoint = { advertiseAddress = "1.2.3.4", bindPort = 6443 },
    nodeRegistration = { criSocket = M.DEFAULT_CRI_SOCKET, imagePullPolicy = "IfNotPresent",
                         imagePullSerial = true, name = "node", taints = null or "null" },
    timeouts = { controlPlaneComponentHealthCheck = "4m0s", discovery = "5m0s", etcdAPICall = "2m0s",
                 kubeletHealthCheck = "4m0s", kubernetesAPICall = "1m0s", tlsBootstrap = "5m0s",
                 upgradeManifests = "5m0s" },
  }
  local cluster = {
    apiVersion = M.GROUP .. "/v1beta4", kind = "ClusterConfiguration",
    apiServer = {}, caCertificateValidityPeriod = "87600h0m0s", certificateValidityPeriod = "8760h0m0s",
    certificatesDir = "/etc/kubernetes/pki", clusterName = "kubernetes", controllerManager = {}, dns = {},
    encryptionAlgorithm = "RSA-2048", etcd = { ["local"] = { dataDir = "/var/lib/etcd" } },
    imageRepository = "registry.k8s.io", kubernetesVersion = v:sub(2),
    networking = { dnsDomain = "cluster.local", serviceSubnet = "10.96.0.0/12" }, proxy = {}, scheduler = {},
  }
  return init, cluster
end

return M

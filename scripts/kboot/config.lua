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

local function field(path, key)
  if type(key) == "number" then return ("%s[%d]"):format(path, key - 1) end
  if key:find("^[%a_][%w_%-]*$") then return path .. "." .. key end
  return ("%s[%q]"):format(path, key)
end

---------------------------------------------------------------------------------------------------
-- schema check: types and unknown fields, with paths
local function check(v, sch, path, errs)
  if isnull(v) then return end
  if sch == "any" then return end
  if sch == "string" then
    if type(v) ~= "string" then errs[#errs + 1] = ("%s: must be a string, not %s"):format(path, type(v)) end
  elseif sch == "int" then
    if math.type(v) ~= "integer" then errs[#errs + 1] = ("%s: must be an integer, not %s"):format(path, type(v) == "number" and "a float" or type(v)) end
  elseif sch == "bool" then
    if type(v) ~= "boolean" then errs[#errs + 1] = ("%s: must be true or false, not %s"):format(path, type(v)) end
  elseif sch == "duration" then
    local _, err = duration(v)
    if err then errs[#errs + 1] = ("%s: %s"):format(path, err) end
  elseif sch.list then
    if type(v) ~= "table" or (next(v) ~= nil and not is_array(v)) then
      errs[#errs + 1] = ("%s: must be a list"):format(path)
      return
    end
    for i, x in ipairs(v) do check(x, sch.list, field(path, i), errs) end
  elseif sch.map or sch.dict then
    if type(v) ~= "table" or (next(v) ~= nil and is_array(v)) then
      errs[#errs + 1] = ("%s: must be a mapping of fields"):format(path)
      return
    end
    for _, k in ipairs(sorted_keys(v)) do
      local sub = sch.map and sch.map[k] or sch.dict
      if type(k) ~= "string" then
        errs[#errs + 1] = ("%s: field names must be strings, got %s"):format(path, tostring(k))
      elseif not sub then
        errs[#errs + 1] = ("%s: unknown field %q"):format(field(path, k), k)
      else
        check(v[k], sub, field(path, k), errs)
      end
    end
  end
end

-- Drop YAML nulls so "field: null" means "not set", as Go's decoder does (taints handled by caller).
local function strip_nulls(v)
  if type(v) ~= "table" then return v end
  for k, x in pairs(v) do
    if isnull(x) then v[k] = nil else strip_nulls(x) end
  end
  return v
end

---------------------------------------------------------------------------------------------------
-- v1beta3 -> v1beta4
local function args_list(m)
  if m == nil then return nil end
  local out = {}
  for _, k in ipairs(sorted_keys(m)) do out[#out + 1] = { name = k, value = m[k] } end
  return out
end

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
  t.usages = t.usages or { "signing", "authentication" }
  t.groups = t.groups or { M.DEFAULT_TOKEN_GROUP }
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
  local to = d.timeouts or {}
  d.timeouts = to
  to.controlPlaneComponentHealthCheck = to.controlPlaneComponentHealthCheck or "4m0s"
  to.kubeletHealthCheck = to.kubeletHealthCheck or "4m0s"
  to.kubernetesAPICall = to.kubernetesAPICall or "1m0s"
  to.etcdAPICall = to.etcdAPICall or "2m0s"
  to.tlsBootstrap = to.tlsBootstrap or "5m0s"
  to.discovery = to.discovery or "5m0s"
  to.upgradeManifests = to.upgradeManifests or "5m0s"
  return d
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
}

local function given(flags, k)
  if flags == nil or flags[k] == nil then return false end
  if flags._given then return flags._given[(k:gsub("_", "-"))] == true end
  return true
end

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
local function validate(init, cluster, kubelet, errs, warnings)
  local function e(path, fmt, ...) errs[#errs + 1] = path .. ": " .. fmt:format(...) end
  local I, C = "InitConfiguration", "ClusterConfiguration"

  -- bootstrap tokens: kboot.tokens has the rules (the same as `kboot token create`)
  local tokens = require("kboot.tokens")
  for i, t in ipairs(init.bootstrapTokens or {}) do
    local p = ("%s.bootstrapTokens[%d]"):format(I, i - 1)
    if t.token ~= nil and not tokens.parse(t.token) then
      e(p .. ".token", "%q is not a valid bootstrap token (want [a-z0-9]{6}.[a-z0-9]{16}, e.g. abcdef.0123456789abcdef)", tostring(t.token))
    end
    for j, u in ipairs(t.usages or {}) do
      if not tokens.check_usages({ u }) then
        e(("%s.usages[%d]"):format(p, j - 1), "unknown usage %q (want %s)", u, table.concat(tokens.USAGES, " or "))
      end
    end
    for j, g in ipairs(t.groups or {}) do
      local ok, why = tokens.check_group(g)
      if not ok then e(("%s.groups[%d]"):format(p, j - 1), "%s", why) end
    end
    if t.ttl then
      local _, why = tokens.ttl(t.ttl)
      if why then e(p .. ".ttl", "%s", why) end
    end
  end
  -- certificate key: hex of 32 bytes
  local ck = init.certificateKey
  if ck and ck ~= "" and not (#ck == 64 and ck:match("^%x+$")) then
    e(I .. ".certificateKey", "must be 64 hex characters (a 32-byte AES key, as 'kboot certs certificate-key' prints)")
  end
  -- local endpoint
  local ep = init.localAPIEndpoint
  if ep.advertiseAddress ~= "" and not net.is_ip(ep.advertiseAddress) then
    e(I .. ".localAPIEndpoint.advertiseAddress", "%q is not a valid IP address", tostring(ep.advertiseAddress))
  elseif net.is_loopback(ep.advertiseAddress) then
    warnings[#warnings + 1] = ("advertise address %s is a loopback address: only this host can reach the API server (fine for single-node and test clusters)"):format(ep.advertiseAddress)
  end
  if math.type(ep.bindPort) ~= "integer" or ep.bindPort < 1 or ep.bindPort > 65535 then
    e(I .. ".localAPIEndpoint.bindPort", "%s is not a valid port (1-65535)", tostring(ep.bindPort))
  end
  -- node registration
  local nr = init.nodeRegistration
  if nr.name ~= "" and not net.is_dns_subdomain(nr.name) then
    e(I .. ".nodeRegistration.name", "%q is not a valid node name (lower case RFC 1123 subdomain: a-z, 0-9, '-', '.')", nr.name)
  end
  local sock = nr.criSocket
  if not (sock:match("^unix:///.") or sock:match("^/.")) then
    e(I .. ".nodeRegistration.criSocket", "%q must be an absolute path or a unix:// URL such as %s", sock, M.DEFAULT_CRI_SOCKET)
  end
  local policies = { Always = true, IfNotPresent = true, Never = true }
  if not policies[nr.imagePullPolicy] then
    e(I .. ".nodeRegistration.imagePullPolicy", "%q is not one of Always, IfNotPresent, Never", tostring(nr.imagePullPolicy))
  end
  local effects = { NoSchedule = true, PreferNoSchedule = true, NoExecute = true }
  for i, t in ipairs(nr.taints) do
    local p = ("%s.nodeRegistration.taints[%d]"):format(I, i - 1)
    if type(t.key) ~= "string" or not t.key:match("^[%w][%w%-%._/]*$") then e(p .. ".key", "a taint needs a key such as node-role.kubernetes.io/control-plane") end
    if not effects[t.effect] then e(p .. ".effect", "%q is not one of NoSchedule, PreferNoSchedule, NoExecute", tostring(t.effect)) end
  end
  for i, a in ipairs(nr.kubeletExtraArgs) do
    if type(a.name) ~= "string" or a.name == "" then e(("%s.nodeRegistration.kubeletExtraArgs[%d].name"):format(I, i - 1), "must not be empty") end
  end
  for _, name in ipairs(init.skipPhases) do
    if type(name) ~= "string" or name == "" then e(I .. ".skipPhases", "phase names must be non-empty strings") end
  end
  for k, v in pairs(init.timeouts or {}) do
    local s = duration(v)
    if s and s <= 0 then e(I .. ".timeouts." .. k, "must be positive") end
  end

  -- cluster
  local ver = versions.get(cluster.kubernetesVersion)
  if not ver then
    local _, why = versions.get(cluster.kubernetesVersion)
    e(C .. ".kubernetesVersion", "%s", why)
  end
  local n = cluster.networking
  local svc = net.split_list(n.serviceSubnet)
  if #svc == 0 or #svc > 2 then e(C .. ".networking.serviceSubnet", "want one subnet, or two for dual-stack, got %q", n.serviceSubnet) end
  local svc_parsed = {}
  for _, s in ipairs(svc) do
    local c, why = net.parse_cidr(s)
    if not c then e(C .. ".networking.serviceSubnet", "%s", why)
    else
      svc_parsed[#svc_parsed + 1] = c
      local bits = net.cidr_size_bits(c)
      if bits > 20 then
        e(C .. ".networking.serviceSubnet", "%s is too large: at most 20 host bits (a /%d for IPv%d) are allowed", s, c.family == 4 and 12 or 108, c.family)
      elseif (1 << bits) < 10 + 2 then
        -- the 10th address is the cluster DNS service, so the subnet needs at least 16 addresses
        e(C .. ".networking.serviceSubnet", "%s is too small: it must hold at least 10 addresses (the 10th is the DNS service)", s)
      end
    end
  end
  if #svc_parsed == 2 and svc_parsed[1].family == svc_parsed[2].family then
    e(C .. ".networking.serviceSubnet", "dual-stack subnets must be one IPv4 and one IPv6, got %q", n.serviceSubnet)
  end
  if n.podSubnet ~= "" then
    local pods = net.split_list(n.podSubnet)
    if #pods > 2 then e(C .. ".networking.podSubnet", "want one subnet, or two for dual-stack, got %q", n.podSubnet) end
    for _, s in ipairs(pods) do
      local c, why = net.parse_cidr(s)
      if not c then e(C .. ".networking.podSubnet", "%s", why)
      else
        if (c.family == 4 and c.prefix > 28) or (c.family == 6 and c.prefix > 124) then
          e(C .. ".networking.podSubnet", "%s is too small for pods (at least 14 usable addresses)", s)
        end
        for _, sc in ipairs(svc_parsed) do
          if net.cidr_overlap(c, sc) then
            e(C .. ".networking.podSubnet", "%s overlaps the service subnet %s/%d", s, net.format_ip(sc), sc.prefix)
          end
        end
      end
    end
  end
  if not net.is_dns_subdomain(n.dnsDomain) then
    e(C .. ".networking.dnsDomain", "%q is not a valid DNS domain", n.dnsDomain)
  end
  if cluster.controlPlaneEndpoint ~= "" then
    local host, port = net.split_host_port(cluster.controlPlaneEndpoint)
    if not host then e(C .. ".controlPlaneEndpoint", "%s", port)
    elseif not (net.is_ip(host) or net.is_dns_subdomain(host)) then
      e(C .. ".controlPlaneEndpoint", "%q is not a valid IP address or DNS name", host)
    end
  end
  for i, san in ipairs(cluster.apiServer.certSANs) do
    if not (net.is_ip(san) or net.is_dns_subdomain(san) or net.is_dns_wildcard(san)) then
      e(("%s.apiServer.certSANs[%d]"):format(C, i - 1), "%q is not a valid IP address or DNS name", tostring(san))
    end
  end
  if cluster.certificatesDir:sub(1, 1) ~= "/" then
    e(C .. ".certificatesDir", "%q must be an absolute path", cluster.certificatesDir)
  end
  if cluster.imageRepository == "" or cluster.imageRepository:find("%s") then
    e(C .. ".imageRepository", "%q is not a valid image repository", cluster.imageRepository)
  end
  if not M.ALGORITHMS[cluster.encryptionAlgorithm] then
    e(C .. ".encryptionAlgorithm", "unknown algorithm %q (want RSA-2048, RSA-3072, RSA-4096, ECDSA-P256 or ECDSA-P384)", cluster.encryptionAlgorithm)
  end
  local leaf, ca = duration(cluster.certificateValidityPeriod), duration(cluster.caCertificateValidityPeriod)
  if leaf and leaf <= 0 then e(C .. ".certificateValidityPeriod", "must be positive") end
  if ca and ca <= 0 then e(C .. ".caCertificateValidityPeriod", "must be positive") end
  if leaf and ca and leaf > ca and leaf > 0 and ca > 0 then
    warnings[#warnings + 1] = ("certificateValidityPeriod %s is longer than caCertificateValidityPeriod %s: leaf certificates will outlive their CA"):format(cluster.certificateValidityPeriod, cluster.caCertificateValidityPeriod)
  end
  for gate in pairs(cluster.featureGates) do
    if not M.FEATURE_GATES[gate] then e(C .. ".featureGates." .. gate, "unknown feature gate %q", gate) end
  end
  for _, comp in ipairs({ "apiServer", "controllerManager", "scheduler" }) do
    local c = cluster[comp]
    for i, a in ipairs(c.extraArgs) do
      if type(a.name) ~= "string" or a.name == "" then e(("%s.%s.extraArgs[%d].name"):format(C, comp, i - 1), "must not be empty") end
    end
    local types = { [""] = true, DirectoryOrCreate = true, Directory = true, FileOrCreate = true, File = true,
                    Socket = true, CharDevice = true, BlockDevice = true }
    for i, v in ipairs(c.extraVolumes) do
      local p = ("%s.%s.extraVolumes[%d]"):format(C, comp, i - 1)
      for _, f in ipairs({ "name", "hostPath", "mountPath" }) do
        if type(v[f]) ~= "string" or v[f] == "" then e(p .. "." .. f, "must not be empty") end
      end
      if type(v.hostPath) == "string" and v.hostPath ~= "" and v.hostPath:sub(1, 1) ~= "/" then e(p .. ".hostPath", "%q must be an absolute path", v.hostPath) end
      if type(v.mountPath) == "string" and v.mountPath ~= "" and v.mountPath:sub(1, 1) ~= "/" then e(p .. ".mountPath", "%q must be an absolute path", v.mountPath) end
      if not types[v.pathType] then e(p .. ".pathType", "unknown hostPath type %q", tostring(v.pathType)) end
    end
    for i, v in ipairs(c.extraEnvs) do
      if type(v.name) ~= "string" or v.name == "" then e(("%s.%s.extraEnvs[%d].name"):format(C, comp, i - 1), "must not be empty") end
    end
  end
  local etcd = cluster.etcd
  if etcd["local"] and etcd.external then
    e(C .. ".etcd", "local and external are mutually exclusive: set only one of etcd.local and etcd.external")
  elseif etcd.external then
    local x = etcd.external
    if not x.endpoints or #x.endpoints == 0 then e(C .. ".etcd.external.endpoints", "at least one endpoint is required") end
    for i, u in ipairs(x.endpoints or {}) do
      if not tostring(u):match("^https?://[^/%s]+") then
        e(("%s.etcd.external.endpoints[%d]"):format(C, i - 1), "%q must be a URL such as https://10.0.0.1:2379", tostring(u))
      end
    end
    local files = { x.caFile or "", x.certFile or "", x.keyFile or "" }
    local set = (files[1] ~= "" and 1 or 0) + (files[2] ~= "" and 1 or 0) + (files[3] ~= "" and 1 or 0)
    if set ~= 0 and set ~= 3 then e(C .. ".etcd.external", "caFile, certFile and keyFile must be set together") end
    for _, f in ipairs({ "caFile", "certFile", "keyFile" }) do
      if x[f] and x[f] ~= "" and x[f]:sub(1, 1) ~= "/" then e(C .. ".etcd.external." .. f, "%q must be an absolute path", x[f]) end
    end
  else
    local l = etcd["local"]
    if l.dataDir:sub(1, 1) ~= "/" then e(C .. ".etcd.local.dataDir", "%q must be an absolute path", l.dataDir) end
    for _, f in ipairs({ "serverCertSANs", "peerCertSANs" }) do
      for i, san in ipairs(l[f]) do
        if not (net.is_ip(san) or net.is_dns_subdomain(san) or net.is_dns_wildcard(san)) then
          e(("%s.etcd.local.%s[%d]"):format(C, f, i - 1), "%q is not a valid IP address or DNS name", tostring(san))
        end
      end
    end
    for i, a in ipairs(l.extraArgs) do
      if type(a.name) ~= "string" or a.name == "" then e(("%s.etcd.local.extraArgs[%d].name"):format(C, i - 1), "must not be empty") end
    end
  end
  if kubelet and kubelet.cgroupDriver ~= nil and kubelet.cgroupDriver ~= "systemd" and kubelet.cgroupDriver ~= "cgroupfs" then
    e("KubeletConfiguration.cgroupDriver", "%q is not one of systemd, cgroupfs", tostring(kubelet.cgroupDriver))
  end
  return ver
end

---------------------------------------------------------------------------------------------------
-- load{ file=, text=, docs=, flags=, host= } -> parts | nil, errs (list of lines), warnings
-- The file is the admin's, read from this host as given (never under --root). host: the host facts
-- (kboot.context.host_facts(), or a test's table) that fill an empty advertise address (its
-- default_address) and node name (its hostname); default: this host's.
function M.load(o)
  o = o or {}
  local errs, warnings = {}, {}
  local docs = o.docs
  if not docs and (o.file or o.text) then
    local text = o.text
    if not text then
      -- the admin's file on this host (not under --root, which is the node being set up)
      local f, ferr = io.open(o.file, "rb")
      if not f then return nil, { ("cannot read config file %s"):format(tostring(ferr)) }, warnings end
      text = f:read("a")
      f:close()
    end
    local d, err = require("kboot.yaml").decode_all(text)
    if not d then return nil, { ("%s: %s"):format(o.file or "config", tostring(err)) }, warnings end
    docs = d
  end
  docs = docs or {}
  local byk = split_docs(docs, errs, warnings)
  local init_doc, cluster_doc = byk.InitConfiguration, byk.ClusterConfiguration
  -- type-check against the schema of the declared version, then convert to v1beta4
  local converted = {}
  for _, kind in ipairs({ "InitConfiguration", "ClusterConfiguration" }) do
    local d = byk[kind]
    if d then
      local ver = d.apiVersion:match("/(.+)$")
      check(d, schema[ver][kind], kind, errs)
      d = strip_nulls(copy(d))
      if ver == "v1beta3" then d = convert_v1beta3(kind, d) end
      converted[kind] = d
    end
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

-- Known fields of kubeadm's InitConfiguration / ClusterConfiguration / JoinConfiguration / ResetConfiguration
-- (kubeadm.k8s.io/v1beta3 and v1beta4, kubeadm's cmd/kubeadm/app/apis/kubeadm/v1beta{3,4}/types.go), and the
-- fields kboot reads of KubeletConfiguration and KubeProxyConfiguration; M.check walks a document against one
-- of them before anything else reads it. A field not listed is an error naming its path (except in an open
-- mapping: the component configurations, whose other fields kboot passes on to the kubelet and kube-proxy).
-- Leaf types: "string", "int", "bool", "duration" (Go duration string), "quantity" (a Kubernetes resource
-- quantity: "100Mi", "0.5", 2), "ip" (an IPv4 or IPv6 address), "cidrs" (one CIDR, or a comma-separated
-- dual-stack pair as kubeadm takes them), "hostport" (host[:port], the host an IP address or DNS name),
-- "any"; { map = {...} } an object with these fields (open = true: others are allowed, unchecked);
-- { list = T } a sequence of T; { dict = T } string keys -> T. An empty string passes the address types:
-- it means "not set" there, and the semantic checks (kboot.config_validate) say when one is required.
local M = {}

local S, I, B, D, Q, ANY = "string", "int", "bool", "duration", "quantity", "any"
local IP, CIDRS, HOSTPORT = "ip", "cidrs", "hostport"
local function list(t) return { list = t } end
local function map(t) return { map = t } end
local function open(t) return { map = t, open = true } end
local function dict(t) return { dict = t } end

local taint = map { key = S, value = S, effect = S, timeAdded = S }
local token = map { token = S, description = S, ttl = D, expires = S, usages = list(S), groups = list(S) }
local endpoint = map { advertiseAddress = IP, bindPort = I }
local patches = map { directory = S }
local arg = map { name = S, value = S }
local env = map { name = S, value = S, valueFrom = ANY }
local volume = map { name = S, hostPath = S, mountPath = S, readOnly = B, pathType = S }
local networking = map { serviceSubnet = CIDRS, podSubnet = CIDRS, dnsDomain = S }
local external = map { endpoints = list(S), caFile = S, certFile = S, keyFile = S }
local typemeta = { apiVersion = S, kind = S }

local function with_meta(fields)
  for k, v in pairs(typemeta) do fields[k] = v end
  return map(fields)
end

-- JoinConfiguration's discovery and control-plane sections (kboot.join_config); v1beta4 dropped
-- discovery.timeout for timeouts.discovery.
local token_discovery = map { token = S, apiServerEndpoint = HOSTPORT, caCertHashes = list(S), unsafeSkipCAVerification = B }
local file_discovery = map { kubeConfigPath = S }
local join_control_plane = map { localAPIEndpoint = endpoint, certificateKey = S }

-- v1beta3 (kubeadm v1.22 .. v1.30 default): extraArgs and kubeletExtraArgs are string maps.
M.v1beta3 = {
  InitConfiguration = with_meta {
    bootstrapTokens = list(token),
    nodeRegistration = map { name = S, criSocket = S, taints = list(taint), kubeletExtraArgs = dict(S),
                             ignorePreflightErrors = list(S), imagePullPolicy = S },
    localAPIEndpoint = endpoint, certificateKey = S, skipPhases = list(S), patches = patches,
  },
  ClusterConfiguration = with_meta {
    etcd = map {
      ["local"] = map { imageRepository = S, imageTag = S, dataDir = S, extraArgs = dict(S),
                        serverCertSANs = list(S), peerCertSANs = list(S) },
      external = external,
    },
    networking = networking, kubernetesVersion = S, controlPlaneEndpoint = HOSTPORT,
    apiServer = map { extraArgs = dict(S), extraVolumes = list(volume), certSANs = list(S),
                      timeoutForControlPlane = D },
    controllerManager = map { extraArgs = dict(S), extraVolumes = list(volume) },
    scheduler = map { extraArgs = dict(S), extraVolumes = list(volume) },
    dns = map { imageRepository = S, imageTag = S },
    certificatesDir = S, imageRepository = S, featureGates = dict(B), clusterName = S,
  },
  JoinConfiguration = with_meta {
    nodeRegistration = map { name = S, criSocket = S, taints = list(taint), kubeletExtraArgs = dict(S),
                             ignorePreflightErrors = list(S), imagePullPolicy = S },
    caCertPath = S,
    discovery = map { bootstrapToken = token_discovery, file = file_discovery, tlsBootstrapToken = S, timeout = D },
    controlPlane = join_control_plane, skipPhases = list(S), patches = patches,
  },
}

-- v1beta4 (kubeadm v1.31+): extraArgs are lists of {name, value}; extraEnvs; timeouts; validity periods.
local timeouts = map { controlPlaneComponentHealthCheck = D, kubeletHealthCheck = D, kubernetesAPICall = D,
                       etcdAPICall = D, tlsBootstrap = D, discovery = D, upgradeManifests = D }
local component4 = map { extraArgs = list(arg), extraVolumes = list(volume), extraEnvs = list(env) }
M.v1beta4 = {
  InitConfiguration = with_meta {
    bootstrapTokens = list(token), dryRun = B,
    nodeRegistration = map { name = S, criSocket = S, taints = list(taint), kubeletExtraArgs = list(arg),
                             ignorePreflightErrors = list(S), imagePullPolicy = S, imagePullSerial = B },
    localAPIEndpoint = endpoint, certificateKey = S, skipPhases = list(S), patches = patches,
    timeouts = timeouts,
  },
  ClusterConfiguration = with_meta {
    etcd = map {
      ["local"] = map { imageRepository = S, imageTag = S, dataDir = S, extraArgs = list(arg),
                        extraEnvs = list(env), serverCertSANs = list(S), peerCertSANs = list(S) },
      external = external,
    },
    networking = networking, kubernetesVersion = S, controlPlaneEndpoint = HOSTPORT,
    apiServer = map { extraArgs = list(arg), extraVolumes = list(volume), extraEnvs = list(env),
                      certSANs = list(S) },
    controllerManager = component4, scheduler = component4,
    dns = map { imageRepository = S, imageTag = S, disabled = B },
    proxy = map { disabled = B },
    certificatesDir = S, imageRepository = S, featureGates = dict(B), clusterName = S,
    encryptionAlgorithm = S, certificateValidityPeriod = D, caCertificateValidityPeriod = D,
  },
  JoinConfiguration = with_meta {
    dryRun = B,
    nodeRegistration = map { name = S, criSocket = S, taints = list(taint), kubeletExtraArgs = list(arg),
                             ignorePreflightErrors = list(S), imagePullPolicy = S, imagePullSerial = B },
    caCertPath = S,
    discovery = map { bootstrapToken = token_discovery, file = file_discovery, tlsBootstrapToken = S },
    controlPlane = join_control_plane, skipPhases = list(S), patches = patches, timeouts = timeouts,
  },
}

-- ResetConfiguration exists from v1beta4 on (kboot.reset_config).
M.v1beta4.ResetConfiguration = with_meta {
  cleanupTmpDir = B, certificatesDir = S, criSocket = S, dryRun = B, force = B,
  ignorePreflightErrors = list(S), skipPhases = list(S), unmountFlags = list(S), timeouts = timeouts,
}

-- Other kinds a kubeadm config file may hold, with the one apiVersion kboot knows.
M.component_kinds = {
  KubeletConfiguration = "kubelet.config.k8s.io/v1beta1",
  KubeProxyConfiguration = "kubeproxy.config.k8s.io/v1alpha1",
}
-- Their schemas: what kboot reads or overlays onto its defaults (components/kubelet.lua, kube_proxy.lua,
-- preflight, wait-control-plane, kubelet-finalize), plus the common typed fields; open, since the
-- kubelet and kube-proxy check the rest themselves.
local function with_meta_open(fields)
  for k, v in pairs(typemeta) do fields[k] = v end
  return open(fields)
end
M.KubeletConfiguration = with_meta_open {
  cgroupDriver = S, healthzBindAddress = IP, healthzPort = I, rotateCertificates = B, clusterDNS = list(IP),
  clusterDomain = S, staticPodPath = S, resolvConf = S, containerRuntimeEndpoint = S, failSwapOn = B,
  maxPods = I, serverTLSBootstrap = B, address = IP, port = I, readOnlyPort = I,
  authentication = open { anonymous = open { enabled = B }, webhook = open { enabled = B, cacheTTL = D },
                          x509 = open { clientCAFile = S } },
  authorization = open { mode = S, webhook = open { cacheAuthorizedTTL = D, cacheUnauthorizedTTL = D } },
  logging = open { format = S, flushFrequency = ANY, verbosity = I },
  memorySwap = open { swapBehavior = S },
  featureGates = dict(B), systemReserved = dict(Q), kubeReserved = dict(Q), evictionHard = dict(S),
  evictionSoft = dict(S), evictionSoftGracePeriod = dict(D),
  cpuManagerReconcilePeriod = D, evictionPressureTransitionPeriod = D, fileCheckFrequency = D,
  httpCheckFrequency = D, imageMaximumGCAge = D, imageMinimumGCAge = D, nodeStatusReportFrequency = D,
  nodeStatusUpdateFrequency = D, runtimeRequestTimeout = D, shutdownGracePeriod = D,
  shutdownGracePeriodCriticalPods = D, streamingConnectionIdleTimeout = D, syncFrequency = D,
  volumeStatsAggPeriod = D,
}
M.KubeProxyConfiguration = with_meta_open {
  mode = S, bindAddress = IP, clusterCIDR = CIDRS, healthzBindAddress = HOSTPORT, metricsBindAddress = HOSTPORT,
  clientConnection = open { kubeconfig = S, qps = ANY, burst = I }, featureGates = dict(B),
  configSyncPeriod = D,
}
-- Kinds of the kubeadm group that `init` does not use (kubeadm ignores them with a warning too).
M.ignored_kinds = { JoinConfiguration = true, ResetConfiguration = true, UpgradeConfiguration = true }

---------------------------------------------------------------------------------------------------
-- check(doc, schema, path, errs): appends one "path.to.field: problem" line per problem (the value's
-- type and a short rendering of it); never raises, whatever the document holds.
local null = require("cjson").null
local array_mt = require("kboot.yaml").array_mt

local function isnull(v) return v == nil or v == null end

local function is_array(t)
  local mt = getmetatable(t)
  if mt and mt == array_mt then return true end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t and (n > 0 or mt ~= nil and mt.__name == "array")
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

function M.field(path, key)
  if math.type(key) == "integer" then return ("%s[%d]"):format(path, key - 1) end
  if key:find("^[%a_][%w_%-]*$") then return path .. "." .. key end
  return ("%s[%q]"):format(path, key:sub(1, 64))
end

-- "number 5", "string \"x\"", "boolean true", "a list", "a mapping", "null"
function M.describe(v)
  local t = type(v)
  if t == "string" then
    return #v > 40 and ("string %q..."):format(v:sub(1, 40)) or ("string %q"):format(v)
  elseif t == "number" or t == "boolean" then return t .. " " .. tostring(v)
  elseif t == "table" then return (next(v) == nil and "an empty " or "a ") .. (is_array(v) and "list" or "mapping")
  elseif v == null then return "null" end
  return t
end

-- a Kubernetes resource quantity (apimachinery's resource.Quantity): a number, or a decimal with an
-- optional exponent or SI / binary suffix
local SUFFIXES = { [""] = true, n = true, u = true, m = true, k = true, M = true, G = true, T = true, P = true,
                   E = true, Ki = true, Mi = true, Gi = true, Ti = true, Pi = true, Ei = true }
function M.is_quantity(v)
  if type(v) == "number" then return v == v and v >= 0 and v ~= math.huge end
  if type(v) ~= "string" then return false end
  local num, rest = v:match("^[+-]?(%d*%.?%d*)(.*)$")
  if not num or num == "" or num == "." then return false end
  return SUFFIXES[rest] or rest:match("^[eE][+-]?%d+$") ~= nil
end

local duration = require("kboot.time").parse_duration
local net = require("kboot.net")
local MAX_DEPTH = 64

-- The address types: address.T(v) -> nil when the string v is one, else why not (kboot.config_validate
-- uses them too, for values flags set after this check).
local address = {
  ip = function(v)
    if not net.is_ip(v) then return ("%q is not a valid IP address"):format(v) end
  end,
  cidrs = function(v)
    local items = net.split_list(v)
    if #items > 2 then return ("want one subnet, or two for dual-stack, got %q"):format(v) end
    for _, c in ipairs(items) do
      local ok, why = net.parse_cidr(c)
      if not ok then return why end
    end
  end,
  hostport = function(v)
    local host, why = net.split_host_port(v)
    if not host then return why end
    if not (net.is_ip(host) or net.is_dns_subdomain(host)) then
      return ("%q is not a valid IP address or DNS name"):format(host)
    end
  end,
}
M.address = address

local function check(v, sch, path, errs, depth)
  if isnull(v) or sch == "any" then return end
  local function bad(what) errs[#errs + 1] = ("%s: must be %s, got %s"):format(path, what, M.describe(v)) end
  if sch == "string" then
    if type(v) ~= "string" then bad("a string") end
  elseif sch == "int" then
    if math.type(v) ~= "integer" then bad("an integer") end
  elseif sch == "bool" then
    if type(v) ~= "boolean" then bad("true or false") end
  elseif sch == "duration" then
    if type(v) ~= "string" then bad('a duration such as "24h0m0s"'); return end
    local _, err = duration(v)
    if err then errs[#errs + 1] = ("%s: %s"):format(path, err) end
  elseif sch == "quantity" then
    if not M.is_quantity(v) then bad('a quantity such as "100Mi" or "0.5"') end
  elseif address[sch] then
    if type(v) ~= "string" then
      bad(sch == "ip" and 'an IP address such as "10.0.0.1"' or sch == "cidrs" and 'a CIDR such as "10.96.0.0/12"'
          or 'host[:port] such as "10.0.0.1:6443"')
    elseif v ~= "" then
      local why = address[sch](v)
      if why then errs[#errs + 1] = ("%s: %s"):format(path, why) end
    end
  elseif type(v) ~= "table" then
    bad(sch.list and "a list" or "a mapping")
  elseif depth > MAX_DEPTH then
    errs[#errs + 1] = ("%s: nested too deeply"):format(path)
  elseif sch.list then
    if next(v) ~= nil and not is_array(v) then bad("a list"); return end
    for i, x in ipairs(v) do check(x, sch.list, M.field(path, i), errs, depth + 1) end
  else
    if next(v) ~= nil and is_array(v) then bad("a mapping"); return end
    for _, k in ipairs(sorted_keys(v)) do
      local sub = sch.map and sch.map[k] or sch.dict
      if type(k) ~= "string" then
        errs[#errs + 1] = ("%s: field names must be strings, got %s"):format(path, M.describe(k))
      elseif not sub then
        if not sch.open then errs[#errs + 1] = ("%s: unknown field %q"):format(M.field(path, k), k:sub(1, 64)) end
      else
        check(v[k], sub, M.field(path, k), errs, depth + 1)
      end
    end
  end
end
function M.check(v, sch, path, errs) check(v, sch, path, errs, 0) end

-- one_line(errs) -> errs, each line free of raw newlines (a kind or value quoted with %q keeps
-- its newline as backslash-newline): the loaders' promise is one line per problem.
function M.one_line(errs)
  for i, e in ipairs(errs) do
    errs[i] = tostring(e):gsub("\\\n", "\\n"):gsub("[\r\n]", { ["\r"] = "\\r", ["\n"] = "\\n" })
  end
  return errs
end

return M

-- kubeadm's JoinConfiguration (kubeadm.k8s.io/v1beta3 and v1beta4) for `kboot join`: read from the
-- admin's file and the command line, converted to v1beta4, defaulted as kubeadm defaults it
-- (apis/kubeadm/v1beta4/defaults.go, SetJoinDynamicDefaults) and checked as kubeadm checks it
-- (validation.go ValidateJoinConfiguration), every problem a line naming the field and the flag.
-- The cluster's own configuration (ClusterConfiguration, KubeletConfiguration) comes from the
-- cluster during the join (kboot.flows.join's connect), never from this file.
local config = require("kboot.config")
local schema = require("kboot.config_schema")
local checks = require("kboot.config_validate")
local tokens = require("kboot.tokens")
local net = require("kboot.net")

local M = {}

M.DEFAULT_CA_CERT_PATH = "/etc/kubernetes/pki/ca.crt"

-- The JoinConfiguration field each flag sets (for messages that name both).
M.FLAG_PATHS = {
  endpoint = "JoinConfiguration.discovery.bootstrapToken.apiServerEndpoint",
  discovery_token = "JoinConfiguration.discovery.bootstrapToken.token",
  discovery_token_ca_cert_hash = "JoinConfiguration.discovery.bootstrapToken.caCertHashes",
  discovery_token_unsafe_skip_ca_verification = "JoinConfiguration.discovery.bootstrapToken.unsafeSkipCAVerification",
  discovery_file = "JoinConfiguration.discovery.file.kubeConfigPath",
  tls_bootstrap_token = "JoinConfiguration.discovery.tlsBootstrapToken",
  node_name = "JoinConfiguration.nodeRegistration.name",
  cri_socket = "JoinConfiguration.nodeRegistration.criSocket",
  certificate_key = "JoinConfiguration.controlPlane.certificateKey",
  apiserver_advertise_address = "JoinConfiguration.controlPlane.localAPIEndpoint.advertiseAddress",
  apiserver_bind_port = "JoinConfiguration.controlPlane.localAPIEndpoint.bindPort",
}

local CP_FLAGS = { "certificate_key", "apiserver_advertise_address", "apiserver_bind_port" }

local copy = config.copy

-- The one JoinConfiguration among the documents; other kubeadm kinds are the cluster's business
-- during a join (warned about and ignored), anything else is an error.
local function pick(docs, errs, warnings)
  local found
  for i, d in ipairs(docs) do
    if d == nil or d == require("kboot.yaml").null then goto continue end
    if type(d) ~= "table" or config.is_array(d) then
      errs[#errs + 1] = ("document %d: must be a mapping with apiVersion and kind"):format(i)
      goto continue
    end
    local kind, av = d.kind, d.apiVersion
    if type(kind) ~= "string" or kind == "" then errs[#errs + 1] = ("document %d.kind: missing"):format(i); goto continue end
    if type(av) ~= "string" or av == "" then errs[#errs + 1] = kind .. ".apiVersion: missing"; goto continue end
    local group, ver = av:match("^(.-)/(.+)$")
    if kind ~= "JoinConfiguration" then
      if group == config.GROUP or schema.component_kinds[kind] then
        warnings[#warnings + 1] = ("ignoring %s document (%s): kboot join takes the cluster's own configuration from the cluster"):format(kind, av)
      else
        errs[#errs + 1] = ("%s.apiVersion: unknown API group in %q"):format(kind, av)
      end
      goto continue
    end
    if group ~= config.GROUP or (ver ~= "v1beta3" and ver ~= "v1beta4") then
      errs[#errs + 1] = ("JoinConfiguration.apiVersion: %q is not supported (use kubeadm.k8s.io/v1beta3 or v1beta4; "
        .. "migrate older files with 'kubeadm config migrate')"):format(av)
      goto continue
    end
    if found then errs[#errs + 1] = "JoinConfiguration: more than one JoinConfiguration document"; goto continue end
    found = d
    ::continue::
  end
  return found
end

-- v1beta3 -> v1beta4: kubeletExtraArgs become {name, value} lists; discovery.timeout moves to
-- timeouts.discovery.
local function convert_v1beta3(d)
  d.apiVersion = config.GROUP .. "/v1beta4"
  local nr = d.nodeRegistration
  if nr and nr.kubeletExtraArgs then nr.kubeletExtraArgs = config.args_list(nr.kubeletExtraArgs) end
  if d.discovery and d.discovery.timeout then
    d.timeouts = d.timeouts or {}
    d.timeouts.discovery = d.discovery.timeout
    d.discovery.timeout = nil
  end
  return d
end

local function set(t, ...)
  local path = { ... }
  for i = 1, #path - 2 do
    t[path[i]] = t[path[i]] or {}
    t = t[path[i]]
  end
  t[path[#path - 1]] = path[#path]
end

-- flags (kboot.cli.parse's result, or a test's plain table) over the file's values
local function apply_flags(d, flags, errs)
  local function v(k) return config.given(flags, k) and flags[k] or nil end
  local cp_given = {}
  for _, k in ipairs(CP_FLAGS) do if v(k) then cp_given[#cp_given + 1] = "--" .. k:gsub("_", "-") end end
  if v("control_plane") then d.controlPlane = d.controlPlane or {} end
  if #cp_given > 0 and not d.controlPlane then
    -- kubeadm drops them with a warning; a flag that silently does nothing is worse
    errs[#errs + 1] = ("%s only mean something with --control-plane (or controlPlane in the config file)"):format(table.concat(cp_given, ", "))
  end
  if v("endpoint") then set(d, "discovery", "bootstrapToken", "apiServerEndpoint", v("endpoint")) end
  local token = v("token")
  local dt = v("discovery_token") or token
  if dt then set(d, "discovery", "bootstrapToken", "token", dt) end
  if v("discovery_token_ca_cert_hash") then set(d, "discovery", "bootstrapToken", "caCertHashes", copy(v("discovery_token_ca_cert_hash"))) end
  if v("discovery_token_unsafe_skip_ca_verification") then set(d, "discovery", "bootstrapToken", "unsafeSkipCAVerification", true) end
  if v("discovery_file") then set(d, "discovery", "file", "kubeConfigPath", v("discovery_file")) end
  local tt = v("tls_bootstrap_token") or token
  if tt then set(d, "discovery", "tlsBootstrapToken", tt) end
  if v("node_name") then set(d, "nodeRegistration", "name", v("node_name")) end
  if v("cri_socket") then set(d, "nodeRegistration", "criSocket", v("cri_socket")) end
  if v("ignore_preflight_errors") then
    d.nodeRegistration = d.nodeRegistration or {}
    local list = d.nodeRegistration.ignorePreflightErrors or {}
    for _, e in ipairs(v("ignore_preflight_errors")) do list[#list + 1] = e end
    d.nodeRegistration.ignorePreflightErrors = list
  end
  if v("skip_phases") then d.skipPhases = copy(v("skip_phases")) end
  if v("patches") then d.patches = { directory = v("patches") } end
  if d.controlPlane then
    if v("certificate_key") then set(d, "controlPlane", "certificateKey", v("certificate_key")) end
    if v("apiserver_advertise_address") then set(d, "controlPlane", "localAPIEndpoint", "advertiseAddress", v("apiserver_advertise_address")) end
    local p = v("apiserver_bind_port")
    if p then
      local n = math.tointeger(tonumber(p))
      if not n then errs[#errs + 1] = ("%s: %q is not a port number (from --apiserver-bind-port)"):format(M.FLAG_PATHS.apiserver_bind_port, tostring(p))
      else set(d, "controlPlane", "localAPIEndpoint", "bindPort", n) end
    end
  end
  if v("dry_run") then d.dryRun = true end
end

-- kubeadm's defaults, and what the host tells (the node name; a control-plane node's address)
function M.default(d, host, warnings)
  d.apiVersion, d.kind = config.GROUP .. "/v1beta4", "JoinConfiguration"
  if d.caCertPath == nil or d.caCertPath == "" then d.caCertPath = M.DEFAULT_CA_CERT_PATH end
  local nr = d.nodeRegistration or {}
  d.nodeRegistration = nr
  if nr.name == nil or nr.name == "" then nr.name = host.hostname or "localhost" end
  if nr.criSocket == nil or nr.criSocket == "" then nr.criSocket = config.DEFAULT_CRI_SOCKET end
  if nr.imagePullPolicy == nil or nr.imagePullPolicy == "" then nr.imagePullPolicy = "IfNotPresent" end
  if nr.imagePullSerial == nil then nr.imagePullSerial = true end
  -- a worker registers untainted; a control-plane node as init's does (SetJoinDynamicDefaults)
  if nr.taints == nil then
    nr.taints = d.controlPlane and { { key = "node-role.kubernetes.io/control-plane", effect = "NoSchedule" } } or {}
  end
  nr.kubeletExtraArgs = nr.kubeletExtraArgs or {}
  nr.ignorePreflightErrors = nr.ignorePreflightErrors or {}
  d.discovery = d.discovery or {}
  local bt = d.discovery.bootstrapToken
  if bt then
    bt.caCertHashes = bt.caCertHashes or {}
    if bt.unsafeSkipCAVerification == nil then bt.unsafeSkipCAVerification = false end
  end
  -- the TLS bootstrap token defaults to the discovery token (kubeadm: --token sets both)
  if (d.discovery.tlsBootstrapToken == nil or d.discovery.tlsBootstrapToken == "") and bt and bt.token then
    d.discovery.tlsBootstrapToken = bt.token
  end
  d.discovery.tlsBootstrapToken = d.discovery.tlsBootstrapToken or ""
  local cp = d.controlPlane
  if cp then
    cp.localAPIEndpoint = cp.localAPIEndpoint or {}
    local ep = cp.localAPIEndpoint
    if ep.bindPort == nil or ep.bindPort == 0 then ep.bindPort = 6443 end
    if ep.advertiseAddress == nil or ep.advertiseAddress == "" or ep.advertiseAddress == "0.0.0.0" then
      if host.default_address then ep.advertiseAddress = host.default_address
      else
        ep.advertiseAddress = "127.0.0.1"
        warnings[#warnings + 1] = ("could not find the default-route address (%s); using 127.0.0.1 (set --apiserver-advertise-address)")
          :format(host.default_address_err or "not known")
      end
    end
    cp.certificateKey = cp.certificateKey or ""
  end
  d.skipPhases = d.skipPhases or {}
  d.timeouts = config.default_timeouts(d.timeouts)
  if d.dryRun == nil then d.dryRun = false end
  return d
end

local function flag_of(path)
  for k, p in pairs(M.FLAG_PATHS) do
    if p == path then return k == "endpoint" and "the API server endpoint argument" or ("--" .. k:gsub("_", "-")) end
  end
end

-- kubeadm's ValidateJoinConfiguration, plus checks kubeadm leaves to a failure later on
function M.validate(d, errs)
  local J = "JoinConfiguration"
  local function e(path, fmt, ...)
    local flag = flag_of(path)
    errs[#errs + 1] = path .. ": " .. fmt:format(...) .. (flag and (" (" .. flag .. ")") or "")
  end
  local disc = d.discovery
  local bt, file = disc.bootstrapToken, disc.file
  if bt and file then
    e(J .. ".discovery", "bootstrapToken and file are mutually exclusive: give an endpoint with --token, or --discovery-file")
  elseif not bt and not file then
    e(J .. ".discovery", "no discovery: give the API server endpoint with --token and --discovery-token-ca-cert-hash, or --discovery-file")
  end
  if bt then
    local P = J .. ".discovery.bootstrapToken"
    if type(bt.token) ~= "string" or bt.token == "" then
      e(P .. ".token", "missing: the bootstrap token `kboot token create` prints")
    else
      local ok, why = tokens.parse(bt.token)
      if not ok then e(P .. ".token", "%s", why) end
    end
    local ep = bt.apiServerEndpoint
    if type(ep) ~= "string" or ep == "" then
      e(P .. ".apiServerEndpoint", "missing: the API server's host:port, e.g. 10.0.0.10:6443")
    else
      local host, port = net.split_host_port(ep)
      local why = schema.address.hostport(ep)
      if why then e(P .. ".apiServerEndpoint", "%s", why)
      elseif not port then e(P .. ".apiServerEndpoint", "%q has no port (want host:port, e.g. %s)", ep, net.join_host_port(host, 6443)) end
    end
    for i, h in ipairs(bt.caCertHashes) do
      if type(h) ~= "string" or not h:lower():match("^sha256:" .. ("%x"):rep(64) .. "$") then
        e(P .. ".caCertHashes", "[%d] %q is not sha256:<64 hex characters> (the hash `kboot init` and `kboot token create --print-join-command` print)", i - 1, tostring(h))
      end
    end
    if #bt.caCertHashes == 0 and not bt.unsafeSkipCAVerification then
      e(P .. ".caCertHashes", "give at least one CA pin with --discovery-token-ca-cert-hash sha256:<hex>, or skip the check with --discovery-token-unsafe-skip-ca-verification (insecure)")
    end
  end
  if file then
    if type(file.kubeConfigPath) ~= "string" or file.kubeConfigPath == "" then
      e(J .. ".discovery.file.kubeConfigPath", "missing: a kubeconfig path or https URL")
    end
  end
  if disc.tlsBootstrapToken ~= "" then
    local ok, why = tokens.parse(disc.tlsBootstrapToken)
    if not ok then e(J .. ".discovery.tlsBootstrapToken", "%s", why) end
  elseif bt then
    e(J .. ".discovery.tlsBootstrapToken", "missing: give --token (or --tls-bootstrap-token)")
  end
  if type(d.caCertPath) ~= "string" or d.caCertPath:find("%z") then
    e(J .. ".caCertPath", "%q must be an absolute path", tostring(d.caCertPath))
  else
    checks.host_path(d.caCertPath, J .. ".caCertPath", errs)
  end
  checks.node_registration(d.nodeRegistration, J .. ".nodeRegistration", errs)
  checks.skip_phases_and_timeouts(d, J, errs)
  local cp = d.controlPlane
  if cp then
    checks.certificate_key(cp.certificateKey, J .. ".controlPlane.certificateKey", errs)
    local ep = cp.localAPIEndpoint
    local a = ep.advertiseAddress
    local why = type(a) ~= "string" and ("%s is not a valid IP address"):format(tostring(a)) or schema.address.ip(a)
    if why then e(J .. ".controlPlane.localAPIEndpoint.advertiseAddress", "%s", why) end
    if math.type(ep.bindPort) ~= "integer" or ep.bindPort < 1 or ep.bindPort > 65535 then
      e(J .. ".controlPlane.localAPIEndpoint.bindPort", "%s is not a valid port (1-65535)", tostring(ep.bindPort))
    end
  end
end

-- load{ file=, text=, docs=, flags=, host= } -> { join=, warnings= } | nil, errs (lines), warnings
-- The file is the admin's, on this host (never under --root). flags: the command line's, over the
-- file; flags.endpoint is the positional API server endpoint. host: kboot.context.host_facts()
-- or a test's table.
local function load(o)
  o = o or {}
  local errs, warnings = {}, {}
  local docs, rerrs, rwarn = config.read_docs(o)
  if not docs then return nil, rerrs, warnings end
  warnings[#warnings + 1] = rwarn
  local d = pick(docs, errs, warnings)
  if d then
    local ver = d.apiVersion:match("/(.+)$")
    config.check_schema(d, schema[ver].JoinConfiguration, "JoinConfiguration", errs)
    -- the conversion trusts the types: only a document that passed its check is converted
    if #errs > 0 then return nil, errs, warnings end
    d = config.strip_nulls(copy(d))
    if ver == "v1beta3" then d = convert_v1beta3(d) end
  end
  if #errs > 0 then return nil, errs, warnings end
  d = d or {}
  apply_flags(d, o.flags, errs)
  d = M.default(d, o.host or require("kboot.context").host_facts(), warnings)
  M.validate(d, errs)
  if #errs > 0 then return nil, errs, warnings end
  return { join = d, warnings = warnings }, nil, warnings
end

function M.load(o)
  local parts, errs, warnings = load(o)
  return parts, errs and schema.one_line(errs), warnings
end

return M

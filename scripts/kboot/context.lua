-- The ctx every flow (init, join and reset) hands its phases and components
-- (docs/api/context.md): the defaulted configuration under flow-neutral names, the run's settings,
-- fs/log/clock, per-run caches under ctx.cache, and ctx.host, the facts of the machine kboot runs on.
-- Host facts are read from the real host (io.open, never kboot.fs): under --root the node's files are
-- a sandbox, but its address, name, environment and runtime sockets are this machine's.
local net = require("kboot.net")
local time = require("kboot.time")

local M = {}

---------------------------------------------------------------------------------------------------
-- Host facts

-- read_host(path) -> contents | nil: a file of the real host (io.open: never under --root)
local function read_host(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
M.read_host = read_host

local function hex_le_ip(h)
  local n = tonumber(h, 16)
  if not n then return nil end
  return string.char(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >> 24) & 0xff)
end

-- default_route_address(read) -> ip | nil, why: kubeadm's choice of advertise address, the IPv4
-- address of the default-route interface. read(path) gives a /proc file's contents (a test passes
-- its own; host_facts passes the real host's).
function M.default_route_address(read)
  local route = read("/proc/net/route")
  if not route then return nil, "cannot read /proc/net/route" end
  local best, best_metric, subnets = nil, math.huge, {}
  for line in route:gmatch("[^\n]+") do
    local iface, dest, _, _, _, _, metric, mask = line:match("^(%S+)%s+(%x+)%s+(%x+)%s+(%x+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%x+)")
    if iface then
      if dest == "00000000" and mask == "00000000" then
        if tonumber(metric) < best_metric then best, best_metric = iface, tonumber(metric) end
      else
        subnets[#subnets + 1] = { iface = iface, net = hex_le_ip(dest), mask = hex_le_ip(mask) }
      end
    end
  end
  if not best then return nil, "no default route in /proc/net/route" end
  local trie = read("/proc/net/fib_trie")
  if not trie then return nil, "cannot read /proc/net/fib_trie" end
  local locals, seen, last = {}, {}, nil
  for line in trie:gmatch("[^\n]+") do
    local ip = line:match("^%s*|%-%-%s+(%d+%.%d+%.%d+%.%d+)%s*$")
    if ip then last = ip
    elseif last and line:match("/32 host LOCAL") then
      if not seen[last] and not net.is_loopback(last) then locals[#locals + 1] = last; seen[last] = true end
    end
  end
  for _, ip in ipairs(locals) do
    local b = net.parse_ip(ip).bytes
    for _, s in ipairs(subnets) do
      if s.iface == best and s.net and s.mask then
        local ok = true
        for i = 1, 4 do if (b:byte(i) & s.mask:byte(i)) ~= s.net:byte(i) then ok = false end end
        if ok then return ip end
      end
    end
  end
  if #locals > 0 then return locals[1] end
  return nil, "no local IPv4 address found in /proc/net/fib_trie"
end

-- proxy_env(environ) -> { {name=, value=}, ... }: kubeadm's GetProxyEnvVars (every variable whose
-- name ends in _proxy, any case, with a value), sorted by name as kubeadm's merge sorts them.
-- environ: NUL-separated NAME=value pairs (/proc/self/environ); nil: the usual spellings via getenv.
local PROXY_VARS = { "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                     "no_proxy", "all_proxy" }
function M.proxy_env(environ)
  local env = {}
  if environ then
    for name, value in environ:gmatch("([^%z=]+)=([^%z]*)") do
      if name:lower():sub(-6) == "_proxy" and value ~= "" then env[#env + 1] = { name = name, value = value } end
    end
  else
    for _, name in ipairs(PROXY_VARS) do
      local value = os.getenv(name)
      if value and value ~= "" then env[#env + 1] = { name = name, value = value } end
    end
  end
  table.sort(env, function(a, b) return a.name < b.name end)
  return env
end

-- kubeadm's known CRI endpoints (constants.go), in its order
M.KNOWN_CRI_SOCKETS = { "unix:///var/run/containerd/containerd.sock", "unix:///var/run/crio/crio.sock",
                        "unix:///var/run/cri-dockerd.sock" }

-- Is path a socket on the real host? open(2) of a socket fails with ENXIO, of nothing with ENOENT.
local ENXIO = 6
local function is_socket(path)
  local f, _, code = io.open(path, "rb")
  if f then f:close() return false end
  return code == ENXIO
end

-- cri_socket(is_sock) -> the one known CRI socket that exists | nil, why (none, or several)
function M.cri_socket(is_sock)
  is_sock = is_sock or is_socket
  local found = {}
  for _, s in ipairs(M.KNOWN_CRI_SOCKETS) do
    if is_sock((s:gsub("^unix://", ""))) then found[#found + 1] = s end
  end
  if #found == 1 then return found[1] end
  if #found == 0 then return nil, "no known CRI socket found" end
  return nil, ("found multiple CRI endpoints on the host (%s): set nodeRegistration.criSocket"):format(table.concat(found, ", "))
end

M.RESOLVED_CONF = "/run/systemd/resolve/resolv.conf"

-- Each fact (or pair of facts) is computed on first read: an offline init with an address and a
-- node name in its config reads no /proc file for them. src: where facts come from (tests):
-- read(path) -> contents | nil, is_socket(path) -> bool; default: this host, through io.open.
local function gatherers(src)
  local read, is_sock = src.read or read_host, src.is_socket or is_socket
  local g = {}
  g.hostname = function()
    local h = read("/proc/sys/kernel/hostname")
    h = h and h:match("^%s*(.-)%s*$"):lower()
    return { hostname = h ~= "" and h or nil }
  end
  g.default_address = function()
    local ip, why = M.default_route_address(read)
    return { default_address = ip, default_address_err = why }
  end
  g.default_address_err = g.default_address
  g.proxy_env = function() return { proxy_env = M.proxy_env(read("/proc/self/environ")) } end
  g.systemd_resolved = function()
    if src.read then return { systemd_resolved = read(M.RESOLVED_CONF) ~= nil } end
    local f, _, code = io.open(M.RESOLVED_CONF, "rb")
    if f then f:close() end
    return { systemd_resolved = f ~= nil or code == 13 } -- EACCES: it exists
  end
  g.cri_socket = function()
    local s, why = M.cri_socket(is_sock)
    return { cri_socket = s, cri_socket_err = why }
  end
  g.cri_socket_err = g.cri_socket
  return g
end

-- host_facts([src]) -> the host's facts (the contract in docs/api/context.md), each read once.
function M.host_facts(src)
  local gather, got = gatherers(src or {}), {}
  return setmetatable({}, { __name = "kboot.host", __index = function(_, k)
    local g = gather[k]
    if not g then return nil end
    if got[k] == nil then
      local v = g()
      for name, fn in pairs(gather) do if fn == g then got[name] = { v[name] } end end
    end
    return got[k][1]
  end })
end

---------------------------------------------------------------------------------------------------
-- The ctx

-- kubeadm v1beta4's timeouts (defaults.go), as seconds
M.TIMEOUTS = { controlPlaneComponentHealthCheck = 240, kubeletHealthCheck = 240, kubernetesAPICall = 60,
               etcdAPICall = 120, tlsBootstrap = 300, discovery = 300, upgradeManifests = 300 }

local function seconds(timeouts)
  local out = {}
  for k, v in pairs(M.TIMEOUTS) do out[k] = v end
  for k, v in pairs(timeouts or {}) do
    local s = type(v) == "number" and v or time.parse_duration(v)
    if s == nil then error(("context: timeouts.%s: %q is not a duration"):format(k, tostring(v)), 3) end
    out[k] = s
  end
  return out
end

-- The settings each flow's configuration document holds for this node: nodeRegistration, the local
-- API endpoint (a control-plane node's), the timeouts, and the role.
local FLOWS = {
  init = function(p)
    if type(p.init) ~= "table" or type(p.cluster) ~= "table" then
      return nil, "parts must be kboot.config.load's result (cluster, init)"
    end
    return { doc = p.init, ep = p.init.localAPIEndpoint or {}, role = "control-plane" }
  end,
  -- a joining node learns the ClusterConfiguration from the cluster: parts.cluster may come later
  -- (context.set_cluster)
  join = function(p)
    if type(p.join) ~= "table" then return nil, "parts must be kboot.join_config.load's result (join)" end
    local cp = p.join.controlPlane
    return { doc = p.join, ep = cp and cp.localAPIEndpoint or {}, role = cp and "control-plane" or "worker" }
  end,
  -- a node reset has no endpoint of its own to configure: what it needs it reads from the node
  reset = function(p)
    if type(p.reset) ~= "table" then return nil, "parts must be kboot.reset_config.load's result (reset)" end
    return { doc = p.reset, ep = {}, role = "worker" }
  end,
}

-- set_cluster(ctx, cluster [, version]): the ClusterConfiguration (and the version entry of its
-- kubernetesVersion) and what follows from it.
function M.set_cluster(ctx, cluster, version)
  ctx.cluster = cluster
  ctx.version = version or (cluster.kubernetesVersion and require("kboot.versions").get(cluster.kubernetesVersion))
  ctx.cert_validity = ctx.cert_validity or time.parse_duration(cluster.certificateValidityPeriod or "8760h")
  ctx.ca_validity = ctx.ca_validity or time.parse_duration(cluster.caCertificateValidityPeriod or "87600h")
end

-- new{ flow=, parts=, opts=, host=, fs=, log=, now=, role= } -> ctx
--   parts: what kboot.config.load returns for init ({ init=, cluster=, kubelet=, kubeproxy=,
--   version=, cert_validity=, ca_validity= }), kboot.join_config.load for join ({ join=, cluster=
--   (optional), kubelet= }), kboot.reset_config.load's { reset= } for reset (its ctx.cluster is
--   kboot.flows.reset's to set); host: a test's own facts (default: host_facts()).
function M.new(o)
  if type(o) ~= "table" then error("context.new: want a table of options", 2) end
  local flow = o.flow or "init"
  local shape = FLOWS[flow]
  if not shape then error(("context.new: unknown flow %q"):format(tostring(flow)), 2) end
  local p = o.parts
  if type(p) ~= "table" then error("context.new: parts must be a table", 2) end
  local f, why = shape(p)
  if not f then error("context.new: " .. why, 2) end
  local role = o.role or f.role
  if role ~= "control-plane" and role ~= "worker" then
    error(("context.new: role %q is not control-plane or worker"):format(tostring(role)), 2)
  end
  local opts = o.opts or {}
  local ctx = {
    flow = flow, role = role,
    node = f.doc.nodeRegistration,
    endpoint = { address = f.ep.advertiseAddress, port = f.ep.bindPort or 6443 },
    timeouts = seconds(f.doc.timeouts),
    kubelet = p.kubelet, kubeproxy = p.kubeproxy,
    cert_validity = p.cert_validity, ca_validity = p.ca_validity,
    fs = o.fs or require("kboot.fs"), log = o.log or require("kboot.log"), now = o.now or os.time(),
    dry_run = opts.dry_run == true, opts = opts,
    host = o.host or M.host_facts(),
    cache = {},
  }
  ctx[flow] = f.doc -- ctx.init or ctx.join: the flow's own document, for the flow's own code
  if p.cluster then M.set_cluster(ctx, p.cluster, p.version) end
  return ctx
end

return M

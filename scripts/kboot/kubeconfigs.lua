-- The kubeconfig phases of `kboot init`: admin.conf, super-admin.conf, kubelet.conf,
-- controller-manager.conf and scheduler.conf as kubeadm v1.31 writes them
-- (phases/kubeconfig/kubeconfig.go): client certificates signed by the cluster CA, embedded.
local pki = require("kboot.pki")
local tbl = require("kboot.certs_table")
local certs = require("kboot.certs")

local M = {}

M.DIR = "/etc/kubernetes"
local fail = certs.fail

local function log(ctx) return ctx.log or require("kboot.log") end
local function kubeconfig() return require("kboot.kubeconfig") end

local net = require("kboot.net")
local join_host_port = net.join_host_port

-- https://<advertise address>:<bind port> (kubeadm's GetLocalAPIEndpoint).
function M.local_endpoint(ctx)
  return "https://" .. join_host_port(ctx.endpoint.address, tostring(ctx.endpoint.port))
end

-- controlPlaneEndpoint with the bind port when it has none, else the local endpoint
-- (kubeadm's GetControlPlaneEndpoint).
function M.control_plane_endpoint(ctx)
  local cpe = ctx.cluster.controlPlaneEndpoint
  if not cpe or cpe == "" then return M.local_endpoint(ctx) end
  local host, port = net.split_host_port(cpe)
  if not host or not (net.is_ip(host) or net.is_dns_subdomain(host)) then
    fail("kubeconfig", "controlPlaneEndpoint %q is not host[:port] with an IP address or DNS name", cpe)
  end
  return "https://" .. join_host_port(host, port or tostring(ctx.endpoint.port))
end

-- The five files: name (phase kubeconfig/<name>), file, client CN, O, which server.
M.specs = {
  { name = "admin", file = "admin.conf", cn = "kubernetes-admin", o = { "kubeadm:cluster-admins" }, server = "cpe",
    help = "Generate a kubeconfig file for the admin to use and for kboot itself" },
  { name = "super-admin", file = "super-admin.conf", cn = "kubernetes-super-admin", o = { "system:masters" }, server = "cpe",
    help = "Generate a kubeconfig file for the super-admin" },
  { name = "kubelet", file = "kubelet.conf", cn = function(ctx) return "system:node:" .. ctx.node.name end,
    o = { "system:nodes" }, server = "cpe",
    help = "Generate a kubeconfig file for the kubelet to use *only* for cluster bootstrapping purposes" },
  { name = "controller-manager", file = "controller-manager.conf", cn = "system:kube-controller-manager", o = {},
    server = "local", help = "Generate a kubeconfig file for the controller manager to use" },
  { name = "scheduler", file = "scheduler.conf", cn = "system:kube-scheduler", o = {}, server = "local",
    help = "Generate a kubeconfig file for the scheduler to use" },
}
local by_name = {}
for _, s in ipairs(M.specs) do by_name[s.name] = s end
function M.get(name) return by_name[name] end

function M.path(ctx, s) return (ctx.kubeconfig_dir or M.DIR) .. "/" .. s.file end

function M.server(ctx, s)
  return s.server == "cpe" and M.control_plane_endpoint(ctx) or M.local_endpoint(ctx)
end

function M.client_spec(ctx, s)
  local cn = s.cn
  if type(cn) == "function" then cn = cn(ctx) end
  local now = ctx.now or os.time()
  return {
    cn = cn, o = s.o, dns = {}, ip = {}, usages = tbl.LEAF_USAGES, ext_key_usages = { "client auth" },
    is_ca = false, not_before = now - tbl.BACKDATE,
    not_after = now + (ctx.cert_validity or tbl.DEFAULT_CERT_VALIDITY),
  }
end

local function enabled(ctx, name)
  return ctx.phase_enabled == nil or not not ctx.phase_enabled(name)
end

-- Ids of the client keys the kubeconfig phases will create (for certs.pregenerate's batch).
function M.keys_needed(ctx)
  local dir = ctx.cluster.certificatesDir
  local ca_key_will_exist = ctx.fs.exists(dir .. "/ca.key") or not ctx.fs.exists(dir .. "/ca.crt")
  local ids = {}
  if not ca_key_will_exist then return ids end
  for _, s in ipairs(M.specs) do
    if enabled(ctx, "kubeconfig/" .. s.name) and not ctx.fs.exists(M.path(ctx, s)) then
      ids[#ids + 1] = "kubeconfig:" .. s.name
    end
  end
  return ids
end

local function trim(s) return (s or ""):match("^%s*(.-)%s*$") end

-- Check an existing kubeconfig against what it should be; returns a list of differences.
local function differences(ctx, s, path, ca)
  local t, err = kubeconfig().load(path)
  if not t then return { ("it cannot be loaded: %s"):format(tostring(err)) } end
  local cur, cerr = kubeconfig().current(t)
  if not cur then return { ("its current context cannot be resolved: %s"):format(tostring(cerr)) } end
  local d = {}
  if trim(cur.ca_pem) ~= trim(ca.pem) then d[#d + 1] = "it has a different CA certificate" end
  local want = M.server(ctx, s)
  if cur.server ~= want then d[#d + 1] = ("its server is %s, want %s"):format(tostring(cur.server), want) end
  if cur.cert_pem then
    local c = pki.load_cert(cur.cert_pem)
    if not c then
      d[#d + 1] = "its client certificate cannot be parsed"
    else
      local spec = M.client_spec(ctx, s)
      local info = c:info()
      if info.subject.cn ~= spec.cn then d[#d + 1] = ("client CN is %q, want %q"):format(tostring(info.subject.cn), spec.cn) end
      local o = table.concat(info.subject.o or {}, ",")
      if o ~= table.concat(spec.o, ",") then d[#d + 1] = ("client O is %q, want %q"):format(o, table.concat(spec.o, ",")) end
      if not c:issued_by(ca.cert) then d[#d + 1] = "its client certificate is not signed by the cluster CA" end
      local k = cur.key_pem and pki.load_key(cur.key_pem)
      if not k or not k:matches(c) then d[#d + 1] = "its client key does not match its client certificate" end
      if c:expires_in() < 0 then
        log(ctx).warn("kubeconfig", "the client certificate in %s has expired; renew it", path)
      end
    end
  elseif not cur.token then
    d[#d + 1] = "it has no client credentials"
  end
  return d
end

function M.ensure(ctx, name)
  local s = by_name[name]
  if not s then fail("kubeconfig", "unknown kubeconfig %q", tostring(name)) end
  local op = "kubeconfig/" .. name
  local ca = certs.load_ca(ctx, "ca")
  if not ca then
    fail(op, "the CA files do not exist in %s; run phase certs/ca first", ctx.cluster.certificatesDir)
  end
  local path = M.path(ctx, s)
  if ctx.fs.exists(path) then
    local d = differences(ctx, s, path, ca)
    if #d > 0 then
      fail(op, "a kubeconfig file %s exists already but does not match: %s. Remove it to have it regenerated",
        path, table.concat(d, "; "))
    end
    log(ctx).info("kubeconfig", "Using existing kubeconfig file: %q", path)
    return true
  end
  if not ca.key then
    fail(op, "external CA mode: %s is missing and there is no CA key to sign its client certificate; provide it", path)
  end
  certs.pregenerate(ctx)
  local key = certs.take_key(ctx, "kubeconfig:" .. name)
  local spec = M.client_spec(ctx, s)
  local cert = pki.sign(spec, key, ca.cert, ca.key)
  local t = kubeconfig().build {
    cluster_name = ctx.cluster.clusterName or "kubernetes",
    server = M.server(ctx, s),
    ca_pem = ca.pem,
    user = spec.cn,
    cert_pem = cert:pem(),
    key_pem = certs.key_pem(key),
  }
  log(ctx).info("kubeconfig", "%s %q kubeconfig file", ctx.dry_run and "dry run: would write" or "Writing", s.file)
  local dir = ctx.kubeconfig_dir or M.DIR
  local ok, err = ctx.fs.mkdir(dir, 493) -- 0755
  if ok then ok, err = kubeconfig().write(path, t) end
  if not ok then fail(op, "cannot write %s: %s", path, tostring(err)) end
  return true
end

function M.phases()
  local out = {}
  for _, s in ipairs(M.specs) do
    out[#out + 1] = { name = "kubeconfig/" .. s.name, help = s.help,
                      run = certs.returning(function(ctx) return M.ensure(ctx, s.name) end) }
  end
  return out
end

-- What this node's reset removes: the kubeconfig files of this node (the five kubeconfig phases
-- write, and the kubelet's bootstrap kubeconfig a join leaves).
function M.clean(ctx)
  local paths = {}
  for _, s in ipairs(M.specs) do paths[#paths + 1] = M.path(ctx, s) end
  paths[#paths + 1] = (ctx.kubeconfig_dir or M.DIR) .. "/bootstrap-kubelet.conf"
  return require("kboot.component").remove_files(ctx, paths)
end

-- Everything at once; raises the first failure as a kboot.error.
function M.run_all(ctx)
  for _, s in ipairs(M.specs) do M.ensure(ctx, s.name) end
  return true
end

return M

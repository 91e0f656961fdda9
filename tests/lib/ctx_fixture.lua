-- The phase ctx of a defaulted v1beta4 configuration, built by kboot.context.new as init builds it,
-- with a fixed host (no fact of the machine running the tests leaks in), for tests of the certs,
-- kubeconfig, component and online modules.
local M = {}

local function merge(dst, src)
  for k, v in pairs(src or {}) do
    if type(v) == "table" and type(dst[k]) == "table" and v[1] == nil and next(v) ~= nil then
      merge(dst[k], v)
    else
      dst[k] = v
    end
  end
  return dst
end
M.merge = merge

-- The host of every fixture ctx unless a test passes its own.
function M.host(o)
  return merge({ hostname = nil, default_address = "10.0.0.10", proxy_env = {}, systemd_resolved = false }, o)
end

-- M.new{ root = DIR (fs root, optional), cluster = {overrides}, init = {overrides}, external_etcd =,
--        kubelet =, kubeproxy =, version =, cert_validity =, ca_validity =, dry_run =, opts =, now =,
--        hostname =, host = {facts} }
-- The overrides are merged after config.load defaulted and validated the base configuration, so
-- a test can hand a module a value the config loader would reject.
function M.new(o)
  o = o or {}
  local host = o.host or M.host({ hostname = o.hostname })
  local G = "kubeadm.k8s.io/v1beta4"
  local parts = assert(require("kboot.config").load({ host = host, docs = {
    { apiVersion = G, kind = "InitConfiguration", localAPIEndpoint = { advertiseAddress = "10.0.0.10" },
      nodeRegistration = { name = "node-1" } },
    { apiVersion = G, kind = "ClusterConfiguration", kubernetesVersion = "v1.31.0" },
  } }))
  merge(parts.cluster, o.cluster)
  if o.external_etcd then parts.cluster.etcd = { external = o.external_etcd } end
  merge(parts.init, o.init)
  parts.kubelet, parts.kubeproxy = o.kubelet, o.kubeproxy
  parts.version = o.version or assert(require("kboot.versions").get(parts.cluster.kubernetesVersion))
  parts.cert_validity = o.cert_validity or parts.cert_validity
  parts.ca_validity = o.ca_validity or parts.ca_validity
  local fs = require("kboot.fs")
  if o.root then fs.set_root(o.root) end
  local opts = o.opts or {}
  if o.dry_run then opts.dry_run = true end
  return require("kboot.context").new({ flow = "init", parts = parts, opts = opts, host = host, fs = fs,
                                        now = o.now })
end

return M

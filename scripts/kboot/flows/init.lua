-- The `kboot init` flow as data: its phases in kubeadm's order and names (kboot.phases runs them),
-- the help of the parent names, the settings only init has, and connect, which gives the online
-- phases their API client. Phase modules load when their phase runs: an offline init loads no
-- online, preflight or addon module.
local kerror = require("kboot.error")

local M = { name = "init" }

local function external_etcd(ctx)
  return ctx.cluster.etcd.external ~= nil, "external etcd is configured"
end
local function disabled(section)
  return function(ctx)
    return ctx.cluster[section].disabled == true, ("%s.disabled is set in the ClusterConfiguration"):format(section)
  end
end

-- online = true: the phase needs the API server (--offline skips it; files are committed before it)
M.phases = {
  { name = "preflight", help = "Run pre-flight checks",
    run = function(ctx) return require("kboot.preflight").run(ctx) end },
  { phases = "kboot.certs" },
  { phases = "kboot.kubeconfigs" },
  { name = "etcd/local", help = "Generate the static Pod manifest file for a local, single-node etcd",
    component = "kboot.components.etcd", skip = external_etcd },
  { name = "control-plane/apiserver", help = "Generate the kube-apiserver static Pod manifest",
    component = "kboot.components.kube_apiserver" },
  { name = "control-plane/controller-manager", help = "Generate the kube-controller-manager static Pod manifest",
    component = "kboot.components.kube_controller_manager" },
  { name = "control-plane/scheduler", help = "Generate the kube-scheduler static Pod manifest",
    component = "kboot.components.kube_scheduler" },
  { name = "kubelet-start", help = "Write kubelet settings and (re)start the kubelet",
    component = "kboot.components.kubelet" },
  { name = "wait-control-plane", online = true, module = "kboot.online.wait_control_plane" },
  { name = "upload-config/kubeadm", online = true, module = "kboot.online.upload_config" },
  { name = "upload-config/kubelet", online = true, module = "kboot.online.upload_config" },
  { name = "upload-certs", online = true, module = "kboot.online.upload_certs" },
  { name = "mark-control-plane", online = true, module = "kboot.online.mark_control_plane" },
  { name = "bootstrap-token", online = true, module = "kboot.online.bootstrap_token" },
  { name = "kubelet-finalize/enable-client-cert-rotation", online = true, module = "kboot.online.kubelet_finalize" },
  { name = "addon/coredns", help = "Install the CoreDNS addon", online = true,
    component = "kboot.components.coredns", skip = disabled("dns") },
  { name = "addon/kube-proxy", help = "Install the kube-proxy addon", online = true,
    component = "kboot.components.kube_proxy", skip = disabled("proxy") },
  { name = "show-join-command", online = true, module = "kboot.online.show_join" },
}

-- the parents' help (kubeadm's wording), for `kboot init --help` and `kboot init phase PARENT --help`
M.parents = {
  certs = "Certificate generation",
  kubeconfig = "Generate all kubeconfig files necessary to establish the control plane and the admin kubeconfig file",
  etcd = "Generate static Pod manifest file for local etcd",
  ["control-plane"] = "Generate all static Pod manifest files necessary to establish the control plane",
  ["upload-config"] = "Upload the kubeadm and kubelet configuration to a ConfigMap",
  ["kubelet-finalize"] = "Update settings relevant to the kubelet after TLS bootstrap",
  addon = "Install required addons for passing conformance tests",
}

-- prepare(ctx): init's own settings on ctx (docs/api/context.md): the bootstrap tokens (an empty one
-- generated once for this run), the certificate key with --upload-certs, the flags the online
-- phases read, and the endpoint the cluster is reached at.
function M.prepare(ctx)
  local crypto = require("kboot.crypto")
  local net = require("kboot.net")
  local opts = ctx.opts
  for i, t in ipairs(ctx.init.bootstrapTokens or {}) do
    if t.token == nil or t.token == "" then
      t.token = crypto.token()
      -- made up for this run: on the cluster only if the bootstrap-token phase runs
      if i == 1 then ctx.token_generated = true end
    end
  end
  ctx.tokens = ctx.init.bootstrapTokens or {}
  ctx.token = ctx.tokens[1] and ctx.tokens[1].token
  ctx.upload_certs = opts.upload_certs == true
  if ctx.upload_certs then
    local ck = ctx.init.certificateKey
    ctx.certificate_key = (ck ~= nil and ck ~= "") and ck or crypto.certificate_key()
  end
  ctx.kube_proxy_server = opts.kube_proxy_server
  ctx.skip_token_print = opts.skip_token_print == true
  -- kubeadm's GetControlPlaneEndpoint: controlPlaneEndpoint (the bind port when it has none), else
  -- this node's endpoint (config.load has checked the syntax)
  local cpe = ctx.cluster.controlPlaneEndpoint
  if cpe == nil or cpe == "" then
    ctx.control_plane_endpoint = net.join_host_port(ctx.endpoint.address, ctx.endpoint.port)
  else
    local host, port = net.split_host_port(cpe)
    ctx.control_plane_endpoint = net.join_host_port(host, port or ctx.endpoint.port)
  end
  return ctx
end

-- A kubeconfig a phase wrote, read through ctx.fs (root-aware; a dry run sees its own writes).
local function load_kubeconfig(ctx, file)
  local path = "/etc/kubernetes/" .. file
  local text, err = ctx.fs.read(path)
  if not text then return nil, err end
  return require("kboot.kubeconfig").parse(text, path)
end

-- connect(ctx) -> true | nil, kboot.error: ctx.kube (admin.conf) and ctx.kube_super
-- (super-admin.conf, or why not in ctx.kube_super_err) for the online phases, then the
-- ClusterRoleBinding kubeadm:cluster-admins that gives admin.conf (O=kubeadm:cluster-admins) its
-- rights, ensured before any phase uses ctx.kube, as kubeadm does when it first builds its client.
function M.connect(ctx)
  if ctx.kube then return true end
  local kube = require("kboot.kube")
  -- retries of one API call (connection errors, 429, 5xx: an API server restarting) stop at
  -- timeouts.kubernetesAPICall (kubeadm's 1m)
  local o = { dry_run = ctx.dry_run == true, retry_deadline = ctx.timeouts.kubernetesAPICall, retries = 30 }
  local t, err = load_kubeconfig(ctx, "admin.conf")
  if not t then return nil, kerror.new("connect", tostring(err) .. " (run the kubeconfig phase first)") end
  local k, kerr = kube.new(t, o)
  if not k then return nil, kerror.new("connect", "admin.conf: " .. tostring(kerr)) end
  ctx.kube = k
  local st, serr = load_kubeconfig(ctx, "super-admin.conf")
  if st then ctx.kube_super, serr = kube.new(st, o) end
  if not ctx.kube_super then ctx.kube_super_err = tostring(serr) end
  local ok, cerr = require("kboot.online.upload_config").ensure_cluster_admins(ctx)
  if not ok then return nil, kerror.is(cerr) and cerr or kerror.new("connect", tostring(cerr)) end
  return true
end

return M

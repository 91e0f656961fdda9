-- The `kboot join` flow as data: kubeadm join's phases and names (kboot.phases runs them), the
-- help of the parent names, prepare, and connect: discovery (the cluster's CA, proven by the token's
-- signature and the CA pin), the bootstrap-token client for the endpoint the admin gave (a VIP or
-- load balancer: kboot writes that, not cluster-info's server, into every kubeconfig unless
-- --use-cluster-info-endpoint), and the cluster's ClusterConfiguration and kubelet configuration.
local kerror = require("kboot.error")

local M = { name = "join" }

local function worker(ctx) return ctx.role ~= "control-plane", "this node joins as a worker (no --control-plane)" end
local function minted(ctx)
  return not ctx.opts.kubelet_bootstrap, "kubelet.conf was minted by kboot itself (--kubelet-bootstrap leaves it to the kubelet)"
end
local function external_etcd(ctx)
  return ctx.cluster.etcd.external ~= nil, "the cluster's etcd is external"
end
local function either(...)
  local skips = { ... }
  return function(ctx)
    for _, s in ipairs(skips) do
      local yes, why = s(ctx)
      if yes then return yes, why end
    end
    return false
  end
end
local function no_key(ctx)
  local cp = require("kboot.online.join_control_plane")
  local has, why = cp.has_certificate_key(ctx)
  return not has, why
end

-- a control-plane phase: skipped on a worker, run by kboot.online.join_control_plane
local function cp_phase(name, help, fn, skip, renders)
  return { name = name, help = help, online = true, skip = skip and either(worker, skip) or worker, renders = renders,
           run = function(ctx) return require("kboot.online.join_control_plane")[fn](ctx) end }
end

-- Every phase needs what discovery finds (the CA, the cluster's configuration): all are online.
-- renders: the components a phase renders (kboot.patches tries the patches on them first).
M.phases = {
  { name = "preflight", help = "Run join pre-flight checks", online = true,
    run = function(ctx) return require("kboot.preflight").run(ctx) end },
  cp_phase("control-plane-prepare/download-certs", "Download certificates shared among control-plane nodes from the kubeadm-certs Secret",
    "download_certs", no_key),
  cp_phase("control-plane-prepare/certs", "Generate the certificates for the new control plane components", "certs"),
  cp_phase("control-plane-prepare/kubeconfig", "Generate the kubeconfig for the new control plane components", "kubeconfigs"),
  cp_phase("control-plane-prepare/control-plane", "Generate the manifests for the new control plane components", "control_plane",
    nil, { "kboot.components.kube_apiserver", "kboot.components.kube_controller_manager", "kboot.components.kube_scheduler" }),
  { name = "kubelet-start", help = "Write the kubelet settings and certificates, and (re)start the kubelet", online = true,
    renders = { "kboot.components.kubelet" },
    run = function(ctx) return require("kboot.online.join_kubelet").run(ctx) end },
  cp_phase("etcd-join", "Join this node to the cluster's etcd as a learner, write its etcd manifest, then promote it",
    "etcd_join", external_etcd, { "kboot.components.etcd" }),
  { name = "kubelet-wait-bootstrap", help = "Wait for the kubelet to bootstrap itself (with --kubelet-bootstrap)", online = true,
    skip = minted, run = function(ctx) return require("kboot.online.join_kubelet").wait_bootstrap(ctx) end },
  cp_phase("control-plane-join/mark-control-plane", "Mark a node as a control-plane", "mark_control_plane"),
  cp_phase("wait-control-plane", "Wait for this node's API server to be healthy", "wait_control_plane"),
}

M.parents = {
  ["control-plane-prepare"] = "Prepare the machine for serving a control plane",
  ["control-plane-join"] = "Join a machine as a control plane instance",
}

-- prepare(ctx) -> ctx, or nil, kboot.error when this build cannot do what the config asks
function M.prepare(ctx)
  return ctx
end

local function discover(ctx)
  local d = ctx.join.discovery
  local discovery = require("kboot.discovery")
  if d.bootstrapToken then
    local bt = d.bootstrapToken
    ctx.log.info("discovery", "Fetching cluster-info from %s, proven by token %s (up to %s)", bt.apiServerEndpoint,
      bt.token:match("^[^.]*"), require("kboot.time").format_duration(ctx.timeouts.discovery))
    return discovery.token{ endpoint = bt.apiServerEndpoint, token = bt.token, pins = bt.caCertHashes or {},
                            unsafe_skip = bt.unsafeSkipCAVerification == true, timeout = ctx.timeouts.discovery,
                            log = ctx.log }
  end
  return discovery.file{ source = d.file.kubeConfigPath, tls_bootstrap_token = d.tlsBootstrapToken }
end

-- The server every kubeconfig of this node names: the endpoint the admin joined through.
local function chosen_server(ctx, found)
  local bt = ctx.join.discovery.bootstrapToken
  local given = bt and ("https://" .. bt.apiServerEndpoint) or found.server
  if given == found.server then return given end
  if ctx.opts.use_cluster_info_endpoint then
    ctx.log.info("discovery", "Using cluster-info's server %s (--use-cluster-info-endpoint), not %s", found.server, given)
    return found.server
  end
  ctx.log.info("discovery", "Joining through %s; cluster-info names %s (kubeadm's choice, --use-cluster-info-endpoint)", given, found.server)
  return given
end

local function config_map(read, name)
  return read:get("v1", "ConfigMap", "kube-system", name)
end

-- a ConfigMap's data, {} when the answer has none (or something else than a mapping there)
local function data_of(cm) return type(cm.data) == "table" and cm.data or {} end

-- The ClusterConfiguration kube-system/kubeadm-config holds, loaded (converted, defaulted and
-- checked) as kboot.config loads a file.
local function cluster_config(ctx, read)
  local cm, err = config_map(read, "kubeadm-config")
  if not cm and type(err) == "table" and err.status == 401 then
    -- cluster-info's signature can outlive the token (the signer and the token cleaner lag), and a
    -- signing-only token signs but does not authenticate: say which, not just "Unauthorized"
    return nil, kerror.new("join", "the API server refused this node's bootstrap credentials (401 Unauthorized) "
      .. "reading ConfigMap kube-system/kubeadm-config: the TLS bootstrap token has expired or was deleted, or is "
      .. "not for authentication (usage-bootstrap-authentication); make a new one with 'kboot token create' on a control-plane node")
  end
  if not cm then return nil, kerror.new("join", "cannot read ConfigMap kube-system/kubeadm-config: " .. tostring(err)) end
  local text = data_of(cm).ClusterConfiguration
  if type(text) ~= "string" then return nil, kerror.new("join", "ConfigMap kube-system/kubeadm-config has no ClusterConfiguration") end
  local doc, derr = require("kboot.yaml").decode(text)
  if type(doc) ~= "table" then return nil, kerror.new("join", "kube-system/kubeadm-config: " .. tostring(derr)) end
  local parts, errs = require("kboot.config").load{ docs = { doc }, host = ctx.host }
  if not parts then
    return nil, kerror.new("join", "kube-system/kubeadm-config: " .. table.concat(errs, "; "))
  end
  return parts
end

-- The cluster's KubeletConfiguration: kubelet-config, or kubelet-config-1.MINOR on clusters that
-- kubeadm older than 1.24 made.
local function kubelet_config(ctx, read)
  local cm, err = config_map(read, "kubelet-config")
  -- there the bootstrap token's Role names only kubelet-config-1.MINOR, so the API server answers
  -- 403 for kubelet-config, not 404
  if not cm and type(err) == "table" and (err.status == 404 or err.status == 403) and ctx.version then
    local old = ("kubelet-config-1.%d"):format(ctx.version.minor)
    local cm2, err2 = config_map(read, old)
    if not cm2 then
      return nil, kerror.new("join", ("cannot read the cluster's kubelet configuration (ConfigMap kube-system/kubelet-config, "
        .. "or %s as kubeadm before 1.24 named it): %s; %s"):format(old, tostring(err), tostring(err2)))
    end
    cm, err = cm2, nil
  end
  if not cm then return nil, kerror.new("join", "cannot read the cluster's kubelet configuration (ConfigMap kube-system/kubelet-config): " .. tostring(err)) end
  local text = data_of(cm).kubelet
  if type(text) ~= "string" then return nil, kerror.new("join", "ConfigMap kube-system/kubelet-config has no kubelet key") end
  local doc, derr = require("kboot.yaml").decode(text)
  if type(doc) ~= "table" then return nil, kerror.new("join", "ConfigMap kube-system/kubelet-config: " .. tostring(derr or "not a mapping")) end
  -- typed as a file's KubeletConfiguration: the kubelet phases read its fields
  local schema, errs = require("kboot.config_schema"), {}
  schema.check(doc, schema.KubeletConfiguration, "KubeletConfiguration", errs)
  if #errs > 0 then
    return nil, kerror.new("join", "ConfigMap kube-system/kubelet-config: " .. table.concat(schema.one_line(errs), "; "))
  end
  return doc
end

-- connect(ctx) -> true | nil, kboot.error: ctx.kube (the bootstrap-token client; records writes
-- in a dry run), ctx.cache.bootstrap { kube, read, server, ca_pem, pin }, ctx.cluster, ctx.kubelet.
function M.connect(ctx)
  if ctx.kube then return true end
  local found, err = discover(ctx)
  if not found then return nil, err end
  local server = chosen_server(ctx, found)
  local token = ctx.join.discovery.tlsBootstrapToken
  local http = require("kboot.http")
  local kube = require("kboot.kube")
  local o = { server = server, ca_pem = found.ca_pem, retry_deadline = ctx.timeouts.kubernetesAPICall, retries = 30 }
  local creds = found.credentials or {}
  if token and token ~= "" then o.token = token else o.token, o.cert_pem, o.key_pem = creds.token, creds.cert_pem, creds.key_pem end
  local c, cerr = http.client(o)
  if not c then return nil, kerror.new("join", ("cannot make a client for %s: %s"):format(server, tostring(cerr))) end
  local read = assert(kube.new(c))
  ctx.kube = ctx.dry_run and assert(kube.new(c, { dry_run = true })) or read
  local parts
  ctx.log.info("join", "Reading the cluster's configuration (kube-system/kubeadm-config, kubelet-config) from %s (retrying up to %s)",
    server, require("kboot.time").format_duration(ctx.timeouts.kubernetesAPICall))
  parts, err = cluster_config(ctx, read)
  if not parts then return nil, err end
  require("kboot.context").set_cluster(ctx, parts.cluster, parts.version)
  local kl
  kl, err = kubelet_config(ctx, read)
  if not kl then return nil, err end
  ctx.kubelet = kl
  ctx.cache.bootstrap = { kube = ctx.kube, read = read, server = server, ca_pem = found.ca_pem, pin = found.pin }
  return true
end

return M

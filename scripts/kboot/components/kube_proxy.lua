-- The kube-proxy addon as kubeadm creates it (v1.31+: phases/addons/proxy/proxy.go, manifests.go):
-- ServiceAccount kube-proxy, ConfigMap kube-proxy (config.conf = KubeProxyConfiguration,
-- kubeconfig.conf = in-cluster kubeconfig), DaemonSet kube-proxy, ClusterRoleBinding
-- kubeadm:node-proxier and Role/RoleBinding kube-proxy for joining nodes. Unlike kubeadm, the API
-- server address in kubeconfig.conf is a setting (--kube-proxy-server), for HA setups whose load
-- balancer address is not the controlPlaneEndpoint.
local M = { name = "kube-proxy", phase = "addon/kube-proxy" }

M.NS = "kube-system"
M.CONFIG_DIR = "/var/lib/kube-proxy"
M.BOOTSTRAP_GROUP = "system:bootstrappers:kubeadm:default-node-token"

local function yaml() return require("kboot.yaml") end
local function arr(t) return setmetatable(t, yaml().array_mt) end

-- The proxy mode kubeadm leaves to kube-proxy ("" = iptables on Linux) for every supported minor;
-- KubeProxyConfiguration.mode overrides.
M.by_version = { mode = { [20] = "" } }
function M.default_mode(ctx)
  local best, mode = -1, ""
  for minor, m in pairs(M.by_version.mode) do
    if minor <= (ctx.version and ctx.version.minor or 99) and minor > best then best, mode = minor, m end
  end
  return mode
end

-- check_server(url) -> url | nil, err: an https URL with a host, optional port, nothing else.
function M.check_server(url)
  if type(url) ~= "string" then return nil, "must be a string" end
  local host, port = url:match("^https://(%[[%x:]+%])(:?%d*)$")
  if not host then host, port = url:match("^https://([%w%.%-]+)(:?%d*)$") end
  if not host then return nil, ("%q is not https://HOST[:PORT]"):format(url) end
  local p = tonumber(port:sub(2))
  if port ~= "" and (not p or p < 1 or p > 65535) then return nil, ("%q: port must be 1..65535"):format(url) end
  return url
end

-- The server in kubeconfig.conf: --kube-proxy-server, else kubeadm's control-plane endpoint.
function M.server(ctx)
  if ctx.kube_proxy_server and ctx.kube_proxy_server ~= "" then
    local ok, err = M.check_server(ctx.kube_proxy_server)
    -- init.lua checks the flag before anything runs: a bad value here is a caller's mistake
    if not ok then error("kube-proxy: --kube-proxy-server " .. err, 2) end
    return ctx.kube_proxy_server
  end
  return require("kboot.kubeconfigs").control_plane_endpoint(ctx)
end

function M.image(ctx)
  return require("kboot.manifest").kube_image(ctx, "kube-proxy")
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return setmetatable(t, getmetatable(v))
end

-- The KubeProxyConfiguration kubeadm defaults (componentconfigs/kubeproxy.go), the user's document
-- over it. kube-proxy defaults every field not written here itself.
function M.config(ctx)
  local adv = ctx.endpoint.address or ""
  local cfg = {
    apiVersion = "kubeproxy.config.k8s.io/v1alpha1", kind = "KubeProxyConfiguration",
    bindAddress = adv:find(":", 1, true) and "::" or "0.0.0.0",
    clientConnection = { kubeconfig = M.CONFIG_DIR .. "/kubeconfig.conf" },
    mode = M.default_mode(ctx),
  }
  local pods = ctx.cluster.networking.podSubnet
  if pods and pods ~= "" then cfg.clusterCIDR = pods end
  for k, v in pairs(ctx.kubeproxy or {}) do
    if type(v) == "table" and type(cfg[k]) == "table" and v[1] == nil then
      for k2, v2 in pairs(v) do cfg[k][k2] = copy(v2) end
    else
      cfg[k] = copy(v)
    end
  end
  cfg.apiVersion, cfg.kind = "kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration"
  return cfg
end

function M.kubeconfig(ctx)
  return table.concat({
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- cluster:",
    "    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    "    server: " .. M.server(ctx),
    "  name: default",
    "contexts:",
    "- context:",
    "    cluster: default",
    "    namespace: default",
    "    user: default",
    "  name: default",
    "current-context: default",
    "users:",
    "- name: default",
    "  user:",
    "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token",
  }, "\n")
end

local function daemonset(ctx)
  return {
    apiVersion = "apps/v1", kind = "DaemonSet",
    metadata = { name = "kube-proxy", namespace = M.NS, labels = { ["k8s-app"] = "kube-proxy" } },
    spec = {
      selector = { matchLabels = { ["k8s-app"] = "kube-proxy" } },
      updateStrategy = { type = "RollingUpdate" },
      template = {
        metadata = { labels = { ["k8s-app"] = "kube-proxy" } },
        spec = {
          priorityClassName = "system-node-critical",
          containers = arr({ {
            name = "kube-proxy", image = M.image(ctx), imagePullPolicy = "IfNotPresent",
            command = arr({ "/usr/local/bin/kube-proxy", "--config=" .. M.CONFIG_DIR .. "/config.conf",
                            "--hostname-override=$(NODE_NAME)" }),
            securityContext = { capabilities = { add = arr({ "NET_ADMIN", "SYS_MODULE" }) } },
            volumeMounts = arr({ { mountPath = M.CONFIG_DIR, name = "kube-proxy" },
                                 { mountPath = "/run/xtables.lock", name = "xtables-lock", readOnly = false },
                                 { mountPath = "/lib/modules", name = "lib-modules", readOnly = true } }),
            env = arr({ { name = "NODE_NAME", valueFrom = { fieldRef = { fieldPath = "spec.nodeName" } } } }),
          } }),
          hostNetwork = true,
          serviceAccountName = "kube-proxy",
          volumes = arr({ { name = "kube-proxy", configMap = { name = "kube-proxy" } },
                          { name = "xtables-lock", hostPath = { path = "/run/xtables.lock", type = "FileOrCreate" } },
                          { name = "lib-modules", hostPath = { path = "/lib/modules" } } }),
          tolerations = arr({ { key = "CriticalAddonsOnly", operator = "Exists" }, { operator = "Exists" } }),
          nodeSelector = { ["kubernetes.io/os"] = "linux" },
        },
      },
    },
  }
end

-- render(ctx) -> { objects = {...} } in kubeadm's creation order (pure).
function M.render(ctx)
  local rbac = "rbac.authorization.k8s.io/v1"
  local conf = assert(yaml().encode(M.config(ctx))):gsub("\n$", "")
  return { objects = {
    { apiVersion = "v1", kind = "ServiceAccount", metadata = { name = "kube-proxy", namespace = M.NS } },
    { apiVersion = "v1", kind = "ConfigMap",
      metadata = { name = "kube-proxy", namespace = M.NS, labels = { app = "kube-proxy" } },
      data = { ["kubeconfig.conf"] = M.kubeconfig(ctx), ["config.conf"] = conf } },
    daemonset(ctx),
    { apiVersion = rbac, kind = "ClusterRoleBinding", metadata = { name = "kubeadm:node-proxier" },
      roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = "system:node-proxier" },
      subjects = arr({ { kind = "ServiceAccount", name = "kube-proxy", namespace = M.NS } }) },
    { apiVersion = rbac, kind = "Role", metadata = { name = "kube-proxy", namespace = M.NS },
      rules = arr({ { verbs = arr({ "get" }), apiGroups = arr({ "" }), resources = arr({ "configmaps" }),
                      resourceNames = arr({ "kube-proxy" }) } }) },
    { apiVersion = rbac, kind = "RoleBinding", metadata = { name = "kube-proxy", namespace = M.NS },
      roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = "kube-proxy" },
      subjects = arr({ { kind = "Group", apiGroup = "rbac.authorization.k8s.io", name = M.BOOTSTRAP_GROUP } }) },
  } }
end

function M.after(ctx)
  ctx.log.info("addons", "Applied essential addon: kube-proxy")
  return true
end

-- uninstall(ctx) -> true | nil, err: the addon's objects deleted from the cluster (never part of a
-- node's reset: other nodes use them).
function M.uninstall(ctx) return ctx.kube:delete_all(M.render(ctx).objects) end

return M

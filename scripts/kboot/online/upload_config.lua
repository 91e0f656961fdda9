-- kubeadm's upload-config phase (v1.31: phases/uploadconfig/uploadconfig.go and
-- phases/kubelet/config.go): the ClusterConfiguration in kube-system/kubeadm-config, the kubelet's
-- component config in kube-system/kubelet-config, and the Roles/RoleBindings that let joining nodes
-- read them. Also the ClusterRoleBinding kubeadm:cluster-admins, without which admin.conf
-- (O=kubeadm:cluster-admins) has no rights: it is created through super-admin.conf.
local kerror = require("kboot.error")

local M = {}

M.NS = "kube-system"
M.KUBEADM_CONFIG = "kubeadm-config"
M.KUBELET_CONFIG = "kubelet-config"
M.BOOTSTRAP_GROUP = "system:bootstrappers:kubeadm:default-node-token"
M.NODES_GROUP = "system:nodes"
M.CLUSTER_ADMINS = "kubeadm:cluster-admins"
local RBAC = "rbac.authorization.k8s.io/v1"

local function yaml() return require("kboot.yaml") end
local function log(ctx) return ctx.log or require("kboot.log") end

local function arr(t) return setmetatable(t, yaml().array_mt) end

local function config_map(name, key, text)
  return { apiVersion = "v1", kind = "ConfigMap", metadata = { name = name, namespace = M.NS }, data = { [key] = text } }
end

-- Role granting `get` on one ConfigMap, and its binding to the given groups.
function M.reader_role(name, cm)
  return { apiVersion = RBAC, kind = "Role", metadata = { name = name, namespace = M.NS },
           rules = arr({ { verbs = arr({ "get" }), apiGroups = arr({ "" }), resources = arr({ "configmaps" }),
                           resourceNames = arr({ cm }) } }) }
end

function M.role_binding(name, groups)
  local subjects = arr({})
  for _, g in ipairs(groups) do subjects[#subjects + 1] = { kind = "Group", apiGroup = "rbac.authorization.k8s.io", name = g } end
  return { apiVersion = RBAC, kind = "RoleBinding", metadata = { name = name, namespace = M.NS },
           roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = name }, subjects = subjects }
end

function M.cluster_admins()
  return { apiVersion = RBAC, kind = "ClusterRoleBinding", metadata = { name = M.CLUSTER_ADMINS },
           roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = "cluster-admin" },
           subjects = arr({ { kind = "Group", apiGroup = "rbac.authorization.k8s.io", name = M.CLUSTER_ADMINS } }) }
end

-- kubeadm marshals with omitempty: empty lists/maps vanish, except the component sections it always
-- prints as {}. Internal keys (leading "_") never leave kboot.
local KEEP_EMPTY = { apiServer = true, controllerManager = true, scheduler = true, dns = true, proxy = true, etcd = true }
local function clean(v, top)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if type(k) ~= "string" or k:sub(1, 1) ~= "_" then
      local c = clean(x, false)
      if type(c) ~= "table" or next(c) ~= nil or (top and KEEP_EMPTY[k]) then out[k] = c end
    end
  end
  return setmetatable(out, getmetatable(v))
end

-- The ClusterConfiguration document kubeadm uploads (no secrets live in it: tokens and the
-- certificate key belong to InitConfiguration, which is not uploaded).
function M.cluster_configuration(ctx)
  local c = clean(ctx.cluster, true)
  c.apiVersion = c.apiVersion or "kubeadm.k8s.io/v1beta4"
  c.kind = "ClusterConfiguration"
  return assert(yaml().encode(c))
end

-- render(ctx) -> { kubeadm = {objects}, kubelet = {objects} } (pure).
function M.render(ctx)
  local kubelet = require("kboot.components.kubelet")
  local kcfg = assert(yaml().encode(kubelet.config(ctx)))
  local groups = { M.BOOTSTRAP_GROUP, M.NODES_GROUP }
  return {
    kubeadm = {
      config_map(M.KUBEADM_CONFIG, "ClusterConfiguration", M.cluster_configuration(ctx)),
      M.reader_role("kubeadm:nodes-kubeadm-config", M.KUBEADM_CONFIG),
      M.role_binding("kubeadm:nodes-kubeadm-config", groups),
    },
    kubelet = {
      config_map(M.KUBELET_CONFIG, "kubelet", kcfg),
      M.reader_role("kubeadm:kubelet-config", M.KUBELET_CONFIG),
      M.role_binding("kubeadm:kubelet-config", { M.NODES_GROUP, M.BOOTSTRAP_GROUP }),
    },
  }
end

local function describe(obj)
  local m = obj.metadata
  return ("%s %s%s"):format(obj.kind, m.namespace and (m.namespace .. "/") or "", m.name)
end

-- apply_all(ctx, objects, phase) -> true | nil, kboot.error (the first failure, naming the object).
-- kboot.kube's apply sends nothing for an object the server already has as kboot wants it.
function M.apply_all(ctx, objects, phase)
  for _, obj in ipairs(objects) do
    local r, err = ctx.kube:apply(obj)
    if not r then return nil, kerror.new(phase, ("cannot apply %s: %s"):format(describe(obj), tostring(err))) end
  end
  return true
end

local function fail(text, ...) return kerror.new("upload-config", text:format(...)) end

-- ensure_cluster_admins(ctx) -> true | nil, kboot.error. Checked with admin.conf (a 403 or 404 means the
-- binding is missing); created with super-admin.conf, then waited for until admin.conf works.
function M.ensure_cluster_admins(ctx)
  if ctx.cache.cluster_admins_ok then return true end
  local crb = M.cluster_admins()
  if ctx.dry_run then
    ctx.kube:apply(crb)
    ctx.cache.cluster_admins_ok = true
    return true
  end
  local function probe()
    local cur, err = ctx.kube:get(RBAC, "ClusterRoleBinding", nil, M.CLUSTER_ADMINS)
    if cur then return cur end
    return nil, err
  end
  local cur, err = probe()
  if not cur then
    local st = type(err) == "table" and err.status
    if st ~= 403 and st ~= 404 then return nil, fail("cannot check ClusterRoleBinding %s: %s", M.CLUSTER_ADMINS, tostring(err)) end
    if not ctx.kube_super then
      return nil, fail("admin.conf has no rights yet (ClusterRoleBinding %s is missing) and super-admin.conf cannot create it: %s",
        M.CLUSTER_ADMINS, tostring(ctx.kube_super_err))
    end
    log(ctx).info("kubeconfig", "Creating ClusterRoleBinding %s (cluster-admin) through super-admin.conf", M.CLUSTER_ADMINS)
    local r, cerr = ctx.kube_super:create(crb)
    if not r and not (type(cerr) == "table" and cerr.status == 409) then
      return nil, fail("cannot create ClusterRoleBinding %s with super-admin.conf: %s", M.CLUSTER_ADMINS, tostring(cerr))
    end
    -- the RBAC authorizer sees the new binding after its informer catches up
    local ok, werr = ctx.kube:wait_for(probe, 30, 0.5)
    if not ok then return nil, fail("admin.conf still has no rights after creating %s: %s", M.CLUSTER_ADMINS, tostring(werr)) end
  end
  ctx.cache.cluster_admins_ok = true
  return true
end

local function run(part, msg)
  return function(ctx)
    local ok, err = M.ensure_cluster_admins(ctx)
    if not ok then return nil, err end
    log(ctx).info("upload-config", msg)
    return M.apply_all(ctx, M.render(ctx)[part], "upload-config")
  end
end

function M.phases()
  return {
    { name = "upload-config/kubeadm", help = "Upload the kubeadm ClusterConfiguration to a ConfigMap",
      run = run("kubeadm", "Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace") },
    { name = "upload-config/kubelet", help = "Upload the kubelet component config to a ConfigMap",
      run = run("kubelet", "Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster") },
  }
end

return M

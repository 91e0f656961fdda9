-- kboot.user_kubeconfig: kubeconfigs for additional users (kubeadm kubeconfig user) and the RBAC
-- bindings that give them something to do (docs/api/user_kubeconfig.md).
--
-- kubeadm (cmd/kubeconfig.go, phases/kubeconfig) signs a client certificate with CN = the user, O =
-- the orgs and the "client auth" usage with the cluster CA from certificatesDir, or writes a token
-- user instead; the server is controlPlaneEndpoint, else the advertise address:bindPort of the
-- config; the cluster is named clusterName; one context "<user>@<cluster>". Without a config file
-- kubeadm takes its defaults; kboot reads what this node has under /etc/kubernetes instead (see
-- cluster()), so the kubeconfig points where admin.conf points.
local pki = require("kboot.pki")
local fs = require("kboot.fs")
local log = require("kboot.log")
local kerror = require("kboot.error")
local kubeconfig = require("kboot.kubeconfig")
local kubeconfigs = require("kboot.kubeconfigs")
local certs_table = require("kboot.certs_table")

local M = {}

M.ADMIN_CONF = "/etc/kubernetes/admin.conf"
M.DEFAULT_VALIDITY = certs_table.DEFAULT_CERT_VALIDITY -- 8760h, kubeadm's CertificateValidityPeriod
M.MANAGED_BY = { ["app.kubernetes.io/managed-by"] = "kboot" }

-- a cluster path, and the host path when a root is set
local function shown(p)
  local host = fs.path(p)
  return host == p and p or ("%s (%s)"):format(p, host)
end

local function err(fmt, ...)
  return nil, kerror.new("kubeconfig", select("#", ...) > 0 and fmt:format(...) or fmt)
end

-- pcall for the library functions that raise kboot.errors (certs.load_ca, control_plane_endpoint)
local function catch(fn, ...)
  local ok, a, b = pcall(fn, ...)
  if ok then return a, b end
  if kerror.is(a) or (type(a) == "table" and a.msg) then return nil, kerror.new("kubeconfig", a.msg) end
  error(a, 0)
end

---------------------------------------------------------------------------------------------------
-- The cluster: where the API server is, its name, the CA (and its key) and the key algorithm.

-- server from a kubeadm configuration: kubeadm's GetControlPlaneEndpoint
local function config_server(parts)
  local ep = parts.init.localAPIEndpoint
  return catch(kubeconfigs.control_plane_endpoint, {
    cluster = parts.cluster, endpoint = { address = ep.advertiseAddress, port = ep.bindPort or 6443 } })
end

-- admin.conf's current cluster (server and name); nil without an error when there is no admin.conf
local function admin_cluster(path)
  if not fs.exists(path) then return nil end
  local t, lerr = kubeconfig.load(path)
  if not t then return nil, lerr end
  return kubeconfig.current(t)
end

local function load_config(o)
  local cfg = require("kboot.config")
  local host = o.host or require("kboot.context").host_facts()
  local parts, errs = cfg.load({ file = o.config, host = host })
  if not parts then
    -- the line names the file once (a YAML error already starts with it)
    local head, lines = o.config .. ": ", {}
    for i, e in ipairs(errs) do lines[i] = e:sub(1, #head) == head and e:sub(#head + 1) or e end
    return nil, kerror.new("kubeconfig", ("invalid configuration %s: %s"):format(o.config, table.concat(lines, "; ")),
                           { config = true })
  end
  return parts
end

-- cluster{ config=, server=, kubeconfig=, need_key=true, host= } -> cluster | nil, err
--   config: the admin's kubeadm configuration file (read from this host, never under the fs root);
--   without it: kubeadm's defaults, with the server and cluster name of `kubeconfig` (admin.conf,
--   under the fs root) when it exists, else the default-route address:6443 as kubeadm would.
--   server: overrides the server. need_key = false: a token user, the CA key is not needed.
-- cluster = { server, cluster_name, cert_dir, ca = cert, ca_pem, ca_key (nil: external CA),
--             algorithm, source = "--config FILE" | "admin.conf PATH" | "defaults" }
function M.cluster(o)
  o = o or {}
  if type(o) ~= "table" then error("user_kubeconfig.cluster: options table expected", 2) end
  local c = {}
  local cluster_cfg
  if o.config then
    local parts, perr = load_config(o)
    if not parts then return nil, perr end
    cluster_cfg = parts.cluster
    c.source = "--config " .. o.config
    if not o.server then
      local s, serr = config_server(parts)
      if not s then return nil, serr end
      c.server = s
    end
  else
    cluster_cfg = require("kboot.config").default_cluster({})
    c.source = "defaults"
    local path = o.kubeconfig or M.ADMIN_CONF
    local cur, aerr = admin_cluster(path)
    if aerr then return nil, aerr end
    if cur then
      c.source = "admin.conf " .. path
      c.server, c.cluster_name = cur.server, cur.cluster_name
    elseif not o.server then
      local host = o.host or require("kboot.context").host_facts()
      local ip = host.default_address
      if not ip then
        return err("no --config, no %s and no default-route address (%s): give --server or --config", path,
                   tostring(host.default_address_err))
      end
      c.server = "https://" .. require("kboot.net").join_host_port(ip, "6443")
    end
  end
  if o.server then c.server = o.server end
  c.cluster_name = c.cluster_name or cluster_cfg.clusterName or "kubernetes"
  c.cert_dir = cluster_cfg.certificatesDir
  local ca, cerr = catch(require("kboot.certs").load_ca, { fs = fs, cluster = cluster_cfg, log = log }, "ca")
  if cerr then return nil, cerr end
  if not ca then
    return err("no cluster CA certificate %s: run this on a control-plane node, or give --config with its certificatesDir",
               shown(c.cert_dir .. "/ca.crt"))
  end
  if ca.cert:expires_in() < 0 then log.warn("kubeconfig", "the cluster CA %s/ca.crt has expired", c.cert_dir) end
  if o.need_key ~= false and not ca.key then
    return err("no CA key %s (external CA): a client certificate cannot be signed here; use --token, or have the external CA sign one",
               shown(c.cert_dir .. "/ca.key"))
  end
  c.ca, c.ca_pem, c.ca_key = ca.cert, ca.pem, ca.key
  -- kubeadm makes every key with encryptionAlgorithm; without a config the CA's own key says what it was
  if o.config then c.algorithm = certs_table.algorithm({ cluster = cluster_cfg })
  else c.algorithm = (ca.key and ca.key:algorithm()) or cluster_cfg.encryptionAlgorithm end
  return c
end

---------------------------------------------------------------------------------------------------
-- Users

local function check_user(u)
  if type(u) ~= "table" then error("user_kubeconfig: user table expected", 3) end
  if type(u.name) ~= "string" or u.name == "" then error("user_kubeconfig: user.name must be a non-empty string", 3) end
  if u.orgs ~= nil and type(u.orgs) ~= "table" then error("user_kubeconfig: user.orgs must be a list", 3) end
  if u.token ~= nil and (type(u.token) ~= "string" or u.token == "") then
    error("user_kubeconfig: user.token must be a non-empty string", 3)
  end
  if u.validity ~= nil and (type(u.validity) ~= "number" or u.validity <= 0) then
    error("user_kubeconfig: user.validity must be a positive number of seconds", 3)
  end
end

-- The kboot.pki spec of a user's client certificate (kubeconfigs' client spec: CN, O, client auth).
function M.spec(u, now)
  check_user(u)
  return kubeconfigs.client_spec({ now = now or os.time(), cert_validity = u.validity or M.DEFAULT_VALIDITY },
                                 { cn = u.name, o = u.orgs or {} })
end

local function key_pem(key)
  return key:pem("traditional") or key:pem() -- Ed25519 has no traditional form
end

-- user(cluster, u [, key]) -> kubeconfig table, cert | nil, err
--   u = { name=, orgs={...}, token=, validity=seconds (8760h), now= }; a token user gets no certificate.
--   key: a key made beforehand (pki.generate_batch), else one of cluster.algorithm is made.
function M.user(c, u, key)
  check_user(u)
  local base = { cluster_name = c.cluster_name, server = c.server, ca_pem = c.ca_pem, user = u.name }
  if u.token then
    base.token = u.token
    return kubeconfig.build(base)
  end
  if not c.ca_key then return err("no CA key in %s (external CA): cannot sign a client certificate for %q", c.cert_dir, u.name) end
  key = key or pki.generate_key(c.algorithm)
  local cert, serr = pki.sign(M.spec(u, u.now), key, c.ca, c.ca_key)
  if not cert then return err("signing the client certificate of %q: %s", u.name, tostring(serr)) end
  base.cert_pem, base.key_pem = cert:pem(), key_pem(key)
  return kubeconfig.build(base), cert
end

-- users(cluster, list) -> array of kubeconfig tables (in list order) | nil, err: every key in one
-- pki.generate_batch (all cores for RSA), then one signature each.
function M.users(c, list)
  if type(list) ~= "table" then error("user_kubeconfig.users: list of users expected", 2) end
  local need = 0
  for _, u in ipairs(list) do check_user(u); if not u.token then need = need + 1 end end
  local keys = need > 0 and pki.generate_batch(need, c.algorithm) or {}
  local out, k = {}, 0
  for i, u in ipairs(list) do
    local key
    if not u.token then k = k + 1; key = keys[k]; keys[k] = nil end
    local t, uerr = M.user(c, u, key)
    if not t then return nil, uerr end
    out[i] = t
  end
  return out
end

-- encode(t) -> YAML text (kboot.kubeconfig.encode); write(path, t): atomic, 0600, parents made
M.encode = kubeconfig.encode
function M.write(path, t) return kubeconfig.write(path, t) end

---------------------------------------------------------------------------------------------------
-- RBAC

local function subjects(o)
  local out = {}
  if o.groups and #o.groups > 0 then
    for _, g in ipairs(o.groups) do out[#out + 1] = { kind = "Group", name = g } end
  else
    out[1] = { kind = "User", name = o.user }
  end
  return out
end

-- bindings{ user=, groups={...}, role= | cluster_role=, namespace= } -> array of objects:
--   role (needs namespace): a RoleBinding to the Role in that namespace; cluster_role: a
--   ClusterRoleBinding, or with namespace a RoleBinding to the ClusterRole there. One binding per
--   subject: each group when groups are given, else the user. Names say subject and role
--   (kboot:group:team-a:role:pod-reader), so a re-run finds the same object and a roleRef never changes.
function M.bindings(o)
  if type(o) ~= "table" then error("user_kubeconfig.bindings: options table expected", 2) end
  if (o.role == nil) == (o.cluster_role == nil) then error("user_kubeconfig.bindings: exactly one of role, cluster_role", 2) end
  if o.role and not o.namespace then error("user_kubeconfig.bindings: a role needs a namespace", 2) end
  if not (o.groups and #o.groups > 0) and type(o.user) ~= "string" then
    error("user_kubeconfig.bindings: user (or groups) needed", 2)
  end
  local ref_kind = o.role and "Role" or "ClusterRole"
  local ref_name = o.role or o.cluster_role
  local kind = o.namespace and "RoleBinding" or "ClusterRoleBinding"
  local out = {}
  for _, s in ipairs(subjects(o)) do
    local name = ("kboot:%s:%s:%s:%s"):format(s.kind:lower(), s.name, ref_kind:lower(), ref_name)
    s.apiGroup = "rbac.authorization.k8s.io"
    local labels = {}
    for k, v in pairs(M.MANAGED_BY) do labels[k] = v end
    out[#out + 1] = {
      apiVersion = "rbac.authorization.k8s.io/v1", kind = kind,
      metadata = { name = name, namespace = o.namespace, labels = labels },
      roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = ref_kind, name = ref_name },
      subjects = { s },
    }
  end
  return out
end

local function what(obj)
  local m = obj.metadata
  return ("%s %s%s"):format(obj.kind, m.namespace and (m.namespace .. "/") or "", m.name)
end
M.describe = what

-- apply(k, objects) -> array of { object=, action = "created" | "configured" | "unchanged" } | nil, err
-- Server-side apply through kboot.kube client k; an object the cluster already has as asked is
-- left alone. A binding to a Role or ClusterRole that does not exist is made (RBAC allows it) with
-- a warning: it grants nothing until the role exists.
function M.apply(k, objects)
  local kube = require("kboot.kube")
  local out = {}
  for _, obj in ipairs(objects) do
    local m = obj.metadata
    local av = obj.apiVersion
    local live, gerr = k:get(av, obj.kind, m.namespace, m.name)
    if not live and not kube.not_found(gerr) then return nil, gerr end
    local action
    if live then
      local rest = {}
      for key, v in pairs(obj) do if key ~= "metadata" then rest[key] = v end end
      if kube.covers(rest, live) and kube.covers({ labels = m.labels }, { labels = live.metadata.labels }) then
        action = "unchanged"
      end
    end
    if not action then
      local _, aerr = k:apply(obj, { always = true })
      if aerr then return nil, aerr end
      action = live and "configured" or "created"
    end
    if obj.roleRef then
      local r = obj.roleRef
      local rns = r.kind == "Role" and m.namespace or nil
      local _, rerr = k:get(av, r.kind, rns, r.name)
      if kube.not_found(rerr) and not k.dry_run then
        log.warn("kubeconfig", "%s %s%s does not exist: %s grants nothing until it does", r.kind,
                 rns and (rns .. "/") or "", r.name, what(obj))
      end
    end
    out[#out + 1] = { object = obj, action = action }
  end
  return out
end

-- ensure_namespace(k, name) -> "created" | "unchanged" | nil, err
function M.ensure_namespace(k, name)
  local kube = require("kboot.kube")
  local ns, gerr = k:get("v1", "Namespace", nil, name)
  if ns then return "unchanged" end
  if not kube.not_found(gerr) then return nil, gerr end
  local _, cerr = k:create({ apiVersion = "v1", kind = "Namespace", metadata = { name = name } })
  if cerr and not kube.already_exists(cerr) then return nil, cerr end
  return "created"
end

return M

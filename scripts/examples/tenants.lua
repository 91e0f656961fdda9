-- Tenants from a YAML list: for each, a namespace (when missing), a kubeconfig for its user and a
-- RoleBinding that gives the user (or its groups) one role in that namespace. An example of
-- scripting kboot; copy and edit it (docs/tenants.md).
--
--   kboot scripts/examples/tenants.lua tenants.yaml [--out-dir DIR] [--root DIR] [--config FILE]
--
-- tenants.yaml, a list:
--   - name: alice          # the user (certificate CN) and the file DIR/alice.conf
--     namespace: team-a
--     clusterRole: edit    # a ClusterRole bound in the namespace (admin, edit, view, ...), or
--   - name: bob
--     namespace: team-b
--     role: pod-reader     # a Role of the namespace (made by you: the binding grants nothing before)
--     groups: [team-b]     # optional: the certificate's O; the binding then names these groups
local cli = require("kboot.cli")
local log = require("kboot.log")
local fs = require("kboot.fs")
local net = require("kboot.net")
local time = require("kboot.time")
local yaml = require("kboot.yaml")
local kube = require("kboot.kube")
local uk = require("kboot.user_kubeconfig")

local NAME = "scripts/examples/tenants.lua"
local opts, args = cli.parse({ ... }, { name = NAME, usage = "kboot " .. NAME .. " TENANTS.yaml [options]",
  summary = "For each tenant of TENANTS.yaml: its namespace (when missing), DIR/<name>.conf and its RoleBinding.",
  options = {
    { "out-dir", arg = "DIR", default = ".", help = "where the kubeconfigs go (under --root)" },
    { "validity-period", arg = "DURATION", default = "8760h0m0s", help = "the client certificates' lifetime" },
    { "config", arg = "FILE", help = "kubeadm configuration (else this node's admin.conf and CA)" },
    { "server", arg = "URL", help = "the API server URL to write in the kubeconfigs" },
    { "kubeconfig", arg = "FILE", default = uk.ADMIN_CONF, help = "admin kubeconfig (under --root)" },
    { "root", arg = "DIR", help = "treat DIR as the file system root (a sandbox)" },
  }, min_args = 1, max_args = 1, args = "TENANTS.yaml" })

local function absolute(p)
  if p:sub(1, 1) == "/" then return p end
  return (os.getenv("PWD") or "/") .. "/" .. p
end

-- The list, checked whole before anything is touched: every problem on one line.
local function read_tenants(path)
  local f, ferr = io.open(path, "rb")
  if not f then cli.usage_error(NAME, "cannot read %s", tostring(ferr)) end
  local list, yerr = yaml.decode(f:read("a"))
  f:close()
  if list == nil then cli.usage_error(NAME, "%s: %s", path, tostring(yerr)) end
  if type(list) ~= "table" or (next(list) ~= nil and #list == 0) then cli.usage_error(NAME, "%s: want a list of tenants", path) end
  local problems, seen = {}, {}
  local function bad(i, fmt, ...) problems[#problems + 1] = ("[%d] " .. fmt):format(i - 1, ...) end
  for i, tn in ipairs(list) do
    if type(tn) ~= "table" then bad(i, "not a mapping") goto next end
    for k in pairs(tn) do
      if not ({ name = 1, namespace = 1, role = 1, clusterRole = 1, groups = 1 })[k] then bad(i, "unknown field %q", tostring(k)) end
    end
    if type(tn.name) ~= "string" or tn.name == "" then bad(i, "name: required")
    elseif seen[tn.name] then bad(i, "name %q: given twice", tn.name) end
    seen[tn.name or ""] = true
    if type(tn.name) == "string" and tn.name:find("[/%z]") then bad(i, "name %q: not a file name", tn.name) end
    if type(tn.namespace) ~= "string" or not net.is_dns_label(tn.namespace) then bad(i, "namespace: a DNS label is required") end
    if (tn.role == nil) == (tn.clusterRole == nil) then bad(i, "give role or clusterRole") end
    for _, k in ipairs({ "role", "clusterRole" }) do
      if tn[k] ~= nil and (type(tn[k]) ~= "string" or tn[k] == "") then bad(i, "%s: a name is required", k) end
    end
    if tn.groups ~= nil then
      if type(tn.groups) ~= "table" then bad(i, "groups: want a list")
      else for _, g in ipairs(tn.groups) do if type(g) ~= "string" or g == "" then bad(i, "groups: names only") end end end
    end
    ::next::
  end
  if #problems > 0 then cli.usage_error(NAME, "%s: %s", path, table.concat(problems, "; ")) end
  return list
end

local tenants = read_tenants(args[1])
local validity, verr = time.parse_duration(opts.validity_period)
if not validity or validity <= 0 then cli.usage_error(NAME, "invalid --validity-period: %s", verr or "must be positive") end
local out_dir = absolute(opts.out_dir)
if opts.root then
  local ok, err = fs.set_root(opts.root)
  if not ok then cli.usage_error(NAME, "--root %s: %s", opts.root, tostring(err)) end
end

-- the cluster once, then every user's key in one batch
local cluster, cerr = uk.cluster{ config = opts.config and absolute(opts.config), server = opts.server,
                                  kubeconfig = absolute(opts.kubeconfig) }
if not cluster then cli.exit(cerr.config and 2 or 1, tostring(cerr)) end
local users = {}
for i, tn in ipairs(tenants) do users[i] = { name = tn.name, orgs = tn.groups, validity = validity } end
local kubeconfigs, uerr = uk.users(cluster, users)
if not kubeconfigs then cli.fail("%s", tostring(uerr)) end

local k, kerr = kube.new(absolute(opts.kubeconfig))
if not k then cli.fail("%s", tostring(kerr)) end
for i, tn in ipairs(tenants) do
  local ns, nerr = uk.ensure_namespace(k, tn.namespace)
  if not ns then cli.fail("%s: %s", tn.name, tostring(nerr)) end
  local done, aerr = uk.apply(k, uk.bindings{ user = tn.name, groups = tn.groups, namespace = tn.namespace,
                                              role = tn.role, cluster_role = tn.clusterRole })
  if not done then cli.fail("%s: %s", tn.name, tostring(aerr)) end
  local path = out_dir .. "/" .. tn.name .. ".conf"
  local ok, werr = uk.write(path, kubeconfigs[i])
  if not ok then cli.fail("%s: cannot write %s: %s", tn.name, path, tostring(werr)) end
  local said = {}
  for _, d in ipairs(done) do said[#said + 1] = ("%s %s"):format(uk.describe(d.object), d.action) end
  log.info("tenants", "%s: Namespace %s %s, %s, %s written", tn.name, tn.namespace, ns, table.concat(said, ", "),
           fs.path(path))
end
k:close()

-- The phases of `kboot init` in kubeadm's order and names, selection by --skip-phases and
-- `kboot init phase NAME`, and the runner. A parent name ("certs", "control-plane") stands for all
-- its children. Phase modules come from the certs helper's files; a module missing from this build
-- gives phases that fail with "not available in this build" (no stand-ins).
local M = {}

local function try(mod)
  local ok, m = pcall(require, mod)
  if ok and type(m) == "table" then return m end
  return nil, tostring(m)
end

local function unavailable(name, mod, why)
  return function()
    require("kboot.cli").fail("phase %s is not available in this build (%s: %s)", name, mod, (why or "missing"):match("^[^\n]*"))
  end
end

-- kubeadm's child names, used for help and selection when a phase module is missing
local CERTS = { "ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client", "etcd-ca",
                "etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client", "sa" }
local KUBECONFIGS = { "admin", "super-admin", "kubelet", "controller-manager", "scheduler" }

local function from_module(mod, prefix, names, help)
  local m, why = try(mod)
  if m and type(m.phases) == "function" then return m.phases() end
  local out = {}
  for _, n in ipairs(names) do
    out[#out + 1] = { name = prefix .. "/" .. n, help = help .. " " .. n, run = unavailable(prefix .. "/" .. n, mod, why) }
  end
  return out
end

local function component(mod, name, help, extra)
  local m, why = try(mod)
  local run
  if not m then run = unavailable(name, mod, why)
  elseif type(m.run) == "function" then run = m.run
  else
    run = function(ctx)
      local a = m.render(ctx)
      m.save(ctx, a)
      if extra and m[extra] then m[extra](ctx) end
      return true
    end
  end
  return { name = name, help = help, run = run, module = m }
end

-- Every kubeadm init phase name, so --skip-phases accepts them even when a module is missing.
M.ONLINE = { "wait-control-plane", "upload-config", "upload-config/kubeadm", "upload-config/kubelet",
             "upload-certs", "mark-control-plane", "bootstrap-token", "kubelet-finalize",
             "kubelet-finalize/enable-client-cert-rotation", "addon", "addon/coredns", "addon/kube-proxy",
             "show-join-command" }

-- Online phase modules (docs/api/online.md): each returns { phases = function() return {...} end }.
local ONLINE_MODULES = {
  { "kboot.online.wait_control_plane", { { "wait-control-plane", "Wait for the control plane to start" } } },
  { "kboot.online.upload_config", { { "upload-config/kubeadm", "Upload the kubeadm ClusterConfiguration to a ConfigMap" },
                                    { "upload-config/kubelet", "Upload the kubelet component config to a ConfigMap" } } },
  { "kboot.online.upload_certs", { { "upload-certs", "Upload certificates to kubeadm-certs" } } },
  { "kboot.online.mark_control_plane", { { "mark-control-plane", "Mark a node as a control-plane" } } },
  { "kboot.online.bootstrap_token", { { "bootstrap-token", "Generate bootstrap tokens used to join a node to a cluster" } } },
  { "kboot.online.kubelet_finalize", { { "kubelet-finalize/enable-client-cert-rotation", "Enable kubelet client certificate rotation" } } },
  "addons",
  { "kboot.online.show_join", { { "show-join-command", "Show the join command for control-plane and worker node" } } },
}

-- A phase whose module is required on first use of anything but its name (and fields set on it):
-- an offline run never loads the online modules. build(m) gives the phase table from the loaded
-- module (nil: the module has no such phase); a missing module gives `help` and a failing run.
local function lazy(mod, name, help, build)
  local real
  return setmetatable({ name = name }, { __index = function(_, k)
    if real == nil then
      local m, why = try(mod)
      real = m and build(m) or { help = help, run = unavailable(name, mod, why or "no such phase") }
    end
    return real[k]
  end })
end

local function online_module(mod, names)
  local out = {}
  for _, n in ipairs(names) do
    out[#out + 1] = lazy(mod, n[1], n[2], function(m)
      if type(m.phases) ~= "function" then return nil end
      for _, p in ipairs(m.phases()) do
        if p.name == n[1] then return p end
      end
    end)
  end
  return out
end

-- An addon component: render (pure) then apply through ctx.kube; skipped when disabled in the config.
local function addon(mod, name, help, section)
  return lazy(mod, name, help, function(m)
    return { help = help, module = m, run = function(ctx) return m.apply(ctx, m.render(ctx)) end,
             skip = function(ctx)
               local s = ctx.cluster and ctx.cluster[section]
               return s ~= nil and s.disabled == true, ("%s.disabled is set in the ClusterConfiguration"):format(section)
             end }
  end)
end

-- list() -> ordered phases { name=, help=, run=function(ctx), skip=, online= }.
function M.list()
  local out = {}
  local function add(p) out[#out + 1] = p end
  add(lazy("kboot.preflight", "preflight", "Run pre-flight checks",
            function(m) return type(m.run) == "function" and { help = "Run pre-flight checks", run = m.run } or nil end))
  for _, p in ipairs(from_module("kboot.certs", "certs", CERTS, "Generate certificate")) do add(p) end
  for _, p in ipairs(from_module("kboot.kubeconfigs", "kubeconfig", KUBECONFIGS, "Generate kubeconfig")) do add(p) end
  local etcd = component("kboot.components.etcd", "etcd/local", "Generate the static Pod manifest file for a local, single-node etcd")
  etcd.skip = function(ctx) return ctx.cluster and ctx.cluster.etcd.external ~= nil, "external etcd is configured" end
  add(etcd)
  add(component("kboot.components.kube_apiserver", "control-plane/apiserver", "Generate the kube-apiserver static Pod manifest"))
  add(component("kboot.components.kube_controller_manager", "control-plane/controller-manager", "Generate the kube-controller-manager static Pod manifest"))
  add(component("kboot.components.kube_scheduler", "control-plane/scheduler", "Generate the kube-scheduler static Pod manifest"))
  add(component("kboot.components.kubelet", "kubelet-start", "Write kubelet settings and (re)start the kubelet", "start"))
  for _, o in ipairs(ONLINE_MODULES) do
    local list
    if o == "addons" then
      list = { addon("kboot.components.coredns", "addon/coredns", "Install the CoreDNS addon", "dns"),
               addon("kboot.components.kube_proxy", "addon/kube-proxy", "Install the kube-proxy addon", "proxy") }
    else
      list = online_module(o[1], o[2])
    end
    for _, p in ipairs(list) do p.online = true; add(p) end
  end
  return out
end

-- The kubeconfig a phase wrote, read through ctx.fs (root-aware; a dry run sees its own writes).
local function load_kubeconfig(ctx, file)
  local path = (ctx.kubeconfig_dir or "/etc/kubernetes") .. "/" .. file
  local text, err = ctx.fs.read(path)
  if not text then return nil, tostring(err and (err.msg or err)) end
  return require("kboot.kubeconfig").parse(text, path)
end

-- connect(ctx): ctx.kube (admin.conf) and ctx.kube_super (super-admin.conf) for the online phases.
-- Raises {msg=} when admin.conf is unusable: no online phase can do anything without it.
function M.connect(ctx)
  if ctx.kube then return true end
  local ok, kube = pcall(require, "kboot.kube")
  if not ok then error({ msg = "the API client kboot.kube is not available in this build: " .. tostring(kube):match("^[^\n]*") }, 0) end
  -- retries of one API call (connection errors, 429, 5xx: an API server restarting) stop at
  -- InitConfiguration.timeouts.kubernetesAPICall (kubeadm's 1m)
  local to = ctx.init and ctx.init.timeouts and ctx.init.timeouts.kubernetesAPICall
  local deadline = to and require("kboot.config").duration(to)
  local o = { dry_run = ctx.dry_run == true, timeout = ctx.api_timeout, retry_deadline = deadline or 60, retries = 30 }
  local t, err = load_kubeconfig(ctx, "admin.conf")
  if not t then error({ msg = tostring(err) .. " (run the kubeconfig phase first)" }, 0) end
  local k, kerr = kube.new(t, o)
  if not k then error({ msg = "admin.conf: " .. tostring(kerr) }, 0) end
  ctx.kube = k
  local st, serr = load_kubeconfig(ctx, "super-admin.conf")
  if st then ctx.kube_super, serr = kube.new(st, o) end
  if not ctx.kube_super then ctx.kube_super_err = tostring(serr and (serr.msg or serr)) end
  -- admin.conf (O=kubeadm:cluster-admins) has rights only through this binding: make sure of it
  -- before any phase uses ctx.kube, as kubeadm does when it first builds its client
  local ok2, uc = pcall(require, "kboot.online.upload_config")
  if ok2 then
    local done, cerr = uc.ensure_cluster_admins(ctx)
    if not done then error({ msg = tostring(cerr) }, 0) end
  end
  return true
end

local function parent(name) return name:match("^([^/]+)/") end

-- All names a user may give: each phase, each parent, and the online phases.
function M.names(list)
  local set, order = {}, {}
  local function add(n) if not set[n] then set[n] = true; order[#order + 1] = n end end
  for _, p in ipairs(list) do
    local par = parent(p.name)
    if par then add(par) end
    add(p.name)
  end
  for _, n in ipairs(M.ONLINE) do add(n) end
  return set, order
end

-- Does selector `sel` (a phase or parent name, any case) cover phase `name`?
local function covers(sel, name)
  sel = sel:lower()
  return sel == name or sel == parent(name) or sel == "all"
end

-- select(list, { only = "certs" | "certs/ca", skip = {...} }) -> selected list | nil, err
function M.select(list, o)
  o = o or {}
  local known = M.names(list)
  local function check(n)
    if n:lower() ~= "all" and not known[n:lower()] then
      local _, order = M.names(list)
      return nil, ("unknown phase %q; phases are: %s"):format(n, table.concat(order, ", "))
    end
    return true
  end
  for _, n in ipairs(o.skip or {}) do
    local ok, err = check(n)
    if not ok then return nil, err end
  end
  if o.only then
    local ok, err = check(o.only)
    if not ok then return nil, err end
  end
  local out = {}
  for _, p in ipairs(list) do
    local keep = o.only == nil or covers(o.only, p.name)
    for _, s in ipairs(o.skip or {}) do
      if s:lower() ~= "all" and covers(s, p.name) then keep = false end
    end
    if keep then out[#out + 1] = p end
  end
  if o.only and #out == 0 then
    return nil, ("phase %q is not part of this build"):format(o.only)
  end
  return out
end

-- The offline phases' files go out as one group commit (kboot.fs batch: one sync for all
-- instead of two per file): a batch opens at the first offline phase of a run of them and is
-- committed before an online phase (the API server and kubelet must see the files), before
-- reporting a failed phase, and at the end. ctx.fs without batches (a test's fake) works too.
local function batcher(ctx)
  local fs, open = ctx.fs, false
  local can = type(fs) == "table" and type(fs.begin) == "function" and type(fs.commit) == "function"
  local b = {}
  function b.begin()
    if can and not open then fs.begin(); open = true end
  end
  -- commit() -> true | nil, err. Flush, not only close our level: a caller (init.lua) may hold
  -- an outer batch, and the files must land before an online phase whatever the nesting.
  function b.commit()
    if not open then return true end
    open = false
    local ok, err = true, nil
    if type(fs.flush) == "function" then ok, err = fs.flush() end
    local cok, cerr = fs.commit()
    if not ok then return nil, err end
    return cok, cerr
  end
  return b
end

-- run(ctx, selected) -> true, or raises the failing phase's error with its name (exit code 1).
function M.run(ctx, selected)
  local enabled = {}
  for _, p in ipairs(selected) do enabled[p.name] = true end
  ctx.phase_enabled = function(name) return enabled[name] == true end
  local batch = batcher(ctx)
  local function fail(name, msg)
    local ok, err = batch.commit()
    if not ok then msg = ("%s (and the files of the phases before it were not written: %s)"):format(msg, tostring(err)) end
    require("kboot.cli").exit(1, ("error execution phase %s: %s"):format(name, msg))
  end
  local last
  for _, p in ipairs(selected) do
    local skip, why = false, nil
    if p.skip then skip, why = p.skip(ctx) end
    if skip then
      ctx.log.info(p.name, "skipped: %s", why)
    else
      if p.online then
        local ok, err = batch.commit()
        if not ok then fail(p.name, "cannot write the files of the phases before it: " .. tostring(err)) end
      else
        batch.begin()
      end
      local ok, r, err = true, nil, nil
      if p.online and not p.no_api and not ctx.kube then ok, r = pcall(M.connect, ctx) end
      if ok then ok, r, err = pcall(p.run, ctx) end
      if not ok or (r == nil and err ~= nil) then
        local e = ok and err or r
        local msg = type(e) == "table" and (e.msg or tostring(e)) or tostring(e)
        -- a raised Lua error (a missing module, a bug): its first line, the rest with -v
        if not ok and type(e) ~= "table" and ctx.log.level and ctx.log.level() < 3 then
          msg = msg:match("^[^\n]*") .. (msg:find("\n") and " (run with -v for details)" or "")
        end
        fail(p.name, msg)
      end
      last = p.name
    end
  end
  local ok, err = batch.commit()
  if not ok then fail(last or "init", "cannot write the files of the phases: " .. tostring(err)) end
  return true
end

return M

-- Shared builder of kubeadm-style static Pod manifests (util/staticpod/utils.go, util/arguments.go
-- of kubeadm v1.31): flag merging, hostPath volumes, probes, resources, the Pod skeleton, YAML.
-- Everything here is pure except save(), which writes through ctx.fs.
local M = {}

M.DIR = "/etc/kubernetes/manifests"
M.MODE = 384      -- 0600, as kubeadm's WriteStaticPodToDisk
M.DIR_MODE = 448  -- 0700
M.PRIORITY = 2000001000 -- value of the system-node-critical PriorityClass

-- A phase failure as an error object (same metatable as the bindings' errors), raised.
function M.fail(op, fmt, ...)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  error(setmetatable({ op = op, msg = msg, exit = 1 }, require("kboot.error").meta), 0)
end

---------------------------------------------------------------------------------------------
-- Arguments: lists of {name=, value=} as kubeadm v1beta4's []Arg.

-- Value of the last `name` in args and its index, or nil, -1 (kubeadm's GetArgValue(..., -1)).
function M.get_arg(args, name)
  for i = #(args or {}), 1, -1 do
    if args[i].name == name then return args[i].value, i end
  end
  return nil, -1
end

-- Set the last `name` to value, or append it (kubeadm's SetArgValues(args, name, value, 1)).
function M.set_arg(args, name, value)
  local _, i = M.get_arg(args, name)
  if i > 0 then args[i] = { name = name, value = value } else args[#args + 1] = { name = name, value = value } end
  return args
end

-- kubeadm's ArgumentsToCommand: an override removes every base argument of its name, the
-- result is sorted by name (then value) and printed as --name=value.
function M.args_to_command(base, overrides)
  local over, args = {}, {}
  for _, a in ipairs(overrides or {}) do
    over[a.name] = true
    args[#args + 1] = { name = a.name, value = tostring(a.value) }
  end
  for _, a in ipairs(base) do
    if not over[a.name] then args[#args + 1] = { name = a.name, value = tostring(a.value) } end
  end
  table.sort(args, function(x, y)
    if x.name == y.name then return x.value < y.value end
    return x.name < y.name
  end)
  local out = {}
  for i, a in ipairs(args) do out[i] = ("--%s=%s"):format(a.name, a.value) end
  return out
end

-- Version-dependent flags from ctx.version.flags[component] (kboot.versions).
function M.add_version_flags(ctx, args, component, values)
  local flags = ctx.version and ctx.version.flags and ctx.version.flags[component] or {}
  for _, f in ipairs(flags) do
    local v = f.value
    if v == true then v = values and values[f.name] end
    if v ~= nil then M.set_arg(args, f.name, v) end
  end
  return args
end

---------------------------------------------------------------------------------------------
-- Environment

-- Proxy variables of the kboot process, as kubeadm's GetProxyEnvVars (names ending in _proxy,
-- any case). Lua cannot list the environment, so the usual spellings are looked up; the
-- result is cached in ctx so render stays a function of ctx.
local PROXY_VARS = { "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                     "ALL_PROXY", "all_proxy" }
function M.proxy_env(ctx)
  if ctx.proxy_env == nil then
    local env = {}
    for _, n in ipairs(PROXY_VARS) do
      local v = os.getenv(n)
      if v then env[#env + 1] = { name = n, value = v } end
    end
    ctx.proxy_env = env
  end
  return ctx.proxy_env
end

-- kubeadm's MergeKubeadmEnvVars: later lists win by name, result sorted by name.
function M.merge_env(...)
  local by, names = {}, {}
  for i = 1, select("#", ...) do
    for _, e in ipairs(select(i, ...) or {}) do
      if not by[e.name] then names[#names + 1] = e.name end
      local v = {}
      for k, x in pairs(e) do v[k] = x end
      by[e.name] = v
    end
  end
  table.sort(names)
  local out = {}
  for i, n in ipairs(names) do out[i] = by[n] end
  return out
end

---------------------------------------------------------------------------------------------
-- Volumes: maps name -> volume/mount so later additions (extraVolumes) replace defaults.

function M.new_mounts() return { volumes = {}, mounts = {} } end

function M.add_mount(m, name, host_path, mount_path, read_only, path_type)
  m.volumes[name] = { name = name, hostPath = { path = host_path, type = path_type or "" } }
  local mount = { name = name, mountPath = mount_path }
  if read_only then mount.readOnly = true end
  m.mounts[name] = mount
  return m
end

-- extraVolumes of the config: {name, hostPath, mountPath, readOnly, pathType}; `where` names the
-- config field in errors ("apiServer.extraVolumes").
function M.add_extra_mounts(m, extra, where)
  for i, v in ipairs(extra or {}) do
    for _, k in ipairs({ "name", "hostPath", "mountPath" }) do
      if type(v[k]) ~= "string" or v[k] == "" then
        M.fail("control-plane", "%s[%d].%s: a non-empty string is required", where or "extraVolumes", i - 1, k)
      end
    end
    M.add_mount(m, v.name, v.hostPath, v.mountPath, v.readOnly, v.pathType or "")
  end
  return m
end

local function sorted_values(map)
  local names, out = {}, {}
  for n in pairs(map) do names[#names + 1] = n end
  table.sort(names)
  for i, n in ipairs(names) do out[i] = map[n] end
  return out
end
function M.volumes(m) return sorted_values(m.volumes) end
function M.volume_mounts(m) return sorted_values(m.mounts) end

-- Host CA bundles: /etc/ssl/certs is mounted into kube-apiserver and kube-controller-manager,
-- plus each of these that exists on the host, since /etc/ssl/certs may hold symlinks into them.
M.CA_CERTS_PATH = "/etc/ssl/certs"
M.CA_CERTS_EXTRA_PATHS = { "/etc/pki/ca-trust", "/etc/pki/tls/certs", "/etc/ca-certificates",
                           "/usr/share/ca-certificates", "/usr/local/share/ca-certificates" }

-- Which of those exist (looked up once through ctx.fs, so under --root too, and cached in ctx
-- so render gives the same answer every time in a run).
function M.ca_extra_paths(ctx)
  if ctx.ca_certs_extra_paths == nil then
    local found = {}
    for _, p in ipairs(M.CA_CERTS_EXTRA_PATHS) do
      if ctx.fs and ctx.fs.exists(p) then found[#found + 1] = p end
    end
    ctx.ca_certs_extra_paths = found
  end
  return ctx.ca_certs_extra_paths
end

function M.add_ca_extra_mounts(ctx, m)
  for _, p in ipairs(M.ca_extra_paths(ctx)) do
    M.add_mount(m, p:gsub("/", "-"):sub(2), p, p, true, "DirectoryOrCreate")
  end
  return m
end

local function dirname(p)
  if not p or p == "" then return "." end
  local d = p:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

local function has_prefix(s, prefix) return s:sub(1, #prefix) == prefix end

-- Directories of an external etcd's CA/cert/key files that need a hostPath mount: not ".",
-- not already under /etc/ssl/certs, the CA bundle paths or certificatesDir, parents absorbing
-- children, sorted (kubeadm's getEtcdCertVolumes).
function M.etcd_cert_dirs(ext, certs_dir)
  local set = {}
  for _, f in ipairs({ ext.caFile or "", ext.certFile or "", ext.keyFile or "" }) do
    local d = dirname(f)
    local skip = d == "." or has_prefix(d, M.CA_CERTS_PATH) or has_prefix(d, certs_dir)
    for _, p in ipairs(M.CA_CERTS_EXTRA_PATHS) do
      if has_prefix(d, p) then skip = true end
    end
    if not skip then
      local names = {}
      for e in pairs(set) do names[#names + 1] = e end
      table.sort(names)
      local covered = false
      for _, e in ipairs(names) do
        if has_prefix(e, d) then set[e] = nil
        elseif has_prefix(d, e) then covered = true end
      end
      if not covered then set[d] = true end
    end
  end
  local out = {}
  for d in pairs(set) do out[#out + 1] = d end
  table.sort(out)
  return out
end

---------------------------------------------------------------------------------------------
-- Probes (initialDelay, timeout, failureThreshold, period as kubeadm's helpers)

local function http_probe(host, path, port, scheme, initial, timeout, failure, period)
  local get = { path = path, port = port, scheme = scheme }
  if host and host ~= "" then get.host = host end
  return { httpGet = get, initialDelaySeconds = initial, timeoutSeconds = timeout,
           failureThreshold = failure, periodSeconds = period }
end

function M.liveness(host, path, port, scheme) return http_probe(host, path, port, scheme, 10, 15, 8, 10) end
function M.readiness(host, path, port, scheme) return http_probe(host, path, port, scheme, 0, 15, 3, 1) end

-- failureThreshold covers the control-plane health check timeout (default 4m) in 10 s periods.
function M.startup(host, path, port, scheme, timeout_s)
  local failure = math.ceil((timeout_s or 240) / 10)
  return http_probe(host, path, port, scheme, 10, 15, math.tointeger(failure) or failure, 10)
end

-- Probe host for a bind address: kubelet uses the pod IP when the address is unspecified.
function M.probe_address(addr)
  if addr == "0.0.0.0" or addr == "::" then return "" end
  return addr
end

function M.health_check_timeout(ctx)
  local t = ctx.init and ctx.init.timeouts and ctx.init.timeouts.controlPlaneComponentHealthCheck
  return (t and require("kboot.time").parse_duration(t)) or 240
end

---------------------------------------------------------------------------------------------
-- Images

function M.kube_image(ctx, name)
  local tag = ctx.cluster.kubernetesVersion:gsub("%+", "_")
  return ("%s/%s:%s"):format(ctx.cluster.imageRepository, name, tag)
end

function M.pause_image(ctx)
  return ("%s/pause:%s"):format(ctx.cluster.imageRepository, ctx.version.pause)
end

---------------------------------------------------------------------------------------------
-- Pod

-- kubeadm's ComponentPod: one container, labels component/tier, hostNetwork,
-- system-node-critical, RuntimeDefault seccomp; fields as Go marshals them (keys sorted).
function M.pod(container, mounts, annotations)
  local yaml = require("kboot.yaml")
  local metadata = {
    name = container.name, namespace = "kube-system",
    labels = { component = container.name, tier = "control-plane" },
    creationTimestamp = yaml.null,
  }
  if annotations and next(annotations) then metadata.annotations = annotations end
  local spec = {
    containers = { container }, hostNetwork = true,
    priority = M.PRIORITY, priorityClassName = "system-node-critical",
    securityContext = { seccompProfile = { type = "RuntimeDefault" } },
  }
  local vols = M.volumes(mounts)
  if #vols > 0 then spec.volumes = vols end
  return { apiVersion = "v1", kind = "Pod", metadata = metadata, spec = spec, status = {} }
end

-- A container table with Go's omitempty rules for env and volumeMounts.
function M.container(c)
  if c.env and #c.env == 0 then c.env = nil end
  if c.volumeMounts and #c.volumeMounts == 0 then c.volumeMounts = nil end
  c.imagePullPolicy = c.imagePullPolicy or "IfNotPresent"
  return c
end

function M.encode(pod)
  local yaml = require("kboot.yaml")
  local text, err = yaml.encode(pod)
  if not text then error("manifest: cannot encode " .. tostring(pod.metadata.name) .. ": " .. tostring(err), 0) end
  return text
end

function M.path(name) return M.DIR .. "/" .. name .. ".yaml" end

-- The render result of one static Pod component.
function M.artifacts(name, pod)
  return { files = { { path = M.path(name), mode = M.MODE, content = M.encode(pod) } }, objects = {}, pod = pod }
end

-- Write the files of a render result through ctx.fs (atomic, parents created 0700).
function M.save(ctx, a, op)
  for _, f in ipairs(a.files) do
    local ok, err = ctx.fs.write(f.path, f.content, f.mode, { mkdir = true, dir_mode = f.dir_mode or M.DIR_MODE })
    if not ok then M.fail(op or "manifest", "cannot write %s: %s", f.path, tostring(err)) end
  end
  return true
end

-- What reset removes for a static Pod component.
function M.clean(ctx, name)
  local ok, err = ctx.fs.remove(M.path(name))
  if not ok then return nil, err end
  return true
end

-- The Pod of kube-controller-manager or kube-scheduler: both are probed on /healthz over HTTPS at
-- their bind address and differ only in their config section (extraArgs, extraEnvs), CPU request
-- and mounts.
function M.secure_component_pod(ctx, C, section, cpu)
  local host = M.probe_address(M.get_arg(section.extraArgs, "bind-address") or "127.0.0.1")
  local m = C.mounts(ctx)
  local container = M.container {
    name = C.name,
    image = M.kube_image(ctx, C.name),
    command = C.command(ctx),
    volumeMounts = M.volume_mounts(m),
    livenessProbe = M.liveness(host, "/healthz", C.PORT, "HTTPS"),
    startupProbe = M.startup(host, "/healthz", C.PORT, "HTTPS", M.health_check_timeout(ctx)),
    resources = { requests = { cpu = cpu } },
    env = M.merge_env(M.proxy_env(ctx), section.extraEnvs),
  }
  return M.artifacts(C.name, M.pod(container, m, nil))
end

-- The component protocol for a control-plane static Pod (DESIGN §4): save writes the manifest,
-- apply has nothing to send (the kubelet creates the Pod), clean removes the manifest, and run is
-- the phase: log, render, save. Fills in only what the component does not define itself.
function M.static_pod(C)
  C.save = C.save or function(ctx, a) return M.save(ctx, a, C.phase) end
  C.apply = C.apply or function() return true end
  C.clean = C.clean or function(ctx) return M.clean(ctx, C.name) end
  C.run = C.run or function(ctx)
    local log = ctx.log or require("kboot.log")
    log.info("control-plane", "Creating static Pod manifest for %q", C.name)
    return C.save(ctx, C.render(ctx))
  end
  return C
end

return M

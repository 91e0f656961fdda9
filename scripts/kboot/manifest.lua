-- Shared builder of kubeadm-style static Pod manifests (util/staticpod/utils.go, util/arguments.go
-- of kubeadm v1.31): flag merging, hostPath volumes, probes, resources, the Pod skeleton, YAML.
-- Everything here is pure except node_facts(), which reads what a render needs from the node
-- (through ctx.fs, so under --root the sandbox's) into ctx.cache before the render.
local M = {}

M.DIR = "/etc/kubernetes/manifests"
M.MODE = 384      -- 0600, as kubeadm's WriteStaticPodToDisk
M.DIR_MODE = 448  -- 0700
M.PRIORITY = 2000001000 -- value of the system-node-critical PriorityClass


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

-- The proxy variables of the environment kboot runs in (kubeadm's GetProxyEnvVars: every *_proxy
-- name, any case), from the host facts.
function M.proxy_env(ctx) return ctx.host.proxy_env or {} end

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
        -- a configuration error the loader let through: raised as a kboot.error, which the runner
        -- reports as the phase's line
        error(require("kboot.error").new("control-plane", ("%s[%d].%s: a non-empty string is required"):format(
          where or "extraVolumes", i - 1, k)), 0)
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

-- node_facts(ctx): what the control-plane renders read from the node, looked up once per run
-- through ctx.fs (under --root, the sandbox's) into ctx.cache: which CA bundle paths exist
-- (ca_extra_paths) and whether the cluster CA is external (ca.crt without ca.key: external_ca).
function M.node_facts(ctx)
  local c = ctx.cache
  if c.ca_extra_paths == nil then
    local found = {}
    for _, p in ipairs(M.CA_CERTS_EXTRA_PATHS) do
      if ctx.fs.exists(p) then found[#found + 1] = p end
    end
    c.ca_extra_paths = found
  end
  if c.external_ca == nil then
    local dir = ctx.cluster.certificatesDir
    c.external_ca = ctx.fs.exists(dir .. "/ca.crt") and not ctx.fs.exists(dir .. "/ca.key")
  end
  return c
end

function M.add_ca_extra_mounts(ctx, m)
  for _, p in ipairs(ctx.cache.ca_extra_paths or {}) do
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

function M.health_check_timeout(ctx) return ctx.timeouts.controlPlaneComponentHealthCheck end

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
  if not text then error("manifest: cannot encode " .. tostring(pod.metadata.name) .. ": " .. tostring(err), 2) end
  return text
end

function M.path(name) return M.DIR .. "/" .. name .. ".yaml" end

-- The render result of one static Pod component.
function M.artifacts(name, pod)
  return { files = { { path = M.path(name), mode = M.MODE, content = M.encode(pod), dir_mode = M.DIR_MODE } } }
end

-- What this node's reset removes for a static Pod component: its manifest.
function M.clean(ctx, name)
  local ok, err = ctx.fs.remove(M.path(name))
  if not ok then return nil, require("kboot.error").new("clean", ("cannot remove %s: %s"):format(ctx.fs.path(M.path(name)), tostring(err))) end
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

-- The component protocol for a control-plane static Pod (DESIGN §4): kboot.component's generic run
-- writes the manifest (the kubelet creates the Pod); before logs the phase's line and reads the
-- node facts; clean removes the manifest. Fills in only what the component does not define itself.
function M.static_pod(C)
  C.log_tag = C.log_tag or "control-plane"
  C.before = C.before or function(ctx)
    ctx.log.info("control-plane", "%s static Pod manifest for %q", ctx.dry_run and "dry run: would create" or "Creating", C.name)
    M.node_facts(ctx)
    return true
  end
  C.clean = C.clean or function(ctx) return M.clean(ctx, C.name) end
  return C
end

return M

-- What `kboot reset` knows of the node before it removes anything: read once from the node's own
-- files (the static Pod manifests, the kubelet's files), so a reset works with no configuration
-- and with the API server down; and the guard every removal of the reset passes through (only
-- the paths reset cleans, never through a symlink).
local yaml = require("kboot.yaml")
local kerror = require("kboot.error")

local M = {}

M.MANIFESTS = "/etc/kubernetes/manifests"
M.KUBELET_DIR = "/var/lib/kubelet"
M.TMP_DIR = "/etc/kubernetes/tmp"
M.DEFAULT_CERT_DIR = "/etc/kubernetes/pki"
M.DEFAULT_DATA_DIR = "/var/lib/etcd"
M.KUBECONFIGS = { "admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf",
                  "controller-manager.conf", "scheduler.conf" }

local function dirname(p) return p:match("^(.*)/[^/]+$") or "/" end

-- The first container's command of a static Pod manifest on disk as { flag = value } (the first
-- value of a repeated flag), and the Pod's hostPath volumes { name = path }; nil when absent or
-- unreadable.
function M.static_pod(fs, name)
  local text = fs.read(M.MANIFESTS .. "/" .. name .. ".yaml")
  if not text then return nil end
  local pod = yaml.decode(text)
  local spec = type(pod) == "table" and type(pod.spec) == "table" and pod.spec
  if not spec then return nil end
  local args, volumes = {}, {}
  local c = type(spec.containers) == "table" and spec.containers[1]
  for _, a in ipairs(type(c) == "table" and type(c.command) == "table" and c.command or {}) do
    local k, v = tostring(a):match("^%-%-([^=]+)=(.*)$")
    if k and args[k] == nil then args[k] = v end
  end
  for _, v in ipairs(type(spec.volumes) == "table" and spec.volumes or {}) do
    if type(v) == "table" and type(v.hostPath) == "table" and v.name then volumes[v.name] = v.hostPath.path end
  end
  return { args = args, volumes = volumes }
end

-- KUBELET_KUBEADM_ARGS of kubeadm-flags.env as { flag = value }
local function kubelet_flags(fs)
  local text = fs.read(M.KUBELET_DIR .. "/kubeadm-flags.env")
  local out = {}
  local v = text and text:match('KUBELET_KUBEADM_ARGS="(.-)"')
  for k, x in (v or ""):gmatch("%-%-([%w%-]+)=(%S+)") do out[k] = x end
  return out
end

local function yaml_file(fs, path)
  local text = fs.read(path)
  local d = text and yaml.decode(text)
  return type(d) == "table" and d or {}
end

local function first_url(v) return v and v:match("^[^,]+") end

-- facts(ctx, file_cluster) -> the node's facts, each with where it came from:
--   cert_dir, cert_dir_from; etcd = { kind = "local" | "external" | "none", manifest = bool, name,
--   client_url, peer_url, data_dir, data_dir_from }; cri_socket, cri_socket_from; node_name;
--   control_plane (a kube-apiserver manifest is there).
-- file_cluster: the ClusterConfiguration of --config, or nil. ResetConfiguration's own
-- certificatesDir and criSocket (flags or file) come first.
function M.facts(ctx, file_cluster)
  local fs, r = ctx.fs, ctx.reset
  local fc = file_cluster or {}
  local f = { etcd = {} }
  local api, etcd = M.static_pod(fs, "kube-apiserver"), M.static_pod(fs, "etcd")
  local kcfg = yaml_file(fs, M.KUBELET_DIR .. "/config.yaml")
  local inst = yaml_file(fs, M.KUBELET_DIR .. "/instance-config.yaml")
  local kflags = kubelet_flags(fs)
  f.control_plane = api ~= nil

  -- the certificates directory, as the node was set up
  local ca_file = type(kcfg.authentication) == "table" and type(kcfg.authentication.x509) == "table"
    and kcfg.authentication.x509.clientCAFile
  local candidates = {
    { r.certificatesDir, "--cert-dir / ResetConfiguration.certificatesDir" },
    { fc.certificatesDir, "the ClusterConfiguration of --config" },
    { api and api.args["client-ca-file"] and dirname(api.args["client-ca-file"]), "the kube-apiserver manifest (--client-ca-file)" },
    { etcd and etcd.args["trusted-ca-file"] and dirname(dirname(etcd.args["trusted-ca-file"])), "the etcd manifest (--trusted-ca-file)" },
    { type(ca_file) == "string" and dirname(ca_file), "the kubelet's config.yaml (authentication.x509.clientCAFile)" },
    { M.DEFAULT_CERT_DIR, "kubeadm's default" },
  }
  for _, c in ipairs(candidates) do
    if type(c[1]) == "string" and c[1]:sub(1, 1) == "/" then f.cert_dir, f.cert_dir_from = c[1], c[2]; break end
  end

  -- etcd: this node's member, from its manifest; else what the config file says
  local e = f.etcd
  local fe = type(fc.etcd) == "table" and fc.etcd or {}
  if etcd then
    e.kind, e.manifest = "local", true
    e.name = etcd.args.name
    e.client_url = first_url(etcd.args["advertise-client-urls"])
    e.peer_url = first_url(etcd.args["initial-advertise-peer-urls"])
    e.data_dir = etcd.volumes["etcd-data"] or etcd.args["data-dir"]
    e.data_dir_from = "the etcd manifest"
  elseif fe.external then
    e.kind = "external"
  elseif fe["local"] then
    e.kind = "local"
  elseif api then
    e.kind = "external" -- a control plane without an etcd manifest
  else
    e.kind = "none"
  end
  if e.kind == "local" and not e.data_dir then
    e.data_dir = fe["local"] and fe["local"].dataDir or M.DEFAULT_DATA_DIR
    e.data_dir_from = fe["local"] and fe["local"].dataDir and "the ClusterConfiguration of --config" or "kubeadm's default"
  end

  -- the container runtime the kubelet was told to use
  local socks = {
    { r.criSocket, "--cri-socket / ResetConfiguration.criSocket" },
    { kflags["container-runtime-endpoint"], "kubeadm-flags.env" },
    { inst.containerRuntimeEndpoint, "instance-config.yaml" },
    { kcfg.containerRuntimeEndpoint, "the kubelet's config.yaml" },
    { ctx.host.cri_socket, "the socket found on this host" },
  }
  for _, c in ipairs(socks) do
    if type(c[1]) == "string" and c[1] ~= "" then f.cri_socket, f.cri_socket_from = c[1], c[2]; break end
  end

  f.node_name = kflags["hostname-override"] or e.name or ctx.host.hostname
  return f
end

---------------------------------------------------------------------------------------------------
-- Which directories reset may empty

local SYSTEM_TOP = { usr = true, bin = true, sbin = true, lib = true, lib32 = true, lib64 = true, boot = true,
                     dev = true, proc = true, sys = true, run = true, home = true, root = true }
local PROTECTED = { "/etc/kubernetes", M.KUBELET_DIR, "/var/lib", "/etc/cni" }

local function depth(p) local n = 0 for _ in p:gmatch("[^/]+") do n = n + 1 end return n end
local function below(p, dir) return dir == "/" or p:sub(1, #dir + 1) == dir .. "/" end

-- sane_dir(dir) -> true | false, why: a directory reset may empty (the certificates or etcd data
-- directory a flag, a config or a manifest names): not a system directory, not one that holds
-- what reset keeps.
function M.sane_dir(dir)
  if type(dir) ~= "string" or dir:sub(1, 1) ~= "/" then return false, "not an absolute path" end
  dir = dir:gsub("/+$", "")
  if dir == "" or depth(dir) < 2 or SYSTEM_TOP[dir:match("^/([^/]+)")] then
    return false, "a system directory, not one of Kubernetes'"
  end
  for _, p in ipairs(PROTECTED) do
    if p == dir or below(p, dir) then return false, ("it is %s or holds it"):format(p) end
  end
  return true
end

---------------------------------------------------------------------------------------------------
-- The guard

-- Is some directory above p (not p itself) a symlink? -> that directory, its target
local function linked_ancestor(fs, p)
  local acc = ""
  local parts = {}
  for c in p:gmatch("[^/]+") do parts[#parts + 1] = c end
  for i = 1, #parts - 1 do
    acc = acc .. "/" .. parts[i]
    local st = fs.stat(acc)
    if not st then return nil end
    if st.type == "link" then return acc, fs.readlink(acc) end
  end
  return nil
end
M.linked_ancestor = linked_ancestor

-- Every path at and below p (a directory's children before it), as a dry run lists them:
-- { remove = path, type = "file" | "dir" | "link" | "other" }
local function walk(fs, p, out)
  local st = fs.stat(p)
  if not st then return out end
  if st.type == "dir" then
    for _, n in ipairs(fs.list(p) or {}) do walk(fs, p .. "/" .. n, out) end
  end
  out[#out + 1] = { remove = p, type = st.type }
  return out
end

-- guard(fs, allowed, plan) -> a kboot.fs whose remove only removes a path strictly below one of
-- allowed.dirs or equal to one of allowed.files, none of whose parent directories is a symlink
-- (a link itself is removed as a link, never followed: kboot.fs.remove's own rule). Anything
-- else is refused with a kboot.error naming it. In a dry run every path that would go is appended
-- to plan ({ remove = path, type = }).
function M.guard(fs, allowed, plan)
  local g = setmetatable({}, { __index = fs })
  function g.remove(path, opts)
    local ok = false
    for _, d in ipairs(allowed.dirs) do if path ~= d and below(path, d) then ok = true end end
    for _, f in ipairs(allowed.files) do if path == f then ok = true end end
    if not ok then
      return nil, kerror.new("reset", ("refusing to remove %s: not one of the paths kboot reset cleans"):format(fs.path(path)))
    end
    local a, target = linked_ancestor(fs, path)
    if a then
      return nil, kerror.new("reset", ("not removing %s: %s is a symlink (to %s), which kboot reset does not follow"):format(
        fs.path(path), fs.path(a), tostring(target)))
    end
    if fs.dry_run() and plan then
      for _, p in ipairs(walk(fs, path, {})) do plan[#plan + 1] = p end
    end
    return fs.remove(path, opts)
  end
  return g
end

return M

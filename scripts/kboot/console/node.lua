-- The node the console looks at: its files under the root (kboot.fs, --root), its static Pod
-- manifests, its running control-plane processes and where their health endpoints are.
-- Processes come from the root's /proc when the root has one (a test's fake files), else from this
-- machine's: a sandbox root holds a node's files, but what runs from them runs here.
local fs = require("kboot.fs")
local yaml = require("kboot.yaml")
local kerror = require("kboot.error")

local M = {}

M.KUBERNETES_DIR = "/etc/kubernetes"
M.MANIFESTS = M.KUBERNETES_DIR .. "/manifests"

local function host_read(path)
  local f, why, code = io.open(path, "rb")
  if not f then return nil, kerror.new("read", tostring(why), { code = code }) end
  local s = f:read("a")
  f:close()
  return s
end

-- Is /proc to be read from this machine rather than under the root?
local function host_proc() return fs.root() ~= "/" and not fs.exists("/proc") end
local function is_proc(p) return p == "/proc" or p:sub(1, 6) == "/proc/" end

-- view: the fs that wait_control_plane.diagnose and preflight read a node through (ctx.fs).
M.view = setmetatable({
  read = function(p)
    if is_proc(p) and host_proc() then return host_read(p) end
    return fs.read(p)
  end,
  exists = function(p)
    if is_proc(p) and host_proc() then
      local f = io.open(p, "rb")
      if f then f:close() return true end
      return false
    end
    return fs.exists(p)
  end,
  list = function(p)
    if is_proc(p) and host_proc() then return require("kboot.hostfs").list(p) end
    return fs.list(p)
  end,
}, { __index = fs })

-- The node's file, or nil, err.
function M.read(path) return fs.read(path) end

-- A static Pod manifest (decoded) and its first container's command, or nil, err.
function M.manifest(name)
  local path = M.MANIFESTS .. "/" .. name .. ".yaml"
  local text, err = fs.read(path)
  if not text then return nil, err end
  local pod, perr = yaml.decode(text)
  if type(pod) ~= "table" then return nil, kerror.new("manifest", ("%s: %s"):format(path, tostring(perr or "not a Pod"))) end
  local c = pod.spec and pod.spec.containers and pod.spec.containers[1] or {}
  return pod, c.command or {}
end

-- flag(args, "secure-port") -> the value of the last --secure-port=..., or nil
function M.flag(args, name)
  local v
  local prefix = "--" .. name .. "="
  for _, a in ipairs(args or {}) do
    if a:sub(1, #prefix) == prefix then v = a:sub(#prefix + 1) end
  end
  return v
end

-- Processes named `name` (comm, cut to 15 bytes as the kernel does): { {pid=, args={...}}, ... }.
-- nil when /proc cannot be listed.
function M.processes(name)
  local pids = M.view.list("/proc")
  if not pids then return nil end
  local comm_name = name:sub(1, 15)
  local out = {}
  for _, p in ipairs(pids) do
    if p:match("^%d+$") then
      local comm = M.view.read("/proc/" .. p .. "/comm")
      if comm and comm:gsub("%s+$", "") == comm_name then
        local cmd = M.view.read("/proc/" .. p .. "/cmdline") or ""
        local args = {}
        for a in cmd:gmatch("([^%z]*)%z") do args[#args + 1] = a end
        out[#out + 1] = { pid = tonumber(p), args = args }
      end
    end
  end
  return out
end

-- The process `name` started from this node's files (its command line names a file under this
-- root's /etc/kubernetes; on a real node, as the kubelet starts it), or nil. Other clusters'
-- processes on the same machine (other sandboxes) are not it.
function M.process(name)
  local mine = fs.path(M.KUBERNETES_DIR) .. "/"
  for _, p in ipairs(M.processes(name) or {}) do
    for _, a in ipairs(p.args) do
      if a:find(mine, 1, true) then return p end
    end
  end
  return nil
end

-- The command line a component runs with: the running process's, else its manifest's.
-- Returns args, source ("pid N" | "manifest"), process | nil, or nil, err.
function M.command(name)
  local p = M.process(name)
  if p then return p.args, ("pid %d"):format(p.pid), p end
  local pod, cmd = M.manifest(name)
  if not pod then return nil, cmd end
  return cmd, "manifest"
end

local function loopback(host)
  if host == nil or host == "" or host == "0.0.0.0" then return "127.0.0.1" end
  if host == "::" then return "::1" end
  return host
end

local function hostport(host, port)
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  return host .. ":" .. port
end

-- kubeadm's secure health ports (kube-controller-manager and kube-scheduler serve /healthz there).
M.SECURE_PORTS = { ["kube-controller-manager"] = 10257, ["kube-scheduler"] = 10259 }

-- health_url(name) -> "https://127.0.0.1:10259/healthz", source, process | nil, err: where the
-- component's /healthz is, from its flags (--bind-address, --secure-port).
function M.health_url(name)
  local args, src, p = M.command(name)
  if not args then return nil, src end
  local port = M.flag(args, "secure-port") or M.SECURE_PORTS[name]
  return ("https://%s/healthz"):format(hostport(loopback(M.flag(args, "bind-address")), port)), src, p
end

-- The flags a manifest gives a component ({} without one).
local function manifest_args(name)
  local pod, cmd = M.manifest(name)
  return pod and cmd or {}
end

-- The certificates directory: the API server's --client-ca-file's directory, else kubeadm's.
function M.cert_dir()
  local ca = M.flag(manifest_args("kube-apiserver"), "client-ca-file")
  return ca and ca:match("^(.*)/[^/]+$") or (M.KUBERNETES_DIR .. "/pki")
end

-- etcd as the API server reaches it: { urls = {...}, ca = path, cert = path, key = path, local =
-- bool, source = }. Local etcd (a manifest here): its client URLs (the running process's, else the
-- manifest's) and the healthcheck-client certificate; external: the API server's --etcd-* flags.
function M.etcd()
  local dir = M.cert_dir()
  if fs.exists(M.MANIFESTS .. "/etcd.yaml") then
    local args, src = M.command("etcd")
    local urls = {}
    for u in ((M.flag(args, "listen-client-urls") or M.flag(args, "advertise-client-urls") or ""):gsub("%s", "") .. ","):gmatch("([^,]*),") do
      if u ~= "" then urls[#urls + 1] = u end
    end
    return { urls = urls, ca = dir .. "/etcd/ca.crt", cert = dir .. "/etcd/healthcheck-client.crt",
             key = dir .. "/etcd/healthcheck-client.key", ["local"] = true, source = src }
  end
  local cmd = manifest_args("kube-apiserver")
  if not M.flag(cmd, "etcd-servers") then
    return nil, kerror.new("etcd", ("no %s/etcd.yaml and no kube-apiserver manifest naming --etcd-servers"):format(M.MANIFESTS))
  end
  local urls = {}
  for u in (M.flag(cmd, "etcd-servers") .. ","):gmatch("([^,]*),") do if u ~= "" then urls[#urls + 1] = u end end
  return { urls = urls, ca = M.flag(cmd, "etcd-cafile"), cert = M.flag(cmd, "etcd-certfile"),
           key = M.flag(cmd, "etcd-keyfile"), ["local"] = false, source = "kube-apiserver manifest" }
end

-- The API server's advertise address (its manifest's --advertise-address), or nil.
function M.advertise_address()
  return M.flag(manifest_args("kube-apiserver"), "advertise-address")
end

-- This node's name: the CN system:node:NAME of kubelet.conf's client certificate, or nil.
function M.node_name()
  local kc = require("kboot.kubeconfig")
  local t = kc.load(M.KUBERNETES_DIR .. "/kubelet.conf")
  local cur = t and kc.current(t)
  local cert = cur and cur.cert_pem and require("kboot.pki").load_cert(cur.cert_pem)
  return cert and (cert:info().subject.cn or ""):match("^system:node:(.+)$") or nil, cert
end

return M

-- The cleanup-node phase of `kboot reset`, best effort: every step is tried and the failures are
-- returned together (err.items). The steps: stop the kubelet; unmount what is mounted below
-- /var/lib/kubelet (deepest first, never through a symlink) and empty that directory only when
-- nothing is left mounted there; remove the Kubernetes pods through crictl; then each component's
-- node-local clean (etcd's data directory and manifest, the static Pods' manifests, the
-- kubelet's files, the certificates directory, the kubeconfigs) and the rest of the manifests
-- directory, the kubelet directory and, with --cleanup-tmp-dir, /etc/kubernetes/tmp. On a
-- --root sandbox nothing of the host is touched: no kubelet, no containers, only mounts inside
-- the sandbox. Every removal goes through kboot.reset.node's guard (ctx.fs).
local kerror = require("kboot.error")
local node = require("kboot.reset.node")
local component = require("kboot.component")

local M = {}
local P = "cleanup-node"
local TAG = "reset"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sandbox(ctx) return ctx.fs.root() ~= "/" end

local function exec(ctx, cmd)
  if ctx.exec then return ctx.exec(cmd) end
  local p = io.popen(cmd .. " 2>&1", "r")
  local out = p:read("a")
  return p:close() == true, out
end

---------------------------------------------------------------------------------------------------
-- Mounts

local function unescape(s) return (s:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8)) end)) end

-- mounts_below(mountinfo, dir) -> the mount points strictly below host directory dir, deepest
-- first (a mount inside another goes before it).
function M.mounts_below(text, dir)
  local out, seen = {}, {}
  local prefix = dir:gsub("/+$", "") .. "/"
  for line in (text or ""):gmatch("[^\n]+") do
    local mp = line:match("^%S+ %S+ %S+ %S+ (%S+)")
    mp = mp and unescape(mp)
    if mp and mp:sub(1, #prefix) == prefix and not seen[mp] then seen[mp] = true; out[#out + 1] = mp end
  end
  table.sort(out, function(a, b)
    local da, db = select(2, a:gsub("/", "")), select(2, b:gsub("/", ""))
    if da ~= db then return da > db end
    return a > b
  end)
  return out
end

local function read_mountinfo(ctx)
  if ctx.read_mountinfo then return ctx.read_mountinfo() end
  -- the kernel's table, never a file under --root: the mounts are the host's
  local f = io.open("/proc/self/mountinfo", "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- The cluster path of a host path under the root.
local function cluster_path(ctx, host)
  local root = ctx.fs.root()
  if root == "/" then return host end
  return host:sub(#root + 1)
end

local function unmount_flags(ctx)
  local o = {}
  for _, f in ipairs(ctx.reset.unmountFlags or {}) do
    local k = require("kboot.reset_config").UNMOUNT_FLAGS[f]
    if type(k) == "string" then o[k] = true end
  end
  return o
end

-- unmount(ctx) -> true | nil, err; ctx.reset_kubelet_dir_ok says whether the directory may be emptied
function M.unmount(ctx)
  local dir = node.KUBELET_DIR
  ctx.reset_kubelet_dir_ok = false
  ctx.log.info(TAG, "Unmounting mounted directories in %q", ctx.fs.path(dir))
  local st = ctx.fs.stat(dir)
  if st and st.type == "link" then
    return nil, kerror.new(P, ("%s is a symlink (to %s), which kboot reset does not follow: nothing below it is unmounted or removed"):format(
      ctx.fs.path(dir), tostring(ctx.fs.readlink(dir))))
  end
  local a, target = node.linked_ancestor(ctx.fs, dir .. "/x")
  if a then
    return nil, kerror.new(P, ("%s is a symlink (to %s), which kboot reset does not follow: nothing below %s is unmounted or removed"):format(
      ctx.fs.path(a), tostring(target), ctx.fs.path(dir)))
  end
  if not st then ctx.reset_kubelet_dir_ok = true; return true end
  local host = ctx.fs.path(dir)
  local text = read_mountinfo(ctx)
  if not text then
    return nil, kerror.new(P, ("cannot read /proc/self/mountinfo: %s is not emptied (something may be mounted below it)"):format(host))
  end
  local mounts = M.mounts_below(text, host)
  local flags = unmount_flags(ctx)
  if ctx.dry_run then
    for _, m in ipairs(mounts) do ctx.reset_call(("umount2(%s, UMOUNT_NOFOLLOW%s)"):format(m,
      (flags.force and "|MNT_FORCE" or "") .. (flags.detach and "|MNT_DETACH" or "") .. (flags.expire and "|MNT_EXPIRE" or ""))) end
    ctx.reset_kubelet_dir_ok = true
    return true
  end
  local errs = {}
  for _, m in ipairs(mounts) do
    ctx.log.debug(TAG, "Unmounting %s", m)
    local ok, err = ctx.fs.unmount(cluster_path(ctx, m), flags)
    if not ok then errs[#errs + 1] = tostring(err) end
  end
  local left = M.mounts_below(read_mountinfo(ctx), host)
  if #left > 0 then
    return nil, kerror.new(P, ("still mounted below %s: %s%s; it is not emptied (unmount them, then rm -rf %s/*)"):format(
      host, table.concat(left, ", "), #errs > 0 and (" (" .. table.concat(errs, "; ") .. ")") or "", host))
  end
  ctx.reset_kubelet_dir_ok = true
  return true
end

---------------------------------------------------------------------------------------------------
-- Containers

local function in_path(ctx, name)
  local path = os.getenv("PATH") or ""
  if path == "" then path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" end
  for d in path:gmatch("[^:]+") do
    if d:sub(1, 1) == "/" and ctx.fs.exists(d .. "/" .. name) then return d .. "/" .. name end
  end
end

M.REMOVE_RETRIES = 5 -- kubeadm's RemoveContainerRetry

-- remove_containers(ctx) -> true | nil, err: every pod sandbox the runtime has (kubeadm's
-- ListKubeContainers: `crictl pods -q`), stopped then removed
function M.remove_containers(ctx)
  if sandbox(ctx) then
    ctx.log.info(TAG, "--root %s is a sandbox: not removing the host's containers", ctx.fs.root())
    return true
  end
  local sock = ctx.reset_node.cri_socket
  local crictl = in_path(ctx, "crictl")
  if not crictl or not sock then
    local why = not crictl and "crictl not found in the system path" or "no container runtime socket found (give --cri-socket)"
    ctx.log.warn(TAG, "%s: the Kubernetes containers are not removed", why)
    ctx.reset_leave("the Kubernetes pods' containers (" .. why .. ")", "crictl -r <runtime socket> rmp -fa")
    return true
  end
  local base = ("%s -r %s -i %s"):format(q(crictl), q(sock), q(sock))
  if ctx.dry_run then
    ctx.reset_call(base .. " -D=false pods -q; then for each pod: " .. base .. " stopp ID; " .. base .. " rmp ID")
    ctx.log.info(TAG, "Would remove Kubernetes-managed containers")
    return true
  end
  ctx.log.info(TAG, "Removing Kubernetes-managed containers (crictl, %s)", sock)
  local ok, out = exec(ctx, base .. " -D=false pods -q")
  if not ok then
    return nil, kerror.new(P, ("failed to list the pods with crictl (%s): %s"):format(sock, (out or ""):gsub("%s+$", "")))
  end
  local errs = {}
  for id in (out or ""):gmatch("%S+") do
    local last
    for _ = 1, M.REMOVE_RETRIES do
      local sok, sout = exec(ctx, base .. " stopp " .. q(id))
      local rok, rout = false, nil
      if sok then rok, rout = exec(ctx, base .. " rmp " .. q(id)) end
      if sok and rok then last = nil break end
      last = (sok and rout or sout or ""):gsub("%s+$", "")
    end
    if last then errs[#errs + 1] = ("pod %s: %s"):format(id, last) end
  end
  if #errs > 0 then
    return nil, kerror.new(P, "failed to remove some pods with crictl: " .. table.concat(errs, "; "))
  end
  return true
end

---------------------------------------------------------------------------------------------------
-- Files

local STATIC_PODS = { "kube_apiserver", "kube_controller_manager", "kube_scheduler" }

-- The directories and files this run removes the contents of / removes (host paths, for the log).
local function targets(ctx)
  local f = ctx.reset_node
  local dirs = { node.MANIFESTS }
  if ctx.reset_kubelet_dir_ok then dirs[#dirs + 1] = node.KUBELET_DIR end
  if f.cert_dir_ok then dirs[#dirs + 1] = f.cert_dir end
  if f.etcd.kind == "local" and f.etcd.data_dir_ok then dirs[#dirs + 1] = f.etcd.data_dir end
  if ctx.reset.cleanupTmpDir then dirs[#dirs + 1] = node.TMP_DIR end
  local files = {}
  for _, n in ipairs(node.KUBECONFIGS) do files[#files + 1] = "/etc/kubernetes/" .. n end
  local function shown(list)
    local out = {}
    for i, p in ipairs(list) do out[i] = ctx.fs.path(p) end
    return "[" .. table.concat(out, " ") .. "]"
  end
  return shown(dirs), shown(files)
end

function M.clean_files(ctx, errs)
  local f = ctx.reset_node
  local function try(fn)
    local ok, r, err = pcall(fn)
    if not ok then errs[#errs + 1] = tostring(r)
    elseif r == nil and err ~= nil then errs[#errs + 1] = tostring(err) end
  end
  local d, files = targets(ctx)
  ctx.log.info(TAG, "%s contents of directories: %s", ctx.dry_run and "Would delete" or "Deleting", d)
  ctx.log.info(TAG, "%s files: %s", ctx.dry_run and "Would delete" or "Deleting", files)
  -- each component its own part, then what kubeadm empties as a whole
  if f.etcd.kind == "local" and f.etcd.data_dir_ok then try(function() return require("kboot.components.etcd").clean(ctx) end) end
  for _, m in ipairs(STATIC_PODS) do try(function() return require("kboot.components." .. m).clean(ctx) end) end
  try(function() return require("kboot.components.kubelet").clean(ctx) end)
  if f.cert_dir_ok then try(function() return require("kboot.certs").clean(ctx) end) end
  try(function() return require("kboot.kubeconfigs").clean(ctx) end)
  try(function() return component.empty_dir(ctx, node.MANIFESTS) end)
  if ctx.reset_kubelet_dir_ok then try(function() return component.empty_dir(ctx, node.KUBELET_DIR) end) end
  if ctx.reset.cleanupTmpDir then try(function() return component.empty_dir(ctx, node.TMP_DIR) end) end
end

function M.run(ctx)
  local errs = {}
  local function step(fn)
    local ok, r, err = pcall(fn, ctx)
    if not ok then errs[#errs + 1] = tostring(r)
    elseif r == nil and err ~= nil then errs[#errs + 1] = tostring(err) end
  end
  step(function()
    local ok, why, would = require("kboot.components.kubelet").stop(ctx, TAG)
    if would then ctx.reset_call(would) end
    if ok == nil then return nil, why end
    return true
  end)
  step(M.unmount)
  step(M.remove_containers)
  local f = ctx.reset_node
  if not f.cert_dir_ok then
    errs[#errs + 1] = ("not emptying the certificates directory %s (from %s): %s"):format(ctx.fs.path(f.cert_dir), f.cert_dir_from, f.cert_dir_why)
  end
  if f.etcd.kind == "local" and not f.etcd.data_dir_ok then
    errs[#errs + 1] = ("not emptying the etcd data directory %s (from %s): %s"):format(ctx.fs.path(f.etcd.data_dir),
      f.etcd.data_dir_from, f.etcd.data_dir_why)
  end
  if f.cert_dir ~= node.DEFAULT_CERT_DIR and f.cert_dir_ok then
    ctx.log.warn(TAG, "WARNING: Cleaning a non-default certificates directory: %q (from %s)", ctx.fs.path(f.cert_dir), f.cert_dir_from)
  end
  M.clean_files(ctx, errs)
  if #errs == 0 then return true end
  return nil, kerror.new(P, table.concat(errs, "; "):sub(1, 400), { items = errs })
end

return M

-- The component protocol (docs/api/components.md): a component module has
--   name, render(ctx) -> { dirs = {...}, files = {...}, objects = {...} }   pure: config and ctx.host in,
--   clean(ctx) (node-local: what this node's reset removes), uninstall(ctx) (cluster objects, addons only)
-- and may override save/apply (then it must not mutate the render output), add before(ctx) (the
-- phase's progress line; node facts a render needs, read into ctx.cache) or after(ctx, a) (a side
-- effect such as restarting the kubelet). render may return warnings = { "line", ... } with the
-- artifacts: run logs them (render itself never logs). This module is the one generic save and apply.
local kerror = require("kboot.error")

local M = {}

local function empty(t) return t == nil or next(t) == nil end

-- "Kind ns/name" for messages
function M.describe(obj)
  local m = obj.metadata or {}
  return ("%s %s%s"):format(obj.kind or "?", m.namespace and (m.namespace .. "/") or "", m.name or "?")
end

-- save(ctx, a) -> true | nil, err: directories (with their modes), then files, atomically through ctx.fs.
-- dirs: { path =, mode = }; files: { path =, mode =, content =, dir_mode = (parents, default 0700) }.
function M.save(ctx, a)
  for _, d in ipairs(a.dirs or {}) do
    local ok, err = ctx.fs.mkdir(d.path, d.mode)
    if not ok then return nil, kerror.new("save", ("cannot create %s: %s"):format(ctx.fs.path(d.path), tostring(err))) end
  end
  for _, f in ipairs(a.files or {}) do
    local ok, err = ctx.fs.write(f.path, f.content, f.mode, { mkdir = true, dir_mode = f.dir_mode or 448 })
    if not ok then return nil, kerror.new("save", ("cannot write %s: %s"):format(ctx.fs.path(f.path), tostring(err))) end
  end
  return true
end

-- apply(ctx, a) -> true | nil, err: every object in order, server-side applied through ctx.kube.
function M.apply(ctx, a)
  for _, obj in ipairs(a.objects or {}) do
    local r, e = ctx.kube:apply(obj)
    if not r then
      return nil, kerror.new("apply", ("cannot apply %s: %s"):format(M.describe(obj), tostring(e)),
                             type(e) == "table" and { status = e.status, reason = e.reason } or nil)
    end
  end
  return true
end

-- Helpers for clean(ctx): what this node's reset removes. A path that is not there is no error;
-- the messages name the path the admin would act on (under --root, the sandbox's).
local function removed(ctx, path, opts)
  local ok, err = ctx.fs.remove(path, opts)
  if not ok then return nil, kerror.new("clean", ("cannot remove %s: %s"):format(ctx.fs.path(path), tostring(err))) end
  return true
end

-- remove_files(ctx, paths) -> true | nil, err
function M.remove_files(ctx, paths)
  for _, p in ipairs(paths) do
    local ok, err = removed(ctx, p)
    if not ok then return nil, err end
  end
  return true
end

-- empty_dir(ctx, dir) -> true | nil, err: everything inside dir removed (a symlink as a link), dir kept.
-- A dir that is itself a symlink is not followed: that is an error, and nothing is removed.
function M.empty_dir(ctx, dir)
  local st = ctx.fs.stat(dir)
  if not st then return true end
  if st.type == "link" then
    return nil, kerror.new("clean", ("not emptying %s: it is a symlink (to %s), which is not followed"):format(
      ctx.fs.path(dir), tostring(ctx.fs.readlink(dir))))
  end
  local names, lerr = ctx.fs.list(dir)
  if not names then return nil, kerror.new("clean", ("cannot list %s: %s"):format(ctx.fs.path(dir), tostring(lerr))) end
  for _, n in ipairs(names) do
    local ok, err = removed(ctx, dir .. "/" .. n, { recursive = true })
    if not ok then return nil, err end
  end
  return true
end

-- render(ctx, m) -> artifacts | nil, err: m.render, then kubeadm's patches (ctx.patches, see
-- kboot.patches) applied to the targets among the artifacts: what save writes and --dry-run shows.
function M.render(ctx, m)
  local a, err = m.render(ctx)
  if not a or not ctx.patches then return a, err end
  return require("kboot.patches").artifacts(ctx, a)
end

-- run(ctx, m) -> true | nil, err: render (and patch), save the files, apply the objects, then m.after.
function M.run(ctx, m)
  local ok, err
  if m.before then
    ok, err = m.before(ctx)
    if ok == nil and err ~= nil then return nil, err end
  end
  local a
  a, err = M.render(ctx, m)
  if not a then return nil, err end
  for _, w in ipairs(a.warnings or {}) do ctx.log.warn(m.log_tag or m.name or "component", "%s", w) end
  if not (empty(a.dirs) and empty(a.files)) then
    ok, err = (m.save or M.save)(ctx, a)
    if not ok then return nil, err end
  end
  if not empty(a.objects) then
    ok, err = (m.apply or M.apply)(ctx, a)
    if not ok then return nil, err end
  end
  if m.after then return m.after(ctx, a) end
  return true
end

return M

-- The component protocol (docs/api/components.md): a component module has
--   name, render(ctx) -> { dirs = {...}, files = {...}, objects = {...} }   pure: config and ctx.host in,
--   clean(ctx) (node-local: what this node's reset removes), uninstall(ctx) (cluster objects, addons only)
-- and may override save/apply (then it must not mutate the render output) or add after(ctx, a) for a
-- side effect such as restarting the kubelet. This module is the one generic save and apply.
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
    if not ok then return nil, kerror.new("save", ("cannot create %s: %s"):format(d.path, tostring(err))) end
  end
  for _, f in ipairs(a.files or {}) do
    local ok, err = ctx.fs.write(f.path, f.content, f.mode, { mkdir = true, dir_mode = f.dir_mode or 448 })
    if not ok then return nil, kerror.new("save", ("cannot write %s: %s"):format(f.path, tostring(err))) end
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

-- run(ctx, m) -> true | nil, err: render, save the files, apply the objects, then m.after.
function M.run(ctx, m)
  local a, err = m.render(ctx)
  if not a then return nil, err end
  local ok
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

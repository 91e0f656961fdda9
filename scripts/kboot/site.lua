-- Site scripts: the Lua scripts kboot holds and the override directory that replaces some of them
-- (--scripts DIR, KBOOT_SCRIPTS), for `kboot scripts list|show|export`. Built on kboot.scripts (the
-- binary's own table: names, bytecode, the source text) and kboot.hostfs (the directory is the
-- admin's, on this host).
local scripts = require("kboot.scripts")
local hostfs = require("kboot.hostfs")
local kerror = require("kboot.error")

local M = {}

-- name(s) -> module name: "kboot.certs_table", "kboot/certs_table.lua", "scripts/kboot/certs_table.lua"
-- and "init.lua" all name the same script as "kboot.certs_table" or "init"
function M.name(s)
  return (s:gsub("^%./", ""):gsub("^scripts/", ""):gsub("%.lua$", ""):gsub("/", "."))
end

-- the path of module `name` inside a scripts tree: "kboot/certs_table.lua"
function M.relpath(name) return name:gsub("%.", "/") .. ".lua" end

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

-- every *.lua below dir, as module names (sorted)
local function site_modules(dir, prefix, out)
  local names = hostfs.list(dir) or {}
  for _, n in ipairs(names) do
    local p = dir .. "/" .. n
    local st = hostfs.stat(p)
    if st and st.type == "dir" then site_modules(p, prefix .. n .. "/", out)
    elseif st and st.type == "file" and n:match("%.lua$") then out[#out + 1] = M.name(prefix .. n) end
  end
  return out
end

-- list() -> { { name =, command = bool, builtin = "scripts/..." | nil, override = file | nil,
-- summary = }, ... }: every built-in script, then the override directory's other .lua files
function M.list()
  local out, seen = {}, {}
  for _, e in ipairs(scripts.list()) do
    local where, file = scripts.origin(e.name)
    out[#out + 1] = { name = e.name, command = e.command, builtin = e.path, summary = e.summary,
                      override = where == "override" and file or nil }
    seen[e.name] = true
  end
  local dir = scripts.override_dir()
  if dir then
    for _, n in ipairs(site_modules(dir, "", {})) do
      if not seen[n] then
        out[#out + 1] = { name = n, command = not n:find(".", 1, true), override = dir .. "/" .. M.relpath(n) }
      end
    end
  end
  return out
end

-- source(name [, { builtin = true }]) -> text, where ("override FILE" | "built-in scripts/...")
-- | nil, kboot.error: what kboot loads for name (the override when there is one, unless builtin)
function M.source(name, o)
  name = M.name(name)
  local where, file = scripts.origin(name)
  if where == "override" and not (o and o.builtin) then
    local text, err = read(file)
    if not text then return nil, kerror.new("scripts", tostring(err)) end
    return text, "override " .. file
  end
  local text, err = scripts.source(name)
  if not text then
    if where == nil then
      return nil, kerror.new("scripts", ("no script %q (see 'kboot scripts list')"):format(name))
    end
    return nil, err
  end
  return text, "built-in " .. file
end

-- builtin(name) -> the value of the built-in module name, loaded afresh from the binary even when
-- the override directory replaces it: an override that changes a little of a module starts from it
--   local M = require("kboot.site").builtin("kboot.preflight")   -- in DIR/kboot/preflight.lua
-- (It is a second copy: package.loaded[name] is the override itself.)
function M.builtin(name)
  local chunk, err = scripts.load_builtin(name)
  if not chunk then error(tostring(err), 2) end
  return chunk(name, ":builtin")
end

-- export(dir [, names [, { force = bool }]]) -> written, unchanged | nil, kboot.error: the built-in
-- sources (all, or the named ones) written under dir as a tree --scripts dir takes as it is (files
-- 0644, directories 0755, atomically, in one batch). A file already there that differs is an error
-- (nothing is written) unless force.
function M.export(dir, names, o)
  o = o or {}
  local fs = require("kboot.fs")
  if fs.root() ~= "/" then error("site.export: kboot.fs has a --root; export writes host paths", 2) end
  if dir:sub(1, 1) ~= "/" then
    local cwd, err = hostfs.cwd()
    if not cwd then return nil, kerror.new("scripts", tostring(err)) end
    dir = cwd .. "/" .. dir
  end
  local list = {}
  if names and #names > 0 then
    for _, n in ipairs(names) do
      local name = M.name(n)
      local text, err = scripts.source(name)
      if not text then return nil, kerror.new("scripts", ("no built-in script %q (see 'kboot scripts list'): %s"):format(n, tostring(err))) end
      list[#list + 1] = { name = name, text = text }
    end
  else
    for _, e in ipairs(scripts.list()) do
      local text, err = scripts.source(e.name)
      if not text then return nil, err end
      list[#list + 1] = { name = e.name, text = text }
    end
  end
  local unchanged = 0
  for _, f in ipairs(list) do
    f.path = dir .. "/" .. M.relpath(f.name)
    local have = read(f.path)
    if have == f.text then
      f.same = true
      unchanged = unchanged + 1
    elseif have and not o.force then
      return nil, kerror.new("scripts", ("%s exists and differs from the built-in %s (--force overwrites it); nothing was written")
        :format(f.path, f.name))
    end
  end
  local written = 0
  local ok, err = fs.batch(function()
    for _, f in ipairs(list) do
      if not f.same then
        local wok, werr = fs.write(f.path, f.text, "0644", { mkdir = true, dir_mode = "0755" })
        if not wok then return nil, werr end
        written = written + 1
      end
    end
    return true
  end)
  if not ok then return nil, kerror.wrap("scripts", err) end
  return written, unchanged, dir
end

return M

-- help() at the REPL, from one source of truth: the docs/api pages built into the binary
-- (kboot.repl.docs()). A function's entry is the table row or list item whose first code span is
-- its call ("| `kube.new(kubeconfig, opts)` | client, or nil, err |", "- `pki.load_cert(pem)` -> ...");
-- a module's one line is the first sentence of its page.
local M = {}

local docs_cache, index_cache

-- { name = text } of docs/api/<name>.md
function M.docs()
  if not docs_cache then
    local ok, repl = pcall(require, "kboot.repl")
    docs_cache = ok and repl.docs and repl.docs() or {}
  end
  return docs_cache
end

-- For tests and for a --scripts tree: another set of pages.
function M.set_docs(d) docs_cache, index_cache = d, nil end

local function plain(s)
  return (s:gsub("\\|", "|"):gsub("`", ""):gsub("%*%*", ""):gsub("%s+", " "):gsub("^%s+", ""):gsub("%s+$", ""))
end

-- The calls named in a line's code spans: "kube.new(...)", "k:get(...)", "client{ ... }".
local function calls(text)
  local out = {}
  for span in text:gmatch("`([^`]+)`") do
    local name = span:match("^([%a_][%w_]*[%.:]?[%w_%.:]*)%s*[%({]")
    if name then out[#out + 1] = { name = name, sig = (span:gsub("\\|", "|")) } end
  end
  return out
end

-- The index: a list of { name, fn (last part), sig, text, doc }, in the pages' order.
function M.index()
  if index_cache then return index_cache end
  local out = {}
  local names = {}
  for name in pairs(M.docs()) do names[#names + 1] = name end
  table.sort(names)
  for _, doc in ipairs(names) do
    local lines = {}
    for l in (M.docs()[doc] .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    local i = 1
    while i <= #lines do
      local l = lines[i]
      local first, rest = l:match("^|%s*(.-[^\\])%s*|%s*(.-)%s*|?%s*$")
      if first and not l:match("^|%s*%-%-%-") then
        for _, c in ipairs(calls(first)) do
          out[#out + 1] = { name = c.name, fn = c.name:match("([%w_]+)$"), sig = c.sig, text = plain(rest:gsub("%s*|%s*$", "")), doc = doc }
        end
      elseif l:match("^%- `") then
        local text = l:sub(3)
        while lines[i + 1] and lines[i + 1]:match("^  +%S") do
          i = i + 1
          text = text .. " " .. lines[i]
        end
        local cs = calls(l)
        if cs[1] then
          local body = text:gsub("^`[^`]+`%s*", ""):gsub("^%->%s*", "")
          for _, c in ipairs(cs) do
            out[#out + 1] = { name = c.name, fn = c.name:match("([%w_]+)$"), sig = c.sig, text = plain(body), doc = doc }
          end
        end
      end
      i = i + 1
    end
  end
  index_cache = out
  return out
end

-- Which page documents module `mod` (a short name: "kube", "certs_table", "console")?
function M.doc_of(mod)
  local d = M.docs()
  if d[mod] then return mod end
  for name, text in pairs(d) do
    local head = text:match("^#[^\n]*") or ""
    for m in head:gmatch("kboot%.([%w_%.%*]+)") do
      local base = m:gsub("%.%*$", "")
      if base == mod or (m ~= base and mod:sub(1, #base + 1) == base .. ".") then return name end
    end
    for w in head:gmatch("[%w_]+") do if w == mod and w:find("_", 1, true) then return name end end
  end
end

-- A page's one line: what its heading says after a dash ("# kboot.net — IP and CIDR helpers"),
-- else the first sentence of its first paragraph; markdown removed.
function M.summary(doc)
  local text = M.docs()[doc]
  if not text then return nil end
  local head = text:match("^#%s*([^\n]*)") or ""
  local after
  for _, dash in ipairs({ " — ", " – ", " - " }) do
    local i = head:find(dash, 1, true)
    if i and not after then after = head:sub(i + #dash) end
  end
  if after then return (plain(after):gsub("%s*%((.-)%)$", function(x) return x:find("Lua") and "" or " (" .. x .. ")" end)) end
  local para, started = {}, false
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do
    if l:match("^#") or l:match("^%s*$") or l:match("^|") or l:match("^%- ") or l:match("^```") then
      if started then break end
    else
      started = true
      para[#para + 1] = l
    end
  end
  local p = plain(table.concat(para, " "))
  if p == "" then return plain(head) end
  return p:match("^(.-%.)%s") or p
end

-- find(query) -> entries. query: "kube.get", "k:get", "nodes", "console.nodes".
function M.find(query)
  local out = {}
  local idx = M.index()
  for _, e in ipairs(idx) do if e.name == query then out[#out + 1] = e end end
  if #out > 0 then return out end
  local mod, fn = query:match("^(.-)[%.:]([%w_]+)$")
  if not mod then
    for _, e in ipairs(idx) do if e.fn == query and e.doc == "console" then out[#out + 1] = e end end
    return out
  end
  mod = mod:gsub("^kboot%.", "")
  local doc = M.doc_of(mod) or M.doc_of(mod:match("([%w_]+)$") or mod)
  for _, e in ipairs(idx) do
    local prefix = e.name:match("^(.-)[%.:][%w_]+$")
    if e.fn == fn and (e.doc == doc or prefix == mod or prefix == mod:match("([%w_]+)$")) then out[#out + 1] = e end
  end
  return out
end

---------------------------------------------------------------------------------------------------
-- Naming a function value

-- name_of(fn, modules) -> "kube.new" | "http:request" | "nodes" | nil. modules: { ["kboot.kube"] = M, ... }
-- plus the globals; methods are found in registered metatables (userdata) and in the tables a
-- module's functions keep as upvalues (a Lua class such as kube's client).
function M.name_of(fn, modules, globals)
  for k, v in pairs(globals or {}) do if v == fn and type(k) == "string" then return k end end
  local names = {}
  for n in pairs(modules) do names[#names + 1] = n end
  table.sort(names)
  for _, n in ipairs(names) do
    local m = modules[n]
    if type(m) == "table" then
      for k, v in pairs(m) do
        if v == fn then return n:gsub("^kboot%.", "") .. "." .. k end
        if type(v) == "table" and type(k) == "string" then
          for k2, v2 in pairs(v) do if v2 == fn then return n:gsub("^kboot%.", "") .. "." .. k .. "." .. k2 end end
        end
      end
    end
  end
  for name, mt in pairs(debug.getregistry()) do
    if type(name) == "string" and type(mt) == "table" and type(rawget(mt, "__index")) == "table" then
      for k, v in pairs(mt.__index) do
        if v == fn then return (name:match("^kboot%.([%w_]+)") or name) .. ":" .. k end
      end
    end
  end
  local is_module = { [_G] = true }
  for _, m in pairs(modules) do is_module[m] = true end
  for _, n in ipairs(names) do
    local m = modules[n]
    if type(m) == "table" then
      for _, f in pairs(m) do
        if type(f) == "function" then
          for i = 1, 60 do
            local un, uv = debug.getupvalue(f, i)
            if not un then break end
            -- a class's method table, not the environment or another module
            if type(uv) == "table" and not is_module[uv] then
              for k, v in pairs(uv) do
                if v == fn and type(k) == "string" then return n:gsub("^kboot%.", "") .. ":" .. k end
              end
            end
          end
        end
      end
    end
  end
  return nil
end

---------------------------------------------------------------------------------------------------
-- Text

local function wrap(s, width, indent)
  if width <= 0 then return indent .. s end
  local out, line = {}, indent
  for w in s:gmatch("%S+") do
    if #line > #indent and #line + 1 + #w > width then
      out[#out + 1] = line
      line = indent .. w
    else
      line = line .. (#line > #indent and " " or "") .. w
    end
  end
  out[#out + 1] = line
  return table.concat(out, "\n")
end

local function entry_text(e, width)
  return e.sig .. "\n" .. wrap(e.text, width, "  ") .. "\n  (docs/api/" .. e.doc .. ".md)"
end

-- text(query, { width =, modules =, globals = }) -> the help text for a name, a function, a module
-- table or nothing (the overview).
function M.text(query, o)
  o = o or {}
  local width = o.width or 80
  local modules = o.modules or {}
  if type(query) == "function" then
    local name = M.name_of(query, modules, o.globals)
    if not name then return "no documentation found for this function (it is not a kboot module's)" end
    query = name
  elseif type(query) == "table" then
    for n, m in pairs(modules) do if m == query then query = n:gsub("^kboot%.", "") break end end
    if type(query) == "table" then return "no documentation found for this table" end
  end
  if query == nil then return M.overview(o) end
  if type(query) ~= "string" then error("help: a function, a module, or a name such as \"kube.get\" expected", 3) end
  query = query:gsub("^kboot%.", "")
  local found = M.find(query)
  if #found > 0 then
    local parts = {}
    for _, e in ipairs(found) do parts[#parts + 1] = entry_text(e, width) end
    return table.concat(parts, "\n\n")
  end
  local doc = M.doc_of(query)
  if doc then
    local lines = { ("kboot.%s: %s"):format(query, M.summary(doc) or ""), "" }
    local seen = {}
    for _, e in ipairs(M.index()) do
      if e.doc == doc and not seen[e.sig] then
        seen[e.sig] = true
        lines[#lines + 1] = "  " .. (#e.sig > width - 2 and e.sig:sub(1, width - 5) .. "..." or e.sig)
      end
    end
    lines[#lines + 1] = ""
    lines[#lines + 1] = ("help(\"%s.NAME\") for one of them; the whole page: docs/api/%s.md"):format(query, doc)
    return table.concat(lines, "\n")
  end
  return ("no documentation found for %q (help() lists what there is)"):format(query)
end

-- The overview: the console's helpers, then every module, one line each.
function M.overview(o)
  o = o or {}
  local width = o.width or 80
  local lines = { "kboot repl: Lua 5.4 with every kboot module loaded, as kboot.<name> and as a global.", "",
                  "Console helpers (kboot.console, docs/api/console.md):" }
  local seen = {}
  local helpers = {}
  for _, e in ipairs(M.index()) do
    if e.doc == "console" and not e.name:find("[%.:]") and not seen[e.name] then
      seen[e.name] = true
      helpers[#helpers + 1] = e
    end
  end
  local w = 0
  local function short(sig) return (sig:gsub("%b{}", "opts")) end
  for _, e in ipairs(helpers) do w = math.max(w, #short(e.sig)) end
  w = math.min(w, 30)
  for _, e in ipairs(helpers) do
    local s = e.text:match("^(.-%.)%s") or e.text
    local line = ("  %-" .. w .. "s  %s"):format(short(e.sig), s)
    lines[#lines + 1] = #line > width and width > 0 and line:sub(1, width - 3) .. "..." or line
  end
  lines[#lines + 1] = "  etcd.members(), etcd.health(), etcd.status()"
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Modules (kboot.<name>):"
  local mods = {}
  for n in pairs(o.modules or {}) do mods[#mods + 1] = n:gsub("^kboot%.", "") end
  table.sort(mods)
  -- a namespace whose modules share one page shows once: "components.*"
  local ns_doc = {}
  for _, m in ipairs(mods) do
    local ns = m:match("^([%w_]+)%.")
    if ns then
      local d = M.doc_of(m) or false
      if ns_doc[ns] == nil then ns_doc[ns] = d elseif ns_doc[ns] ~= d then ns_doc[ns] = false end
    end
  end
  local shown = {}
  for _, m in ipairs(mods) do
    local ns = m:match("^([%w_]+)%.")
    if ns and ns_doc[ns] then m = ns .. ".*" end
    if not shown[m] then shown[m] = true; shown[#shown + 1] = m end
  end
  mods = shown
  local undocumented = {}
  w = 0
  for _, m in ipairs(mods) do w = math.min(math.max(w, #m), 16) end
  for _, m in ipairs(mods) do
    local doc = M.doc_of((m:gsub("%.%*$", ".x")))
    if doc then
      local line = ("  %-" .. w .. "s  %s"):format(m, M.summary(doc) or "")
      lines[#lines + 1] = #line > width and width > 0 and line:sub(1, width - 3) .. "..." or line
    else
      undocumented[#undocumented + 1] = m
    end
  end
  if #undocumented > 0 then
    lines[#lines + 1] = wrap("also: " .. table.concat(undocumented, ", "), width, "  ")
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = 'help(fn), help("kube.get") or help(kube) shows the reference (the text of docs/api).'
  return table.concat(lines, "\n")
end

return M

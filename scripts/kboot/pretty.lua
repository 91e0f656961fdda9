-- Pretty printer for values at the REPL and in scripts: nested tables indented, keys sorted
-- (numbers, then strings, then the rest), strings quoted as Lua literals, cycles marked,
-- nesting cut at a depth limit, objects with __tostring (userdata, kboot errors) via tostring,
-- private keys as <private key> (a kubeconfig on a shared screen must not show its key).
-- Also the human durations the console's tables use ("5m", "in 364d", "EXPIRED 3d ago").
local M = {}

local getmt = debug and debug.getmetatable or getmetatable

M.defaults = { indent = "  ", depth = 8, width = 80, secrets = false }

-- Fields that hold private key material whatever it looks like (base64 in a kubeconfig).
M.SECRET_FIELDS = { ["client-key-data"] = true, key_pem = true, ["key-data"] = true }

-- Is s a PEM private key (any type), or the base64 of one?
local function private_pem(s)
  if s:find("-----BEGIN [%u ]*PRIVATE KEY-----") then return true end
  -- "-----BEGIN " in base64 starts "LS0tLS1CRUdJTi": a kubeconfig's client-key-data
  return s:sub(1, 14) == "LS0tLS1CRUdJTi" and s:find("^[%w+/=%s]+$") ~= nil
    and (require("kboot.crypto").unbase64(s:gsub("%s", "")) or ""):find("-----BEGIN [%u ]*PRIVATE KEY-----") ~= nil
end
M.is_private_pem = private_pem

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
            repeat return then true until while]]):gmatch("%a+") do keywords[w] = true end

local function is_ident(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil and not keywords[s]
end

local escapes = {
  ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
  ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f", ["\v"] = "\\v",
}

-- A double-quoted Lua literal that reads back as the same bytes. Unlike %q, newlines are \n and
-- valid UTF-8 text is left as it is; only control characters and invalid bytes become \xNN.
function M.quote(s)
  local keep_high = utf8.len(s) ~= nil
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    if escapes[c] then return escapes[c] end
    if keep_high and c:byte() >= 128 then return c end
    return ("\\x%02X"):format(c:byte())
  end) .. '"'
end

local function format_number(n)
  if math.type(n) == "integer" or n ~= n or n == math.huge or n == -math.huge then return tostring(n) end
  local s = tostring(n)
  if tonumber(s) ~= n then
    s = ("%.17g"):format(n)
    if not s:find("[.eEn]") then s = s .. ".0" end
  end
  return s
end

local function address(v) return type(v) .. ": " .. ("%p"):format(v) end

-- tostring that cannot fail: a broken __tostring must not hide the value.
local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return ("<%s, __tostring failed: %s>"):format(address(v), tostring(s))
end

local rank = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  local ra, rb = rank[ta] or 4, rank[tb] or 4
  if ra ~= rb then return ra < rb end
  if ta == "number" or ta == "string" then return a < b end
  if ta == "boolean" then return not a and b end
  if ta ~= tb then return ta < tb end
  return ("%p"):format(a) < ("%p"):format(b)
end

local format_value

local function format_key(k, ctx, level)
  if is_ident(k) then return k end
  return "[" .. format_value(k, ctx, level) .. "]"
end

local function format_table(t, ctx, level)
  if ctx.active[t] then return "<cycle: " .. address(t) .. ">" end
  if next(t) == nil then return "{}" end
  if level >= ctx.depth then return "{...}" end
  ctx.active[t] = true
  local keys = {}
  for k in next, t do keys[#keys + 1] = k end
  table.sort(keys, key_less)
  -- 1..n with no holes print as a list; everything else as key = value.
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  local items, multiline, len = {}, false, 0
  for _, k in ipairs(keys) do
    local raw = rawget(t, k)
    local v = (not ctx.secrets and M.SECRET_FIELDS[k] and type(raw) == "string") and "<private key>"
              or format_value(raw, ctx, level + 1)
    local item = (math.type(k) == "integer" and k >= 1 and k <= n) and v
                 or (format_key(k, ctx, level + 1) .. " = " .. v)
    items[#items + 1] = item
    multiline = multiline or item:find("\n", 1, true) ~= nil
    len = len + #item + 2
  end
  ctx.active[t] = nil
  if not multiline and len + 2 + #ctx.indent * level <= ctx.width then
    return "{ " .. table.concat(items, ", ") .. " }"
  end
  local pad = ctx.indent:rep(level + 1)
  return "{\n" .. pad .. table.concat(items, ",\n" .. pad) .. "\n" .. ctx.indent:rep(level) .. "}"
end

function format_value(v, ctx, level)
  local tv = type(v)
  if tv == "string" then
    if not ctx.secrets and #v > 40 and private_pem(v) then return "<private key>" end
    return M.quote(v)
  end
  if tv == "number" then return format_number(v) end
  if tv == "table" then
    local mt = getmt(v)
    if type(mt) == "table" and rawget(mt, "__tostring") ~= nil then return safe_tostring(v) end
    return format_table(v, ctx, level)
  end
  if tv == "function" and debug and debug.getinfo then
    -- where a function comes from says more than its address
    local info = debug.getinfo(v, "S")
    if info.what == "C" then return "function: builtin: " .. ("%p"):format(v) end
    return ("function: %p <%s:%d>"):format(v, info.short_src, info.linedefined)
  end
  return safe_tostring(v)
end

-- format(v [, opts]) -> string
-- opts: indent (string, default two spaces), depth (tables nested deeper print as {...}, default 8),
--       width (a table that fits in this many columns prints on one line; 0 = never, default 80),
--       secrets (true: print private keys instead of <private key>).
function M.format(v, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #2 to 'format' (table expected, got %s)"):format(type(opts)), 2)
  end
  opts = opts or {}
  local ctx = { active = {} }
  for k, d in pairs(M.defaults) do
    local o = opts[k]
    if o == nil then o = d end
    if type(o) ~= type(d) then
      error(("bad argument #2 to 'format' (option '%s': %s expected, got %s)"):format(k, type(d), type(o)), 2)
    end
    ctx[k] = o
  end
  return format_value(v, ctx, 0)
end

-- duration(seconds) -> "42s", "5m", "3h", "364d", "2y": apimachinery's ShortHumanDuration (kubectl's
-- AGE, kubeadm's RESIDUAL TIME), truncated toward zero; negative durations by their size.
function M.duration(secs)
  if type(secs) ~= "number" then error(("bad argument #1 to 'duration' (number expected, got %s)"):format(type(secs)), 2) end
  secs = math.abs(secs)
  if secs ~= secs or secs == math.huge then return "?" end
  return require("kboot.tokens").short_duration(math.tointeger(math.floor(secs)) or 0)
end

-- expiry(seconds_left) -> "in 364d" | "EXPIRED 3d ago"
function M.expiry(left)
  if type(left) ~= "number" then error(("bad argument #1 to 'expiry' (number expected, got %s)"):format(type(left)), 2) end
  if left < 0 then return "EXPIRED " .. M.duration(left) .. " ago" end
  return "in " .. M.duration(left)
end

-- print(...): each value formatted, separated by tabs, on standard output.
function M.print(...)
  local out = {}
  for i = 1, select("#", ...) do out[i] = M.format((select(i, ...))) end
  io.stdout:write(table.concat(out, "\t"), "\n")
end

return M

-- Lists of rows (what the console's nodes(), pods(), certs() ... return) and single records, as
-- data: plain tables a script reads field by field. A metatable only says how to show them (the
-- columns, their titles and formats, which rows are bad), and render() makes the aligned text
-- table the REPL prints, cut to the terminal's width, coloured only when asked.
local pretty = require("kboot.pretty")

local M = {}

local function column(c)
  if type(c) == "string" then c = { c } end
  if type(c) ~= "table" or type(c[1]) ~= "string" then error("rows: a column is a key or { key, title=, format= }", 3) end
  return { key = c[1], title = c.title or c[1]:upper():gsub("_", "-"), format = c.format, flex = c.flex }
end

-- rows(list, columns [, { level = function(row) -> "error" | "warn" | nil }]) -> list, marked.
-- columns: { "name", { "age", format = pretty.duration }, { "message", flex = true }, ... }; a flex
-- column (free text) is cut first when the table is too wide.
function M.rows(list, columns, o)
  if type(list) ~= "table" then error("rows.rows: list expected", 2) end
  local cols = {}
  for i, c in ipairs(columns) do cols[i] = column(c) end
  return setmetatable(list, { __name = "kboot.rows", columns = cols, level = o and o.level })
end

-- record(t, fields [, { level = }]) -> t, marked: shown as "field  value" lines in this order.
function M.record(t, fields, o)
  if type(t) ~= "table" then error("rows.record: table expected", 2) end
  local cols = {}
  for i, c in ipairs(fields) do cols[i] = column(c) end
  return setmetatable(t, { __name = "kboot.record", fields = cols, level = o and o.level })
end

local function mt_of(v, name)
  local mt = type(v) == "table" and getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__name") == name and mt or nil
end
function M.is_rows(v) return mt_of(v, "kboot.rows") ~= nil end
function M.is_record(v) return mt_of(v, "kboot.record") ~= nil end

local function is_list(t)
  local n = #t
  for k in next, t do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

-- auto(v) -> columns | nil: a plain list of flat records (string keys, scalar or list-of-scalar
-- values) shows as a table too; "name" first, then the keys in order.
function M.auto(v)
  if type(v) ~= "table" or getmetatable(v) ~= nil or #v == 0 or not is_list(v) then return nil end
  local keys, seen = {}, {}
  for _, r in ipairs(v) do
    if type(r) ~= "table" or getmetatable(r) ~= nil or next(r) == nil or #r > 0 then return nil end
    for k, x in pairs(r) do
      if type(k) ~= "string" then return nil end
      if type(x) == "table" then
        if not is_list(x) then return nil end
        for _, y in ipairs(x) do if type(y) == "table" then return nil end end
      elseif type(x) == "function" then return nil end
      if not seen[k] then seen[k] = true; keys[#keys + 1] = k end
    end
  end
  if #keys > 12 then return nil end
  table.sort(keys, function(a, b)
    if a == "name" or b == "name" then return a == "name" and b ~= "name" end
    return a < b
  end)
  return keys
end

-- The text of one cell: no quotes, no line breaks; lists joined with ",".
function M.cell(v)
  local tv = type(v)
  if v == nil then return ""
  elseif tv == "string" then return (v:gsub("[\r\n\t]+", " "))
  elseif tv == "boolean" then return v and "yes" or "no"
  elseif tv == "number" then return math.type(v) == "float" and ("%.4g"):format(v) or tostring(v)
  elseif tv == "table" and not getmetatable(v) and is_list(v) then
    local out = {}
    for i, x in ipairs(v) do out[i] = M.cell(x) end
    return table.concat(out, ",")
  elseif tv == "table" and not (getmetatable(v) and getmetatable(v).__tostring) then
    return pretty.format(v, { width = math.maxinteger })
  end
  return tostring(v)
end

local function width(s) return utf8.len(s) or #s end

-- s cut to w columns, "…" marking the cut.
local function cut(s, w)
  if width(s) <= w then return s end
  if w <= 1 then return ("…"):sub(1, w == 1 and 3 or 0) end
  if not utf8.len(s) then return s:sub(1, w - 1) .. "…" end
  return s:sub(1, (utf8.offset(s, w) or (#s + 1)) - 1) .. "…"
end

local COLOR = { error = "\27[31m", warn = "\27[33m", head = "\27[1m", reset = "\27[0m" }

local function text_of(c, row)
  local v = row[c.key]
  if c.format and v ~= nil then
    local ok, s = pcall(c.format, v, row)
    if ok then return M.cell(s) end
  end
  return M.cell(v)
end

-- Column widths that fit total: the flexible columns (free text) give first, then the others; in
-- each round the widest gives a column, none below its title (at most 12) or 6.
local function fit(widths, cols, total)
  local over = 2 * (#widths - 1) - total
  for _, w in ipairs(widths) do over = over + w end
  for _, only_flex in ipairs({ true, false }) do
    while over > 0 do
      local best, bw = nil, 0
      for i, w in ipairs(widths) do
        local min = math.max(math.min(width(cols[i].title), 12), 6)
        if (cols[i].flex or not only_flex) and w > min and w > bw then best, bw = i, w end
      end
      if not best then break end
      widths[best] = bw - 1
      over = over - 1
    end
  end
end

local function render_table(list, cols, level, o)
  if #list == 0 then return "(none)" end
  local titles, cells, widths = {}, {}, {}
  for i, c in ipairs(cols) do titles[i] = c.title; widths[i] = width(c.title) end
  for r, row in ipairs(list) do
    cells[r] = {}
    for i, c in ipairs(cols) do
      local s = text_of(c, row)
      cells[r][i] = s
      widths[i] = math.max(widths[i], width(s))
    end
  end
  if o.width and o.width > 0 then fit(widths, cols, o.width) end
  local function line(vals)
    local out = {}
    for i, s in ipairs(vals) do
      s = cut(s, widths[i])
      out[i] = i < #vals and s .. (" "):rep(widths[i] - width(s)) or s
    end
    return (table.concat(out, "  "):gsub("%s+$", ""))
  end
  local lines = { line(titles) }
  if o.color then lines[1] = COLOR.head .. lines[1] .. COLOR.reset end
  for r, row in ipairs(list) do
    local l = line(cells[r])
    local lv = o.color and level and level(row)
    if lv and COLOR[lv] then l = COLOR[lv] .. l .. COLOR.reset end
    lines[#lines + 1] = l
  end
  return table.concat(lines, "\n")
end

local render

local function render_record(t, fields, level, o)
  local kw = 0
  for _, f in ipairs(fields) do
    if t[f.key] ~= nil then kw = math.max(kw, width(f.key)) end
  end
  local lines = {}
  for _, f in ipairs(fields) do
    local v = t[f.key]
    if v ~= nil then
      local head = f.key .. (" "):rep(kw - width(f.key)) .. "  "
      local nested = type(v) == "table" and (M.is_rows(v) or M.is_record(v) or M.auto(v))
      if nested then
        local sub = render(v, { width = o.width and o.width > 2 and o.width - 2 or o.width, color = o.color })
        lines[#lines + 1] = f.key
        lines[#lines + 1] = "  " .. sub:gsub("\n", "\n  ")
      else
        local s = text_of(f, t)
        if o.width and o.width > 0 then s = cut(s, math.max(o.width - #head, 10)) end
        lines[#lines + 1] = head .. s
      end
    end
  end
  local out = table.concat(lines, "\n")
  local lv = o.color and level and level(t)
  if lv and COLOR[lv] then out = COLOR[lv] .. out .. COLOR.reset end
  return out
end

-- render(v [, { width = columns (0: no limit), color = bool }]) -> text | nil (v is no rows list,
-- record or plain list of flat records).
function render(v, o)
  o = o or {}
  local mt = type(v) == "table" and getmetatable(v)
  if M.is_rows(v) then return render_table(v, mt.columns, mt.level, o) end
  if M.is_record(v) then return render_record(v, mt.fields, mt.level, o) end
  local keys = M.auto(v)
  if keys then
    local cols = {}
    for i, k in ipairs(keys) do cols[i] = column(k) end
    return render_table(v, cols, nil, o)
  end
  return nil
end
M.render = render

return M

--- interactive Lua prompt with every kboot module loaded
-- The loop of lua.c's interactive mode: try a line as `return <line>`, else as a statement, keep
-- reading with ">> " while the chunk is incomplete, print results with kboot.pretty. Without a
-- terminal on stdin it reads lines silently, so `echo 'return 1+1' | kboot repl` prints 2.
local cli = require("kboot.cli")
local repl = require("kboot.repl")
local pretty = require("kboot.pretty")

local opts, args = cli.parse({ ... }, {
  name = "repl",
  args = "[FILE [ARGS...]]",
  summary = "Interactive Lua 5.4 prompt with the kboot modules as globals: pki, crypto, yaml, json, fs,\n"
    .. "http, log, kubeconfig, cli, pretty. Results are pretty-printed; Tab completes globals and\n"
    .. "fields (pki.gen<Tab>); Ctrl-C stops a running statement or clears the line; Ctrl-D exits.\n"
    .. "FILE, if given, runs first (with ARGS as ...), then the prompt starts.\n"
    .. "History is kept in $KBOOT_HISTORY or ~/.kboot_history.",
  options = {
    { "no-history", help = "neither read nor write the history file" },
  },
  examples = {
    "kboot repl",
    "echo 'return json.encode{a = 1}' | kboot repl",
  },
})

-- Modules as globals; one that is missing (not built yet) is skipped, not fatal.
local globals = {
  pki = "kboot.pki", crypto = "kboot.crypto", yaml = "kboot.yaml", json = "kboot.json",
  fs = "kboot.fs", http = "kboot.http", log = "kboot.log", kubeconfig = "kboot.kubeconfig",
  cli = "kboot.cli", pretty = "kboot.pretty", repl = "kboot.repl", time = "kboot.time",
  net = "kboot.net", build = "kboot.build",
}
local log = require("kboot.log")
for name, mod in pairs(globals) do
  local ok, m = pcall(require, mod)
  if ok then _G[name] = m else log.debug("repl", "%s not loaded: %s", mod, (tostring(m):match("[^\n]*"))) end
end

local interactive = repl.isatty(0)
local verbose = log.level() >= 3 -- -v, given to kboot or to repl

local function flush() io.stdout:flush() end

local self_src = debug.getinfo(1, "S").short_src
local traceback -- of the last error, kept beside it (error values are the user's own)

local function show_error(e)
  flush()
  local msg
  if type(e) == "string" then msg = e
  elseif e == nil then msg = "(error object is a nil value)"
  else msg = pretty.format(e) end
  io.stderr:write(msg, "\n")
  if verbose and traceback then io.stderr:write(traceback, "\n") end
  traceback = nil
end

local function handler(e)
  if verbose then
    -- the frames below the user's chunk are the REPL's own
    local tb = debug.traceback("", 2):gsub("^\n", "")
    local cut = tb:find("\n\t" .. self_src .. ":", 1, true)
    traceback = cut and tb:sub(1, cut - 1) or tb
  end
  return e
end

-- Calls fn and prints its results; inside the interruptible call because formatting a huge
-- table can take as long as computing it.
local function eval_print(fn, ...)
  local r = table.pack(fn(...))
  if r.n > 0 then
    local out = {}
    for i = 1, r.n do out[i] = pretty.format(r[i]) end
    io.stdout:write(table.concat(out, "\t"), "\n")
  end
end

-- Runs fn; Ctrl-C raises "interrupted!" inside it. Prints results or the error.
local function run(fn, ...)
  local ok, inner_ok, err = repl.pcall_interruptible(xpcall, eval_print, handler, fn, ...)
  if not ok then inner_ok, err = false, inner_ok end -- the handler itself failed
  if not inner_ok then show_error(err) end
  flush()
  return inner_ok
end

local function incomplete(err) return err:sub(-5) == "<eof>" end

-- compile(source) -> fn | nil, err, more (more: the chunk may be completed by further lines)
local function compile(src)
  local fn, err1 = load("return " .. src, "=stdin", "t")
  if fn then return fn end
  local err2
  fn, err2 = load(src, "=stdin", "t")
  if fn then return fn end
  return nil, err2, incomplete(err1) or incomplete(err2)
end

-- Completion: candidates for `text` (the word before the cursor, e.g. "pki.gen" or "obj:me").
local function fields(v, seen, out)
  seen = seen or {}
  out = out or {}
  if seen[v] then return out end
  seen[v] = true
  if type(v) == "table" then
    for k in next, v do
      if type(k) == "string" then out[k] = rawget(v, k) end
    end
  end
  local mt = debug.getmetatable(v)
  local idx = type(mt) == "table" and rawget(mt, "__index")
  if type(idx) == "table" then fields(idx, seen, out) end
  return out
end

local function lookup(v, name)
  return fields(v)[name]
end

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
            repeat return then true until while]]):gmatch("%a+") do keywords[#keywords + 1] = w end

local function complete(text, prefix)
  local _, quotes = (prefix or ""):gsub('"', "")
  if quotes % 2 == 1 then return {} end -- inside a string literal
  local path, sep, part = text:match("^(.-)([.:])([%a_]?[%w_]*)$")
  local names, found = {}, {}
  if not path then
    part = text:match("^[%a_]?[%w_]*$")
    if not part then return {} end
    for k in pairs(fields(_G)) do names[#names + 1] = k end
    for _, k in ipairs(keywords) do names[#names + 1] = k end
    path, sep = "", ""
  else
    local v = _G
    for name in (path .. "."):gmatch("(.-)%.") do
      if not name:match("^[%a_][%w_]*$") then return {} end
      v = lookup(v, name)
      if v == nil then return {} end
    end
    for k, fv in pairs(fields(v)) do
      if k:match("^[%a_][%w_]*$") and (sep == "." or type(fv) == "function") then names[#names + 1] = k end
    end
  end
  local out = {}
  for _, k in ipairs(names) do
    if k:sub(1, #part) == part and not found[k] then
      found[k] = true
      out[#out + 1] = path .. sep .. k
    end
  end
  table.sort(out)
  return out
end
repl.complete = complete

-- History: only for a terminal; a piped session leaves no trace.
local history = not opts.no_history and interactive
  and (os.getenv("KBOOT_HISTORY") or ((os.getenv("HOME") or ".") .. "/.kboot_history"))
local f = history and io.open(history, "r")
if f then -- a missing file is a first session, not an error
  f:close()
  local ok, err = repl.load_history(history)
  if not ok then log.warn("repl", "history not loaded: %s", tostring(err)) end
end

-- Saved after every chunk, so os.exit() or a kill loses nothing; the list in memory (and so the
-- file) is bounded by repl.history_max.
local warned = false
local function remember(src)
  repl.add_history(src)
  local ok, err = repl.save_history(history)
  if not ok and not warned then
    warned = true
    log.warn("repl", "history not saved: %s", tostring(err))
  end
end

if args[1] then
  local fn, err = loadfile(args[1], "t")
  if fn then run(fn, table.unpack(args, 2)) else show_error(err) end
end

-- One prompt: read a chunk (more lines while incomplete), run it. false at end of input.
local function step()
  local line = repl.readline("> ")
  if line == nil then return false end
  if line == false then -- Ctrl-C at the prompt: drop the line
    io.stdout:write("\n")
    return true
  end
  if not line:find("%S") then return true end
  local src = line
  local fn, err, more = compile(src)
  while not fn and more do
    local next_line = repl.readline(">> ")
    if next_line == nil then break end -- Ctrl-D (or EOF) abandons the chunk
    if next_line == false then io.stdout:write("\n"); return true end
    src = src .. "\n" .. next_line
    fn, err, more = compile(src)
  end
  if history then remember(src) end
  if fn then run(fn) else show_error(err) end
  return true
end

repl.set_completer(complete)
-- The whole step is interruptible, not only the user's chunk: a Ctrl-C between reading and
-- running must not kill the session.
while true do
  local ok, again = repl.pcall_interruptible(step)
  if not ok then show_error(again)
  elseif not again then break end
end
if interactive then io.stdout:write("\n") end
repl.set_completer(nil)
return 0

--- interactive Lua prompt with every kboot module loaded
-- The loop of lua.c's interactive mode: try a line as `return <line>`, else as a statement, keep
-- reading with ">> " while the chunk is incomplete, print results with kboot.pretty (lists of rows
-- as tables, kboot.rows). Without a terminal on stdin it reads lines silently, so
-- `echo 'return 1+1' | kboot repl` prints 2. Every kboot module is loaded, in the table `kboot` and
-- as a global; the console's helpers (kboot.console: connect, nodes, certs, ...) and help() are
-- globals too.
local cli = require("kboot.cli")
local repl = require("kboot.repl")
local pretty = require("kboot.pretty")
local rows = require("kboot.rows")
local kerror = require("kboot.error")
local log = require("kboot.log")

local opts, args = cli.parse({ ... }, {
  name = "repl",
  args = "[FILE [ARGS...]]",
  summary = "Interactive Lua 5.4 prompt for debugging a cluster: every kboot module is loaded (in the\n"
    .. "table kboot and as globals: kube, pki, fs, ...), with the console's helpers: connect(), nodes(),\n"
    .. "pods(ns), events(ns), components(), certs(), inspect(x), etcd.members(), diagnose(), probe(url),\n"
    .. "watch(what). help() lists them, help(fn) or help(\"kube.get\") shows one. Lists of rows print as\n"
    .. "tables. Tab completes globals and fields (kboot.ku<Tab>); Ctrl-C stops a running statement (a\n"
    .. "waiting request too) or clears the line; Ctrl-D exits.\n"
    .. "FILE, if given, runs first (with ARGS as ...), then the prompt starts. Piped input and -e exit 1\n"
    .. "when a chunk failed (raised, or returned nil and a kboot error).\n"
    .. "History is kept in $KBOOT_HISTORY or ~/.kboot_history. Colour only on a terminal, not with NO_COLOR.",
  options = {
    { "root", arg = "DIR", help = "look at the node whose files are under DIR (as kboot init --root)" },
    { "kubeconfig", arg = "FILE", help = "the kubeconfig connect() and the helpers use (default: /etc/kubernetes/admin.conf, $KUBECONFIG, ~/.kube/config)" },
    { "eval", short = "e", arg = "EXPR", help = "run EXPR (printed like a line at the prompt) and exit; 1 if it failed" },
    { "no-history", help = "neither read nor write the history file" },
  },
  examples = {
    "kboot repl",
    "kboot repl --root /tmp/sandbox --kubeconfig /tmp/sandbox/etc/kubernetes/super-admin.conf",
    "kboot repl -e 'nodes()'",
    "echo 'return json.encode{a = 1}' | kboot repl",
  },
})

-- Every module: kboot.<name> (kboot.components.etcd nested), and as a global under its last name
-- unless that name is taken (a Lua builtin such as error, or a console helper such as certs).
-- One that fails to load is skipped, not fatal (kboot -v repl says why).
local loaded = {}
do
  local names = {}
  for m in pairs(package.preload) do -- the C modules the host registers
    if type(m) == "string" and m:match("^kboot%.") then names[#names + 1] = m end
  end
  table.sort(names)
  for _, m in ipairs(repl.modules and repl.modules() or {}) do names[#names + 1] = m end
  for _, mod in ipairs(names) do
    local ok, m = pcall(require, mod)
    if ok and type(m) == "table" then loaded[mod] = m
    elseif not ok then log.debug("repl", "%s not loaded: %s", mod, (tostring(m):match("[^\n]*"))) end
  end
end
-- kboot.components.etcd sits in a plain table kboot.components; a module's own parts
-- (kboot.console.connect) are left to require: a module table is never written to.
local kboot = {}
do
  local names, is_module = {}, {}
  for mod in pairs(loaded) do names[#names + 1] = mod; is_module[mod] = true end
  table.sort(names)
  for _, mod in ipairs(names) do
    local parts, prefix, t = {}, "kboot", kboot
    for p in mod:gsub("^kboot%.", ""):gmatch("[^.]+") do parts[#parts + 1] = p end
    for i = 1, #parts - 1 do
      prefix = prefix .. "." .. parts[i]
      if is_module[prefix] then t = nil break end
      t[parts[i]] = t[parts[i]] or {}
      t = t[parts[i]]
    end
    if t then t[parts[#parts]] = loaded[mod] end
  end
end
_G.kboot = kboot

local console = loaded["kboot.console"]
local help_mod = loaded["kboot.help"]
local interactive = repl.isatty(0)
local verbose = log.level() >= 3 -- -v, given to kboot or to repl
local color = repl.isatty(1) and (os.getenv("NO_COLOR") or "") == "" and os.getenv("TERM") ~= "dumb"
local err_color = repl.isatty(2) and (os.getenv("NO_COLOR") or "") == "" and os.getenv("TERM") ~= "dumb"

local function columns()
  local w = repl.term_size and repl.term_size(1)
  if not w then w = tonumber(os.getenv("COLUMNS") or "") end
  return w or 0
end

local helpers = {}

-- help([fn | "name" | module]): prints the reference (kboot.help, from docs/api).
function helpers.help(x)
  if not help_mod then io.stdout:write("kboot.help is not in this build\n") return end
  local w = columns()
  io.stdout:write(help_mod.text(x, { width = w > 0 and w or 100, modules = loaded, globals = helpers }), "\n")
end

if console then
  for _, k in ipairs({ "connect", "disconnect", "nodes", "pods", "events", "components", "watch", "certs",
                       "inspect", "diagnose", "probe", "etcd" }) do
    helpers[k] = console[k]
  end
end
for k, v in pairs(helpers) do _G[k] = v end
for mod, m in pairs(loaded) do
  local short = mod:gsub("^kboot%.", "")
  if not short:find(".", 1, true) and _G[short] == nil then _G[short] = m end
end
for ns, t in pairs(kboot) do -- kboot.components, kboot.online, kboot.flows: namespaces of modules
  if _G[ns] == nil then _G[ns] = t end
end

if opts.root then
  local ok, err = (console and console.set_root or loaded["kboot.fs"].set_root)(opts.root)
  if not ok then cli.usage_error("repl", "--root %s: %s", opts.root, tostring(err)) end
end
if opts.kubeconfig and console then console.set_kubeconfig(opts.kubeconfig) end

local function flush() io.stdout:flush() end

local self_src = debug.getinfo(1, "S").short_src
local traceback -- of the last error, kept beside it (error values are the user's own)

local function show_error(e)
  flush()
  local msg
  if type(e) == "string" then msg = e
  elseif e == nil then msg = "(error object is a nil value)"
  else msg = pretty.format(e) end
  if err_color then msg = "\27[31m" .. msg .. "\27[0m" end
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

-- The chunk returned the API's failure: nil and a kboot error (connect() that could not).
local function failure(r) return r.n == 2 and r[1] == nil and kerror.is(r[2]) end

-- Calls fn and prints its results (lists of rows and records as tables, fitted to the terminal);
-- inside the interruptible call because formatting a huge table can take as long as computing
-- it. Returns false when the chunk returned nil, err.
local function eval_print(fn, ...)
  local r = table.pack(fn(...))
  if failure(r) then
    show_error(r[2])
    return false
  end
  if r.n > 0 then
    local w = columns()
    local out, block = {}, false
    for i = 1, r.n do
      local text = rows.render(r[i], { width = w, color = color })
      block = block or text ~= nil
      out[i] = text or pretty.format(r[i], w > 0 and { width = w } or nil)
    end
    io.stdout:write(table.concat(out, block and "\n" or "\t"), "\n")
  end
  return true
end

-- Runs fn; Ctrl-C raises "interrupted" inside it. Prints results or the error. false when the
-- chunk failed.
local function run(fn, ...)
  local ok, inner_ok, err = repl.pcall_interruptible(xpcall, eval_print, handler, fn, ...)
  if not ok then inner_ok, err = false, inner_ok end -- the handler itself failed
  if not inner_ok then show_error(err) end
  flush()
  return inner_ok and err ~= false
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

-- A chunk that raised, did not compile or returned nil, err: piped input and -e then exit 1.
local failed = false

if args[1] then
  local fn, err = loadfile(args[1], "t")
  if fn then failed = not run(fn, table.unpack(args, 2)) else show_error(err); failed = true end
end

if opts.eval then
  local fn, err, more = compile(opts.eval)
  if fn then failed = not run(fn) or failed
  else
    show_error(more and (err .. " (the expression is incomplete)") or err)
    failed = true
  end
  return failed and 1 or 0
end

if interactive then
  io.stdout:write("kboot repl: help() lists the helpers and modules, Ctrl-D exits.\n")
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
  if fn then
    if not run(fn) then failed = true end
  else
    show_error(err)
    failed = true
  end
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
-- At a terminal an error is something to read and retry, not a result of the session.
return (failed and not interactive) and 1 or 0

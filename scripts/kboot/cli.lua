-- Command-line parsing for kboot scripts: long options, --flag=value, --flag value,
-- repeated and comma-separated list options, --help per script, usage errors (exit 2).
local log = require("kboot.log")

local M = {}

local exit_meta = { __tostring = function(e) return e.msg or "" end }

-- Raise an error that the host prints as one line and turns into exit code `code`.
function M.exit(code, msg)
  error(setmetatable({ exit = code, msg = msg or "" }, exit_meta), 0)
end

function M.usage_error(name, fmt, ...)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  M.exit(2, ("%s: %s (see 'kboot %s --help')"):format(name, msg, name))
end

function M.fail(fmt, ...)
  M.exit(1, select("#", ...) > 0 and fmt:format(...) or fmt)
end

-- path(name, flag, p [, relative]) -> p as the absolute path kboot.fs takes: a relative p is made
-- absolute from the working directory when relative is true (a file the admin names), else refused;
-- a ".." climbing above / is a usage error naming the flag (kboot.config_validate.host_path's rule),
-- where kboot.fs would raise.
function M.path(name, flag, p, relative)
  if p:sub(1, 1) ~= "/" then
    local pwd = relative and os.getenv("PWD")
    if not pwd or pwd:sub(1, 1) ~= "/" then M.usage_error(name, "%s %s: give an absolute path", flag, p) end
    p = pwd .. "/" .. p
  end
  local errs = {}
  require("kboot.config_validate").host_path(p, flag, errs)
  if errs[1] then M.usage_error(name, "%s", errs[1]) end
  return p
end

local function key(name) return (name:gsub("-", "_")) end

-- kubeadm's --v=N (its own error lines say "execute with --v=5"): 0 is the default, 1 or more
-- is -v (debug lines, HTTP requests, a traceback with errors), 6 or more -vv
local function check_v(s)
  if not s:match("^%d+$") then return nil, "want a number (kubeadm's verbosity, 0 to 10)" end
  return true
end
local function check_format(s)
  if s ~= "text" and s ~= "json" then return nil, "want text or json" end
  return true
end

local builtin = {
  { "help", short = "h", help = "show this help and exit" },
  { "verbose", short = "v", count = true, help = "more output; a traceback with errors (repeat for more)" },
  { "v", arg = "N", check = check_v, help = "kubeadm's verbosity: 1 or more is -v, 6 or more -vv" },
  { "log-format", arg = "FORMAT", check = check_format, help = "text, or json: one JSON object per log line (also KBOOT_LOG_FORMAT)" },
}

-- verbosity(n) -> the kboot.log level of kubeadm's --v=N
function M.verbosity(n)
  n = tonumber(n) or 0
  return n >= 6 and 4 or n >= 1 and 3 or 2
end

function M.help_text(spec)
  local out = {}
  local function add(s) out[#out + 1] = s end
  add("Usage: " .. (spec.usage or ("kboot " .. spec.name .. " [options]" .. (spec.args and " " .. spec.args or ""))))
  if spec.summary then add(""); add(spec.summary) end
  if spec.description then add(""); add(spec.description) end
  -- commands: { {name, help}, ... } or a function giving them (called only when help is shown)
  local commands = spec.commands
  if type(commands) == "function" then commands = commands() end
  if commands then
    add(""); add("Commands:")
    local w = 0
    for _, c in ipairs(commands) do w = math.max(w, #c[1]) end
    for _, c in ipairs(commands) do add(("  %-" .. w .. "s  %s"):format(c[1], c[2] or "")) end
  end
  add(""); add("Options:")
  local all = {}
  for _, o in ipairs(spec.options or {}) do all[#all + 1] = o end
  for _, o in ipairs(builtin) do all[#all + 1] = o end
  for _, o in ipairs(all) do
    local left = (o.short and ("-" .. o.short .. ", ") or "    ") .. "--" .. o[1] .. (o.arg and (" " .. o.arg) or "")
    local help = o.help or ""
    if o.default ~= nil and not o.list then help = help .. (" (default %s)"):format(tostring(o.default)) end
    if #left > 28 then add("  " .. left); add((" "):rep(32) .. help)
    else add(("  %-30s%s"):format(left, help)) end
  end
  if spec.examples then
    add(""); add("Examples:")
    for _, e in ipairs(spec.examples) do add("  " .. e) end
  end
  return table.concat(out, "\n") .. "\n"
end

-- group_help(spec, word): a command group (kboot config, kboot token, ...) given no COMMAND, or
-- asked for its help (word: --help, -h, help): the help on stdout, then no COMMAND is a usage
-- error of one line (exit 2) and help exits 0. Any other word returns.
function M.group_help(spec, word)
  if word ~= nil and word ~= "--help" and word ~= "-h" and word ~= "help" then return end
  io.stdout:write(M.help_text(spec))
  if word == nil then M.exit(2, ("%s: no COMMAND given; the commands are listed above"):format(spec.name)) end
  M.exit(0)
end

-- parse(argv, spec) -> opts, positional
-- spec = { name=, summary=, usage=, args=, min_args=, max_args=, options = {
--   { "dry-run", help= },                        -- boolean
--   { "config", arg="FILE", help=, default= },   -- string (last one wins)
--   { "skip-phases", arg="LIST", list=true },    -- repeated and/or comma separated -> array
--   { "ttl", arg="DURATION", check=function(v) return ok, why end },
-- } }
-- opts uses underscores (opts.dry_run); opts._given[name] is true for options on the command line.
function M.parse(argv, spec)
  local byname, byshort = {}, {}
  local opts, pos, given = {}, {}, {}
  for _, list in ipairs({ spec.options or {}, builtin }) do
    for _, o in ipairs(list) do
      byname[o[1]] = o
      if o.short then byshort[o.short] = o end
      if o.list then opts[key(o[1])] = {} end
      if o.default ~= nil then
        if o.list then
          for _, v in ipairs(o.default) do table.insert(opts[key(o[1])], v) end
        else opts[key(o[1])] = o.default end
      end
    end
  end
  local function set(o, value, shown)
    local k = key(o[1])
    if o.check and value ~= nil then
      local ok, why = o.check(value)
      if not ok then M.usage_error(spec.name, "invalid value %q for %s: %s", value, shown, why or "not accepted") end
    end
    if o.count then opts[k] = (given[o[1]] and opts[k] or 0) + 1
    elseif o.list then
      if not given[o[1]] and o.default then opts[k] = {} end
      for item in value:gmatch("[^,]+") do
        item = item:match("^%s*(.-)%s*$")
        if item ~= "" then table.insert(opts[k], item) end
      end
    else opts[k] = value end
    given[o[1]] = true
  end
  local i, n = 1, #argv
  -- the log format first, so that a usage error anywhere on the line is printed in it
  for j = 1, n do
    if argv[j] == "--" then break end
    local f = argv[j]:match("^%-%-log%-format=(.*)$")
    if f and check_format(f) then log.set_json(f == "json") end
  end
  while i <= n do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, n do pos[#pos + 1] = argv[j] end
      break
    elseif a:sub(1, 2) == "--" and #a > 2 then
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local o = byname[name]
      if not o then M.usage_error(spec.name, "unknown option --%s", name) end
      if o.arg then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then M.usage_error(spec.name, "option --%s needs a value (%s)", name, o.arg) end
        end
        set(o, value, "--" .. name)
      else
        if value ~= nil and value ~= "true" and value ~= "false" then
          M.usage_error(spec.name, "option --%s takes no value", name)
        end
        if value == "false" then opts[key(name)] = false; given[name] = true
        else set(o, true, "--" .. name) end
      end
    elseif a:match("^%-v=") then
      set(byname.v, a:sub(4), "-v")  -- kubeadm's shorthand of --v=N
    elseif a:sub(1, 1) == "-" and #a > 1 and not a:match("^%-%d") then
      -- one or more short flags: -v, -vv; a short option with a value takes the next argument
      for c in a:sub(2):gmatch(".") do
        local o = byshort[c]
        if not o then M.usage_error(spec.name, "unknown option -%s", c) end
        if o.arg then
          i = i + 1
          if argv[i] == nil then M.usage_error(spec.name, "option -%s needs a value (%s)", c, o.arg) end
          set(o, argv[i], "-" .. c)
        else set(o, true, "-" .. c) end
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  if opts.help then
    io.stdout:write(M.help_text(spec))
    M.exit(0)
  end
  if opts.log_format then log.set_json(opts.log_format == "json") end
  local level = math.max(opts.verbose and math.min(4, 2 + opts.verbose) or 2, opts.v and M.verbosity(opts.v) or 2)
  if level > 2 then log.set_level(math.max(level, (log.level()))) end
  if spec.min_args and #pos < spec.min_args then
    M.usage_error(spec.name, "expected %s", spec.args or ("at least " .. spec.min_args .. " argument(s)"))
  end
  if spec.max_args and #pos > spec.max_args then
    M.usage_error(spec.name, "unexpected argument %q", pos[spec.max_args + 1])
  end
  opts._given = given
  return opts, pos
end

return M

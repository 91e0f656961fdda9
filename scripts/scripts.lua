--- list, show and export the Lua scripts built into kboot (for --scripts DIR)
local cli = require("kboot.cli")
local log = require("kboot.log")
local site = require("kboot.site")

local argv = { ... }
local top = { name = "scripts", usage = "kboot [--scripts DIR] scripts COMMAND [options]",
  summary = "Every kboot command is a Lua script built into the binary; any of them, and any module they use, "
    .. "can be replaced by a file of the same path under --scripts DIR (docs/customising.md).",
  commands = {
    { "list", "every built-in command and module, and what --scripts DIR overrides" },
    { "show NAME", "print the source kboot runs for NAME (kboot.certs_table, kboot/certs_table.lua, init)" },
    { "export DIR [NAME...]", "write the built-in sources (all, or the NAMEs) as a tree --scripts DIR takes" },
  },
  examples = { "kboot scripts export /etc/kboot/scripts kboot.certs_table",
               "kboot --scripts /etc/kboot/scripts scripts list", "kboot scripts show kboot.components.kube_apiserver" } }

local function list(args)
  cli.parse(args, { name = "scripts list", usage = "kboot [--scripts DIR] scripts list",
    summary = "List every built-in command and module; with --scripts DIR, which ones DIR overrides and what else it holds.",
    max_args = 0 })
  local rows = site.list()
  local w = 4
  for _, r in ipairs(rows) do w = math.max(w, #r.name) end
  local out = { ("%-" .. w .. "s  %-7s  %s"):format("NAME", "KIND", "SOURCE") }
  for _, r in ipairs(rows) do
    local src = r.override and (r.builtin and (r.override .. " (overrides " .. r.builtin .. ")") or (r.override .. " (site)"))
      or ("built-in " .. r.builtin)
    out[#out + 1] = ("%-" .. w .. "s  %-7s  %s"):format(r.name, r.command and "command" or "module", src)
  end
  io.stdout:write(table.concat(out, "\n"), "\n")
end

local function show(args)
  local opts, pos = cli.parse(args, { name = "scripts show", usage = "kboot [--scripts DIR] scripts show NAME [--builtin]",
    summary = "Print the source kboot loads for NAME: the override under --scripts DIR when there is one, else the built-in.",
    options = { { "builtin", help = "print the built-in source even when DIR overrides it" } },
    args = "NAME", min_args = 1, max_args = 1 })
  local text, where = site.source(pos[1], { builtin = opts.builtin })
  if not text then cli.fail("%s", tostring(where)) end
  log.debug("scripts", "%s: %s", site.name(pos[1]), where)
  io.stdout:write(text)
end

local function export(args)
  local opts, pos = cli.parse(args, { name = "scripts export", usage = "kboot scripts export DIR [NAME...] [--force]",
    summary = "Write the built-in Lua sources under DIR (created if needed) as the tree --scripts DIR takes as it is: "
      .. "DIR/init.lua, DIR/kboot/certs_table.lua, ... Keep only the files you change: the others then stay "
      .. "the binary's own, and follow its upgrades.",
    options = { { "force", help = "overwrite files in DIR that differ from the built-in ones" } },
    args = "DIR [NAME...]", min_args = 1 })
  local names = { table.unpack(pos, 2) }
  local written, unchanged, dir = site.export(pos[1], names, { force = opts.force })
  if not written then cli.fail("%s", tostring(unchanged)) end
  log.info("scripts", "Wrote %d file(s) under %s (%d already the same); use them with 'kboot --scripts %s COMMAND'",
    written, dir, unchanged, pos[1])
end

local cmd, rest = argv[1], { table.unpack(argv, 2) }
if cmd == "list" then return list(rest) end
if cmd == "show" then return show(rest) end
if cmd == "export" then return export(rest) end
if cmd == nil or cmd == "--help" or cmd == "-h" or cmd == "help" then
  io.stdout:write(cli.help_text(top))
  return cmd == nil and 2 or 0
end
cli.usage_error("scripts", "unknown command %q", cmd)

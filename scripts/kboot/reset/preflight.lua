-- `kboot reset`'s question and pre-flight check. kubeadm asks inside its preflight phase, so
-- `--skip-phases preflight` (or `reset phase cleanup-node`) wipes a node without asking; kboot asks
-- before any phase runs, whichever run, unless --force or a dry run. With no terminal to ask on it
-- refuses instead of reading an answer from a pipe (kubeadm reads one).
local kerror = require("kboot.error")

local M = {}

M.WARNING = "Changes made to this host by 'kboot init' or 'kboot join' (or kubeadm's) will be reverted."
M.QUESTION = "[reset] Are you sure you want to proceed? [y/N]: "

local function isatty(fd) return require("kboot.repl").isatty(fd) end

-- confirm(ctx [, io]) -> true | nil, kboot.error. io = { isatty = fn(fd), read = fn() -> line,
-- write = fn(s) } replaces the terminal in tests.
function M.confirm(ctx, term)
  if ctx.reset.force or ctx.dry_run then return true end
  term = term or {}
  local tty = term.isatty or isatty
  if not tty(0) then
    return nil, kerror.new("reset", "refusing to reset without a terminal to confirm on (standard input is not one): "
      .. "give --force (-f) to reset without asking")
  end
  ctx.log.warn("reset", "%s", M.WARNING)
  -- on stdout as kubeadm, unless that is not the terminal the answer comes from
  local out = tty(1) and io.stdout or io.stderr
  local write = term.write or function(s) out:write(s); out:flush() end
  local read = term.read or function() return io.stdin:read("l") end
  write(M.QUESTION)
  local answer = read()
  answer = answer and answer:match("^%s*(.-)%s*$"):lower()
  if answer == "y" or answer == "yes" then return true end
  return nil, kerror.new("reset", "won't proceed; the user didn't answer (Y|y) in order to continue")
end

-- The preflight phase: kubeadm's only reset check, that this runs as root (not in a --root
-- sandbox; --ignore-preflight-errors=IsPrivilegedUser or all makes it a warning).
function M.run(ctx)
  ctx.log.info("preflight", "Running pre-flight checks")
  if ctx.fs.root() ~= "/" then return true end
  local status = io.open("/proc/self/status")
  local text = status and status:read("a") or ""
  if status then status:close() end
  local uid = text:match("\nUid:%s+(%d+)")
  if uid == nil or uid == "0" then return true end
  local ignore = {}
  for _, n in ipairs(ctx.reset.ignorePreflightErrors or {}) do ignore[n:lower()] = true end
  local msg = "user is not running as root"
  if ignore.all or ignore.isprivilegeduser then
    ctx.log.warn("preflight", "IsPrivilegedUser: %s (ignored)", msg)
    return true
  end
  return nil, kerror.new("preflight", ("[ERROR IsPrivilegedUser]: %s; run kboot reset as root (sudo), or give --root DIR "
    .. "for a sandbox (--ignore-preflight-errors=IsPrivilegedUser makes this a warning)"):format(msg))
end

return M

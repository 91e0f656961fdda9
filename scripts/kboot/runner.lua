-- What every flow's command (scripts/init.lua, scripts/join.lua) does around its phases: the
-- `CMD phase NAME` form, --root, one kboot at a time on a node (the lock), the dry-run report,
-- and the commit that makes the run's files durable. A site script that runs a flow of its own
-- uses the same calls.
local cli = require("kboot.cli")
local log = require("kboot.log")
local fs = require("kboot.fs")
local phases = require("kboot.phases")

local M = {}

local LOCK = "/etc/kubernetes/.kboot.lock"
M.LOCK = LOCK

-- what to do about a path kboot cannot write: errno EACCES, EPERM, EROFS
local function privilege_hint(err)
  local c = type(err) == "table" and err.code
  if (c == 13 or c == 1) and fs.root() ~= "/" then return " (run kboot as root, or give --root a directory this user may write to)" end
  if c == 13 or c == 1 then return " (run kboot as root, or give --root DIR to work in a sandbox directory)" end
  if c == 30 then return " (the file system is read-only)" end
  return ""
end

-- lock() -> the held lock, or the command ends with one line that says what to do. The same one
-- for init, join, reset and certs: one kboot at a time on a node.
function M.lock()
  local lock, err = fs.lock(LOCK)
  if lock then return lock end
  if type(err) == "table" and err.code == 11 then -- EWOULDBLOCK: held
    local pid = tostring(err):match("%(pid (%d+)%)")
    cli.fail("another kboot%s is running on this node and holds %s: wait for it to finish, then run this again "
      .. "(a lock left by a kboot that was killed is free: there is nothing to remove)",
      pid and (" (pid " .. pid .. ")") or "", fs.path(LOCK))
  end
  cli.fail("cannot lock %s: %s%s", fs.path(LOCK), tostring(err), privilege_hint(err))
end

-- phase_argv(argv, cmd, flow, options) -> only (nil: the whole flow). Consumes `phase NAME`
-- (kubeadm's two-word `phase certs ca` and `phase certs all` too) from argv; `CMD phase` alone
-- prints the phase list. A name that is not a phase is a usage error before anything else.
function M.phase_argv(argv, cmd, flow, options)
  local list = phases.expand(flow.phases)
  if argv[1] ~= "phase" then
    -- `kboot init certs`: the phase word left out
    local w = argv[1]
    if w and w:sub(1, 1) ~= "-" and phases.names(list)[w:lower()] then
      cli.usage_error(cmd, "unexpected argument %q; to run that phase alone: kboot %s phase %s", w, cmd, w)
    end
    return nil
  end
  table.remove(argv, 1)
  local only = argv[1]
  if only == nil or only == "--help" or only == "-h" then
    io.stdout:write(cli.help_text({ name = cmd .. " phase", usage = ("kboot %s phase NAME [options]"):format(cmd),
      summary = ("Run one phase of kboot %s (or all children of a parent)."):format(cmd),
      commands = M.commands(flow, nil), options = options }))
    if only == nil then cli.exit(2, ("%s phase: no phase NAME given; the phases are listed above"):format(cmd)) end
    cli.exit(0)
  end
  if only:sub(1, 1) == "-" then cli.usage_error(cmd .. " phase", "give the phase NAME before the options") end
  table.remove(argv, 1)
  -- the next word is a child only when the parent has one of that name: `join phase etcd-join
  -- 10.0.0.1:6443` keeps its endpoint
  local child = argv[1]
  if child and child:sub(1, 1) ~= "-" and not only:find("/", 1, true)
     and (child == "all" or phases.select(list, { only = only .. "/" .. child })) then
    table.remove(argv, 1)
    if child ~= "all" then only = only .. "/" .. child end
  end
  local _, err = phases.select(list, { only = only })
  if err then cli.usage_error(cmd .. " phase", "%s", err) end
  return only
end

-- commands(flow, only) -> the function cli.help_text calls for the phase list
function M.commands(flow, only)
  local list = phases.expand(flow.phases)
  return function() return phases.help_lines(list, only, flow.parents) end
end

-- set_root(cmd, opts): --root DIR, checked (a usage error names it)
function M.set_root(cmd, opts)
  if not opts.root then return end
  local ok, err = fs.set_root(opts.root)
  if not ok then cli.usage_error(cmd, "--root %s: %s", opts.root, tostring(err)) end
end

-- config_result(parts, errs, warnings): the warnings logged; without parts, every problem on its
-- own line (coloured, or a JSON line, as the summary under it) and the command ends (exit 2: bad
-- input) before anything is written
function M.config_result(parts, errs, warnings)
  for _, w in ipairs(warnings or {}) do log.warn("config", "%s", w) end
  if parts then return end
  for _, e in ipairs(errs) do log.line("error", e) end
  cli.exit(2, ("invalid configuration (%d problem(s)); nothing was written"):format(#errs))
end

-- check_ignored(cmd, list, flags, path): every name of an ignorePreflightErrors list is a
-- preflight check or all (a typo would leave its check fatal while looking ignored); the usage
-- error names where the bad one came from: the flag (flags: its values) or the config's path
function M.check_ignored(cmd, list, flags, path)
  local named = false
  for _, n in ipairs(list or {}) do if n:lower() ~= "all" then named = true end end
  if not named then return end -- kboot.preflight loads when its phase runs, or here
  local preflight = require("kboot.preflight")
  local from_flag = {}
  for _, n in ipairs(flags or {}) do from_flag[n] = true end
  for _, n in ipairs(list) do
    if not preflight.known_check(n) then
      cli.usage_error(cmd, "unknown preflight check %q in %s; the checks are %s (and kubeadm's others), or all",
        n, from_flag[n] and "--ignore-preflight-errors" or path, table.concat(preflight.CHECKS, ", "))
    end
  end
end

-- start(ctx) -> lock | nil (dry run): one kboot at a time on a node, the lock beside what it
-- protects. Inside a kboot.fs batch: a new /etc/kubernetes is made durable by finish's commit,
-- not by an fsync of its own; the lock file needs no durability.
function M.start(ctx)
  if ctx.dry_run then return nil end
  fs.begin()
  local ok, err = fs.mkdir("/etc/kubernetes", 493)
  if not ok then
    fs.prune() -- a /etc made before /etc/kubernetes failed
    cli.fail("cannot create %s: %s%s", fs.path("/etc/kubernetes"), tostring(err), privilege_hint(err))
  end
  local lok, lock = pcall(M.lock)
  if not lok then
    fs.prune()
    error(lock, 0)
  end
  return lock
end

local function redact(data)
  data = data:gsub("%-%-%-%-%-BEGIN ([%u ]*)PRIVATE KEY%-%-%-%-%-.-%-%-%-%-%-END [%u ]*PRIVATE KEY%-%-%-%-%-\n?", "<private key>\n")
  data = data:gsub("(client%-key%-data:%s*)[%w+/=]+", "%1<private key>")
  return data
end

-- dry_run_report(cmd): every file that would have been written (keys hidden), to stdout; the API
-- objects were printed by kboot.kube's dry run as they were "sent"
function M.dry_run_report(cmd)
  local out = io.stdout
  for _, r in ipairs(fs.recorded()) do
    if r.op == "write" then
      out:write(("--- %s (mode %04o, %d bytes)\n"):format(r.path, r.mode or 0, #(r.data or "")))
      local d = redact(r.data or "")
      out:write(d, d:sub(-1) == "\n" and "" or "\n")
    elseif r.op == "mkdir" then
      out:write(("--- %s/ (directory, mode %04o)\n"):format(r.path, r.mode or 0))
    elseif r.op == "symlink" then
      out:write(("--- %s -> %s (symlink)\n"):format(r.path, r.target or "?"))
    elseif r.op == "remove" then
      out:write(("--- %s (removed)\n"):format(r.path))
    end
  end
  log.info("dry-run", "Nothing was written or sent; the files and objects above are what kboot %s would write", cmd)
end

-- release(lock): the lock file removed while still held, then let go
local function release(lock)
  if not lock then return end
  fs.remove(LOCK)
  lock:close()
end

-- finish(ctx, lock, cmd): the dry-run report, or the lock removed (while still held, so a
-- finished run leaves the tree as it found it) and the batch committed; then the API figures.
function M.finish(ctx, lock, cmd)
  if ctx.dry_run then M.dry_run_report(cmd) end
  release(lock)
  if not ctx.dry_run then
    local ok, err = fs.commit()
    if not ok then cli.fail("cannot write the files: %s", tostring(err)) end
  end
  if ctx.kube and ctx.kube.stats then
    local st = ctx.kube:stats()
    log.info(cmd, "API requests: %d over %d connection(s), %d retried", st.requests or 0, st.connects or 0, st.retries or 0)
  end
end

-- run(ctx, selected, flow, lock): the phases; a failure ends the command with its one line, the
-- lock released, what the phases before it finished committed (each phase is safe to re-run) and
-- the directories this run made that are still empty removed (the lock's /etc/kubernetes on a
-- fresh node: a run that fails early leaves the node as it was)
function M.run(ctx, selected, flow, lock)
  ctx.run_selected = selected
  local ok, failures = phases.run(ctx, selected, { connect = flow.connect })
  if ok then return end
  release(lock)
  if not ctx.dry_run then
    fs.prune()
    fs.commit()
  end
  M.summary(ctx, ctx.flow, "debug")
  cli.fail("%s", phases.error_line(failures[1]))
end

-- summary(ctx, cmd [, level]): the run's last line, "[init] 16 phases run, 14 skipped, in 0.91 s"
-- (info; a failed run gives it under -v, before its error line)
function M.summary(ctx, cmd, level)
  local line = phases.summary_line(ctx, ctx.run_selected)
  if line then log[level or "info"](cmd, "%s", line) end
end

return M

-- The generic phase runner (docs/api/phases.md): a flow (scripts/kboot/flows/*.lua) lists its phases
-- as data; this module expands that list, selects from it (--skip-phases, `phase NAME`, --offline),
-- gives the help of the whole list or one phase group, and runs the selection with kboot.fs batches,
-- the flow's connect before the first online phase, and either stop-at-first-failure or best effort.
-- It never exits: it returns true or nil and the failures, and the entry script prints them.
local M = {}

local function parent(name) return name:match("^([^/]+)/") end

-- expand(flow_list) -> flat list of phase entries. A flow entry is one of
--   { name=, help=, run = function(ctx) -> true | nil, err }
--   { name=, help=, component = "kboot.components.x" }     run through kboot.component.run
--   { name=, module = "kboot.online.x" }                     the module's phases() entry of that name
--   { phases = "kboot.certs" }                               every entry of the module's phases()
-- each with optional online = true (needs the API server), no_api, skip = function(ctx) -> bool, why.
-- Only `phases = ` entries load their module here: the others load it when they run (or show help).
function M.expand(flow_list)
  local out = {}
  for _, e in ipairs(flow_list) do
    if e.phases then
      for _, p in ipairs(require(e.phases).phases()) do
        local c = {}
        for k, v in pairs(p) do c[k] = v end
        c.online = e.online or p.online
        out[#out + 1] = c
      end
    else
      if type(e.name) ~= "string" then error("phases.expand: an entry without a name", 2) end
      out[#out + 1] = e
    end
  end
  return out
end

-- The loaded module's phase entry of a `module = ` flow entry (raises when the module fails to
-- load or lacks the phase: the runner turns that into the phase's error line).
local function module_phase(e)
  for _, p in ipairs(require(e.module).phases()) do
    if p.name == e.name then return p end
  end
  error(("%s has no phase %q"):format(e.module, e.name), 0)
end

local function help_of(e)
  if e.help or not e.module then return e.help or "" end
  -- help shows even when a module is broken: the reason stands in the phase's line
  local ok, p = pcall(module_phase, e)
  if ok then return p.help or "" end
  return ("(cannot load %s: %s)"):format(e.module, tostring(p):match("^[^\n]*"))
end

-- names(list) -> set, ordered list: every phase and every parent name a user may give.
function M.names(list)
  local set, order = {}, {}
  local function add(n) if not set[n] then set[n] = true; order[#order + 1] = n end end
  for _, p in ipairs(list) do
    local par = parent(p.name)
    if par then add(par) end
    add(p.name)
  end
  return set, order
end

-- Does selector `sel` (a phase or parent name, any case) cover phase `name`?
local function covers(sel, name)
  sel = sel:lower()
  return sel == name or sel == parent(name) or sel == "all"
end

-- The top-level names of the online phases: what --offline skips.
function M.online_names(list)
  local out, seen = {}, {}
  for _, p in ipairs(list) do
    local top = parent(p.name) or p.name
    if p.online and not seen[top] then seen[top] = true; out[#out + 1] = top end
  end
  return out
end

-- select(list, { only = "certs" | "certs/ca", skip = {...}, offline = bool }) -> selected | nil, why
-- (why: a usage error naming the known phases). selected.total: how many phases `only` covers
-- before the skips (the run's summary counts the others as skipped).
function M.select(list, o)
  o = o or {}
  local known, order = M.names(list)
  local skip = { table.unpack(o.skip or {}) }
  for _, n in ipairs(skip) do
    if n:lower() ~= "all" and not known[n:lower()] then
      return nil, ("unknown phase %q; phases are: %s"):format(n, table.concat(order, ", "))
    end
  end
  if o.only and o.only:lower() ~= "all" and not known[o.only:lower()] then
    return nil, ("unknown phase %q; phases are: %s"):format(o.only, table.concat(order, ", "))
  end
  if o.offline then
    for _, n in ipairs(M.online_names(list)) do skip[#skip + 1] = n end
  end
  local out, total = {}, 0
  for _, p in ipairs(list) do
    local keep = o.only == nil or covers(o.only, p.name)
    if keep then total = total + 1 end
    for _, s in ipairs(skip) do
      if s:lower() ~= "all" and covers(s, p.name) then keep = false end
    end
    if keep then out[#out + 1] = p end
  end
  if o.only and #out == 0 then
    return nil, ("phase %q is not part of this run (skipped)"):format(o.only)
  end
  out.total = total
  return out
end

-- help_lines(list, only, parents) -> { {name, help}, ... } for kboot.cli's help_text: the whole list
-- (parents as headings, children indented), or only the phases `only` covers. parents: the flow's
-- { [parent] = help }.
function M.help_lines(list, only, parents)
  parents = parents or {}
  local out, seen = {}, {}
  for _, p in ipairs(list) do
    if only == nil or covers(only, p.name) then
      local par = parent(p.name)
      if par and not seen[par] then
        seen[par] = true
        out[#out + 1] = { par, parents[par] or "" }
      end
      out[#out + 1] = { (par and "  " or "") .. p.name, help_of(p) }
    end
  end
  return out
end

-- summary(list, name, parents) -> the one help line of a phase or parent
function M.summary(list, name, parents)
  name = name:lower()
  if parents and parents[name] then return parents[name] end
  for _, p in ipairs(list) do
    if p.name == name then return help_of(p) end
  end
  return ""
end

---------------------------------------------------------------------------------------------------
-- Running

-- The function that runs entry e: its own run, its component through kboot.component, or its
-- module's phase. Module loading happens here, inside the runner's pcall.
local function runner_of(e)
  if e.run then return e.run, e.skip end
  if e.component then
    local m = require(e.component)
    local function skip(ctx)
      if e.skip then
        local s, why = e.skip(ctx)
        if s then return s, why end
      end
      if m.skip then return m.skip(ctx) end
      return false
    end
    return function(ctx) return require("kboot.component").run(ctx, m) end, skip
  end
  local p = module_phase(e)
  return p.run, p.skip or e.skip, p.no_api
end

-- The line of a failure: a kboot.error (or anything with __tostring) is its message; a raised Lua
-- error (a bug, a module that fails to load) its first line, the rest with -v.
local function message(ctx, e, raised)
  local mt = type(e) == "table" and getmetatable(e)
  local msg
  if mt and mt.__tostring then msg = tostring(e)
  else msg = tostring(e) end
  if raised and type(e) ~= "table" and not (ctx.log.level and ctx.log.level() >= 3) then
    msg = msg:match("^[^\n]*") .. (msg:find("\n") and " (run with -v for details)" or "")
  end
  return msg
end

-- The offline phases' files go out as one group commit (kboot.fs batch: one sync for all instead of
-- two per file): a batch opens at the first offline phase of a run of them and is committed before
-- an online phase (the API server and kubelet must see the files), before reporting a failed
-- phase, and at the end. ctx.fs without batches (a test's fake) works too.
local function batcher(ctx)
  local fs, open = ctx.fs, false
  local can = type(fs) == "table" and type(fs.begin) == "function" and type(fs.commit) == "function"
  local b = {}
  function b.begin()
    if can and not open then fs.begin(); open = true end
  end
  -- commit() -> true | nil, err. Flush, not only close our level: a caller (init.lua) may hold
  -- an outer batch, and the files must land before an online phase whatever the nesting.
  function b.commit()
    if not open then return true end
    open = false
    local ok, err = true, nil
    if type(fs.flush) == "function" then ok, err = fs.flush() end
    local cok, cerr = fs.commit()
    if not ok then return nil, err end
    return cok, cerr
  end
  return b
end

-- run(ctx, selected [, { connect = function(ctx) -> true | nil, err, best_effort = bool }])
--   -> true | nil, failures
-- failures: { { phase = name, msg = "one line", err = the error value }, ... } in run order. By
-- default the run stops at the first failure; best_effort runs every phase and collects them all
-- (reset: its flow lists the phases in the order it wants). ctx.phase_enabled(name) tells a phase
-- whether another one runs in this selection.
function M.run(ctx, selected, o)
  o = o or {}
  local enabled = {}
  for _, p in ipairs(selected) do enabled[p.name] = true end
  ctx.phase_enabled = function(name) return enabled[name] == true end
  local batch = batcher(ctx)
  local connect_failure

  -- attempt(p) -> true | "skipped" | nil, msg, err
  local function attempt(p)
    local ok, run, skip, no_api = pcall(runner_of, p)
    if not ok then return nil, message(ctx, run, true), run end
    if skip then
      local sok, s, why = pcall(skip, ctx)
      if not sok then return nil, message(ctx, s, true), s end
      if s then
        ctx.log.info(p.name, "skipped: %s", why)
        return "skipped"
      end
    end
    if p.online then
      local cok, cerr = batch.commit()
      if not cok then return nil, "cannot write the files of the phases before it: " .. tostring(cerr), cerr end
    else
      batch.begin()
    end
    if p.online and not (no_api or p.no_api) and not ctx.kube and o.connect then
      -- once per run: a failed connect fails every phase that needs the API server the same way
      if not connect_failure then
        local cok, c, cerr = pcall(o.connect, ctx)
        if not cok then connect_failure = { message(ctx, c, true), c }
        elseif not c then connect_failure = { message(ctx, cerr), cerr } end
      end
      if connect_failure then return nil, connect_failure[1], connect_failure[2] end
    end
    local rok, r, err = pcall(run, ctx)
    if not rok then return nil, message(ctx, r, true), r end
    if r == nil and err ~= nil then return nil, message(ctx, err), err end
    return true
  end

  -- what ran, for the summary line (kboot.runner): kept on ctx over the runs of one command
  local now = require("kboot.time").now
  local stats = ctx.run_stats or { run = 0, skipped = 0, failed = 0, started = now() }
  ctx.run_stats = stats
  local failures, last = {}, nil
  local function failed(name, msg, e)
    -- the files of the phases before it land even when this one failed
    local ok, err = batch.commit()
    if not ok then msg = ("%s (and the files of the phases before it were not written: %s)"):format(msg, tostring(err)) end
    failures[#failures + 1] = { phase = name, msg = msg, err = e }
  end
  for _, p in ipairs(selected) do
    local t0 = now()
    local r, msg, e = attempt(p)
    if r == nil then
      stats.failed = stats.failed + 1
      failed(p.name, msg, e)
      if not o.best_effort then return nil, failures end
    elseif r == true then
      stats.run = stats.run + 1
      if ctx.log.debug then ctx.log.debug(p.name, "done in %s", M.elapsed(now() - t0)) end
      last = p.name
    else
      stats.skipped = stats.skipped + 1
    end
  end
  local ok, err = batch.commit()
  if not ok then failed(last or ctx.flow or "run", "cannot write the files of the phases: " .. tostring(err), err) end
  if #failures > 0 then return nil, failures end
  return true
end

-- elapsed(seconds) -> "12 ms", "1.43 s"
function M.elapsed(s)
  if s < 1 then return ("%d ms"):format(math.floor(s * 1000 + 0.5)) end
  return ("%.2f s"):format(s)
end

-- summary_line(ctx, selected) -> "N phases run, M skipped, in T" (nil before any phases.run):
-- skipped counts the phases a skip rule passed over and those --skip-phases or --offline left
-- out of the selection (selected.total)
function M.summary_line(ctx, selected)
  local st = ctx.run_stats
  if not st then return nil end
  local skipped = st.skipped + math.max(0, (selected and selected.total or 0) - (selected and #selected or 0))
  local line = ("%d phase%s run, %d skipped"):format(st.run, st.run == 1 and "" or "s", skipped)
  if st.failed > 0 then line = line .. (", %d failed"):format(st.failed) end
  return ("%s, in %s"):format(line, M.elapsed(require("kboot.time").now() - st.started))
end

-- error_line(failure) -> "error execution phase NAME: msg", kubeadm's wording
function M.error_line(f)
  return ("error execution phase %s: %s"):format(f.phase, f.msg)
end

return M

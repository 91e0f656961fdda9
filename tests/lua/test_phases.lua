-- kboot.phases, the generic runner: expansion of a flow list, selection (only / skip / --offline,
-- parents, unknown names), help of the whole list or one group, and run: the order, skip
-- functions, one connect before the first online phase, the failure list it returns (stop at the
-- first, or best effort), raised errors and kboot.error values turned into one line each.
local lu = require("luaunit")
local phases = require("kboot.phases")
local kerror = require("kboot.error")

local function quiet_log()
  local lines = {}
  return { info = function(tag, fmt, ...) lines[#lines + 1] = tag .. ": " .. fmt:format(...) end,
           warn = function() end, level = function() return 1 end, lines = lines }
end

-- a flow whose phases record their names in `ran`
local function flow(ran, over)
  over = over or {}
  local function rec(name)
    return function()
      ran[#ran + 1] = name
      if over[name] then return over[name]() end
      return true
    end
  end
  return {
    { name = "preflight", help = "Run checks", run = rec("preflight") },
    { name = "certs/ca", help = "CA", run = rec("certs/ca") },
    { name = "certs/apiserver", help = "apiserver cert", run = rec("certs/apiserver") },
    { name = "wait", help = "Wait", online = true, run = rec("wait") },
    { name = "addon/dns", help = "DNS", online = true, run = rec("addon/dns"),
      skip = function() return true, "dns.disabled is set" end },
    { name = "addon/proxy", help = "Proxy", online = true, run = rec("addon/proxy") },
  }
end

local function names(list) local o = {} for _, p in ipairs(list) do o[#o + 1] = p.name end return o end

TestSelect = {}
function TestSelect:test_only_skip_parents_offline()
  local l = flow({})
  lu.assertEquals(names(assert(phases.select(l, { only = "certs" }))), { "certs/ca", "certs/apiserver" })
  lu.assertEquals(names(assert(phases.select(l, { only = "certs/CA" }))), { "certs/ca" })
  lu.assertEquals(names(assert(phases.select(l, { skip = { "certs", "addon/proxy" } }))), { "preflight", "wait", "addon/dns" })
  lu.assertEquals(names(assert(phases.select(l, { offline = true }))), { "preflight", "certs/ca", "certs/apiserver" })
  lu.assertEquals(phases.online_names(l), { "wait", "addon" })
end
function TestSelect:test_unknown_names_are_usage_errors()
  local l = flow({})
  local s, why = phases.select(l, { skip = { "cert" } })
  lu.assertNil(s)
  lu.assertStrContains(why, 'unknown phase "cert"')
  lu.assertStrContains(why, "certs/apiserver") -- the known names are listed
  s, why = phases.select(l, { only = "nope" })
  lu.assertNil(s)
  lu.assertStrContains(why, 'unknown phase "nope"')
  s, why = phases.select(l, { only = "wait", offline = true })
  lu.assertNil(s)
  lu.assertStrContains(why, "skipped")
end
function TestSelect:test_help_of_list_and_group()
  local l = flow({})
  local all = phases.help_lines(l, nil, { certs = "Certificate generation" })
  lu.assertEquals(all[2], { "certs", "Certificate generation" })
  lu.assertEquals(all[3], { "  certs/ca", "CA" })
  lu.assertEquals(#all, 8) -- 6 phases and 2 parents
  local g = phases.help_lines(l, "certs", { certs = "Certificate generation" })
  lu.assertEquals(g, { { "certs", "Certificate generation" }, { "  certs/ca", "CA" }, { "  certs/apiserver", "apiserver cert" } })
  lu.assertEquals(phases.summary(l, "certs/apiserver"), "apiserver cert")
end
function TestSelect:test_expand_misuse_raises()
  lu.assertErrorMsgContains("without a name", phases.expand, { { help = "x" } })
end

TestRun = {}
function TestRun:test_order_skip_and_one_connect()
  local ran, connects = {}, 0
  local log = quiet_log()
  local ctx = { log = log, fs = {} }
  local ok, f = phases.run(ctx, flow(ran), { connect = function(c) connects = connects + 1 c.kube = {} return true end })
  lu.assertTrue(ok, f)
  lu.assertEquals(ran, { "preflight", "certs/ca", "certs/apiserver", "wait", "addon/proxy" })
  lu.assertEquals(connects, 1)
  lu.assertStrContains(table.concat(log.lines, "\n"), "addon/dns: skipped: dns.disabled is set")
  lu.assertTrue(ctx.phase_enabled("wait"))
  lu.assertFalse(ctx.phase_enabled("nope"))
end
function TestRun:test_first_failure_stops_and_is_returned()
  local ran = {}
  local ok, f = phases.run({ log = quiet_log(), fs = {} }, flow(ran, {
    ["certs/ca"] = function() return nil, kerror.new("pki", "ca.key is not a private key") end }))
  lu.assertNil(ok)
  lu.assertEquals(ran, { "preflight", "certs/ca" })
  lu.assertEquals(#f, 1)
  lu.assertEquals(phases.error_line(f[1]), "error execution phase certs/ca: ca.key is not a private key")
  lu.assertTrue(kerror.is(f[1].err))
end
function TestRun:test_best_effort_collects_every_failure()
  local ran = {}
  local ok, f = phases.run({ log = quiet_log(), fs = {}, kube = {} }, flow(ran, {
    preflight = function() error("boom\nstack", 0) end,
    wait = function() return nil, kerror.new("wait", "timed out") end }), { best_effort = true })
  lu.assertNil(ok)
  lu.assertEquals(ran, { "preflight", "certs/ca", "certs/apiserver", "wait", "addon/proxy" })
  lu.assertEquals(#f, 2)
  lu.assertEquals(f[1].phase, "preflight")
  -- a raised error: its first line, the rest with -v
  lu.assertEquals(f[1].msg, "boom (run with -v for details)")
  lu.assertEquals(f[2].msg, "timed out")
end
function TestRun:test_a_failed_connect_fails_each_online_phase_once_tried()
  local ran, connects = {}, 0
  local ok, f = phases.run({ log = quiet_log(), fs = {} }, flow(ran), { best_effort = true,
    connect = function() connects = connects + 1 return nil, kerror.new("connect", "admin.conf: no such file") end })
  lu.assertNil(ok)
  lu.assertEquals(connects, 1)
  lu.assertEquals(ran, { "preflight", "certs/ca", "certs/apiserver" })
  lu.assertEquals(names({ { name = f[1].phase }, { name = f[2].phase } }), { "wait", "addon/proxy" })
  lu.assertEquals(f[2].msg, "admin.conf: no such file")
end
function TestRun:test_a_module_that_fails_to_load_is_the_phase_error()
  package.preload["kboot.test_broken"] = function() error("kboot/test_broken.lua:3: syntax", 0) end
  local ok, f = phases.run({ log = quiet_log(), fs = {} },
    phases.expand({ { name = "broken", component = "kboot.test_broken" } }))
  lu.assertNil(ok)
  lu.assertEquals(phases.error_line(f[1]), "error execution phase broken: kboot/test_broken.lua:3: syntax")
end

TestErrors = {}

function TestErrors:test_wrap_keeps_an_error_and_makes_one_of_anything_else()
  local kerror = require("kboot.error")
  local e = kerror.new("get", "get Node n1: 403 Forbidden: no", { status = 403 })
  lu.assertIs(kerror.wrap("mark-control-plane", e), e)
  local w = kerror.wrap("bootstrap-token", "bootstrapTokens[0]: bad usage")
  lu.assertTrue(kerror.is(w))
  lu.assertEquals(w.op, "bootstrap-token")
  lu.assertEquals(tostring(w), "bootstrapTokens[0]: bad usage")
  lu.assertEquals(tostring(kerror.wrap("x", { msg = "a plain table" })), "a plain table")
  lu.assertEquals(tostring(kerror.wrap("x", 42)), "42")
  lu.assertFalse(kerror.is("a string"))
  lu.assertFalse(kerror.is({ msg = "look-alike" }))
  lu.assertErrorMsgContains("bad argument #1", kerror.wrap, nil, "x")
end

os.exit(lu.LuaUnit.run())

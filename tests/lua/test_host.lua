-- The kboot host: built-in scripts, files, overrides, exit codes, option parsing.
local lu = require("luaunit")
local t = require("testlib")

TestHost = {}
function TestHost:tearDown() t.cleanup() end

function TestHost:test_version_and_help()
  local ok, out = t.kboot("--version")
  lu.assertTrue(ok)
  lu.assertStrMatches(out, "kboot %d+%.%d+%.%d+ %(Lua 5%.4.*\n")
  ok, out = t.kboot("--help")
  lu.assertTrue(ok)
  lu.assertStrContains(out, "Built-in commands:")
  lu.assertStrContains(out, "init ")
  lu.assertStrContains(out, "token ")
end

function TestHost:test_no_args_is_usage_error()
  local ok, _, code = t.kboot("")
  lu.assertFalse(ok)
  lu.assertEquals(code, 2)
end

function TestHost:test_unknown_command_and_option()
  local ok, out, code = t.kboot("no-such-command")
  lu.assertFalse(ok)
  lu.assertEquals(code, 2)
  lu.assertStrContains(out, "unknown command 'no-such-command'")
  ok, out, code = t.kboot("--frobnicate")
  lu.assertEquals(code, 2)
  lu.assertStrContains(out, "unknown option '--frobnicate'")
end

function TestHost:test_file_script_gets_args_and_exit_code()
  local d = t.tmpdir()
  t.write(d .. "/s.lua", [[
    local a, b = ...
    print(arg[0]:match("s%.lua$") and "name-ok", a, b, #arg)
    return 7
  ]])
  local ok, out, code = t.kboot(t.q(d .. "/s.lua") .. " one two")
  lu.assertFalse(ok)
  lu.assertEquals(code, 7)
  lu.assertEquals(out, "name-ok\tone\ttwo\t2\n")
end

function TestHost:test_uncaught_error_is_one_line_traceback_with_v()
  local d = t.tmpdir()
  t.write(d .. "/e.lua", "local function f() error('boom') end f()\n")
  local ok, out, code = t.kboot(t.q(d .. "/e.lua"))
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "boom")
  lu.assertNotStrContains(out, "traceback")
  ok, out, code = t.kboot("-v " .. t.q(d .. "/e.lua"))
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "stack traceback")
end

function TestHost:test_syntax_error_in_file()
  local d = t.tmpdir()
  t.write(d .. "/bad.lua", "local x = = 1\n")
  local ok, out, code = t.kboot(t.q(d .. "/bad.lua"))
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "bad.lua:1:")
end

function TestHost:test_override_dir_replaces_module_and_script()
  local d = t.tmpdir()
  t.must("mkdir -p " .. t.q(d .. "/kboot"))
  t.write(d .. "/kboot/cli.lua", "return { overridden = true }\n")
  t.write(d .. "/demo.lua", "print('site demo', require('kboot.cli').overridden)\n")
  local ok, out = t.kboot("--scripts " .. t.q(d) .. " demo")
  lu.assertTrue(ok, out)
  lu.assertEquals(out, "site demo\ttrue\n")
  ok, out = t.sh("KBOOT_SCRIPTS=" .. t.q(d) .. " " .. t.q(t.bin) .. " demo")
  lu.assertEquals(out, "site demo\ttrue\n")
end

function TestHost:test_modules_preloaded()
  local d = t.tmpdir()
  t.write(d .. "/m.lua", [[
    for _, m in ipairs{"kboot.log","kboot.fs","kboot.pki","kboot.crypto","kboot.yaml",
                       "kboot.http","kboot.json","cjson","cjson.safe","kboot.error","kboot.cli"} do
      assert(type(require(m)) == "table", m)
    end
    print(require("kboot.json").encode({a = 1}))
  ]])
  local ok, out = t.kboot(t.q(d .. "/m.lua"))
  lu.assertTrue(ok, out)
  lu.assertEquals(out, '{"a":1}\n')
end

TestCli = {}
local cli = require("kboot.cli")
local spec = { name = "x", options = {
  { "dry-run" }, { "config", arg = "FILE" }, { "skip-phases", arg = "LIST", list = true },
  { "ttl", arg = "D", check = function(v) return v:match("^%d+h$") ~= nil, "want Nh" end },
} }

local function usage_err(argv)
  local ok, e = pcall(cli.parse, argv, spec)
  lu.assertFalse(ok)
  lu.assertEquals(e.exit, 2)
  return e.msg
end

function TestCli:test_forms()
  local o, p = cli.parse({ "--dry-run", "--config=a.yaml", "--skip-phases", "a,b", "--skip-phases=c", "p1", "--", "--p2" }, spec)
  lu.assertTrue(o.dry_run)
  lu.assertEquals(o.config, "a.yaml")
  lu.assertEquals(o.skip_phases, { "a", "b", "c" })
  lu.assertEquals(p, { "p1", "--p2" })
  lu.assertTrue(o._given["config"])
  lu.assertNil(o._given["ttl"])
end

function TestCli:test_errors()
  lu.assertStrContains(usage_err({ "--nope" }), "unknown option --nope")
  lu.assertStrContains(usage_err({ "--config" }), "needs a value")
  lu.assertStrContains(usage_err({ "--dry-run=yes" }), "takes no value")
  lu.assertStrContains(usage_err({ "--ttl", "5m" }), "want Nh")
end

os.exit(lu.LuaUnit.run("-v"))

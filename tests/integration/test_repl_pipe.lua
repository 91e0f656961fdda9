-- `kboot repl` with stdin not a terminal: lines are read silently and evaluated like at the
-- prompt, results on stdout, errors on stderr; at end of input exit 0, or 1 when a chunk failed.
local lu = require("luaunit")
local t = require("testlib")

-- When this test runs under valgrind, so does the kboot it starts (errors exit 99).
local under_valgrind = (os.getenv("LD_PRELOAD") or ""):find("vgpreload", 1, true) ~= nil
local BIN = under_valgrind and ("env -u LD_PRELOAD valgrind --quiet --error-exitcode=99 --leak-check=full "
  .. "--errors-for-leak-kinds=definite,indirect " .. t.q(t.bin)) or t.q(t.bin)

-- run(input [, args]) -> stdout, stderr, exit code; HOME and KBOOT_HISTORY point into a temp dir
local last_dir
local function run(input, args)
  local d = t.tmpdir()
  last_dir = d
  t.write(d .. "/in", input)
  local cmd = ("cd %s && HOME=%s KBOOT_HISTORY=%s %s repl %s < in > out 2> err"):format(
    t.q(d), t.q(d), t.q(d .. "/hist"), BIN, args or "")
  local _, _, code = t.sh(cmd)
  return t.read(d .. "/out"), t.read(d .. "/err"), code
end

TestReplPipe = {}
function TestReplPipe:tearDown() t.cleanup() end

function TestReplPipe:test_expression_printed_without_return()
  local out, err, code = run("return 1+1\n1+2\n'x' .. 1\n")
  lu.assertEquals(code, 0)
  lu.assertEquals(err, "")
  lu.assertEquals(out, '2\n3\n"x1"\n')
end

function TestReplPipe:test_statements_and_globals_persist()
  local out, err, code = run("x = 20\nlocal y = 1\nx + 1\ny\nprint('hi', x)\n")
  lu.assertEquals(code, 0)
  lu.assertEquals(err, "")
  -- a local lives only in its own chunk, as in lua.c
  lu.assertEquals(out, "21\nnil\nhi\t20\n")
end

function TestReplPipe:test_multiline_function_definition()
  local out, err = run("function twice(n)\n  local r = n * 2\n  return r\nend\ntwice(21)\n"
    .. "t = {\n  a = 1,\n  'b',\n}\nt\n{\n1,\n2 }\n")
  lu.assertEquals(err, "")
  lu.assertEquals(out, '42\n{ "b", a = 1 }\n{ 1, 2 }\n')
end

function TestReplPipe:test_error_then_continue()
  local out, err, code = run("error('boom')\nnil + 1\nx = = 1\n'still here'\n")
  lu.assertEquals(code, 1) -- the lines that failed make the run fail, the others still ran
  lu.assertEquals(out, '"still here"\n')
  lu.assertEquals(err, "stdin:1: boom\nstdin:1: attempt to perform arithmetic on a nil value\n"
    .. "stdin:1: unexpected symbol near '='\n")
end

function TestReplPipe:test_verbose_adds_a_traceback_of_the_users_code()
  local out, err = run("function inner() error('deep') end\nfunction outer() inner() end\nouter()\n1\n", "-v")
  lu.assertEquals(out, "1\n")
  lu.assertStrContains(err, "stdin:1: deep\nstack traceback:\n")
  lu.assertStrContains(err, "in function 'inner'")
  lu.assertStrContains(err, "in function 'outer'")
  lu.assertNotStrContains(err, "repl.lua") -- the REPL's own frames are cut
  _, err = run("error('x')\n")
  lu.assertNotStrContains(err, "traceback")
end

function TestReplPipe:test_output_interleaves_in_order()
  local d = t.tmpdir()
  t.write(d .. "/in", "print('a')\nerror('b', 0)\n'c'\nlocal _ = io.stderr:write('d\\n')\n5\n")
  local _, out, code = t.sh(("%s repl < %s 2>&1"):format(BIN, t.q(d .. "/in")))
  lu.assertEquals(out, 'a\nb\n"c"\nd\n5\n')
  lu.assertEquals(code, 1)
end

function TestReplPipe:test_results_pretty_printed()
  local out, err = run([[
return 1, "two", nil
{ b = { 1, 2 }, a = "x\ny" }
nil
]] .. "local t = {}; t.me = t; return t\n")
  lu.assertEquals(err, "")
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  lu.assertEquals(lines[1], '1\t"two"\tnil')
  lu.assertEquals(lines[2], '{ a = "x\\ny", b = { 1, 2 } }')
  lu.assertEquals(lines[3], "nil")
  lu.assertStrMatches(lines[4], "{ me = <cycle: table: 0x%x+> }")
end

function TestReplPipe:test_error_objects_shown_via_tostring()
  local out, err = run([[
E = require("kboot.error")
return nil, E.new("pki.load", "ca.crt: permission denied")
error(E.new("http.get", "connection refused"))
error({ code = 7 })
error()
]])
  -- nil, err (the API's failure, a kboot error) is shown as the error it is
  lu.assertEquals(out, "")
  lu.assertEquals(err, "ca.crt: permission denied\nconnection refused\n{ code = 7 }\n(error object is a nil value)\n")
  -- any other pair of values is a result
  out, err = run("return nil, 'just a string'\n")
  lu.assertEquals(out, 'nil\t"just a string"\n')
end

function TestReplPipe:test_modules_are_globals()
  local out, err = run([[
return type(pki), type(crypto), type(yaml), type(json), type(fs), type(http), type(log), type(cli), type(pretty)
json.encode{}
json.encode({ a = 1 })
log.info("repl-test", "hello %d", 5)
pretty.format({ 1 }, { width = 0 })
crypto.hex("A")
]])
  lu.assertEquals(out, table.concat({
    '"table"\t"table"\t"table"\t"table"\t"table"\t"table"\t"table"\t"table"\t"table"',
    '"{}"', '"{\\"a\\":1}"', '"{\\n  1\\n}"', '"41"', "" }, "\n"))
  lu.assertStrContains(err, "[repl-test] hello 5")
  -- a module missing from this build (kboot.kubeconfig may not exist yet) does not break it
  out = run("kubeconfig == nil or type(kubeconfig) == 'table'\n")
  lu.assertEquals(out, "true\n")
end

function TestReplPipe:test_exit_code_at_eof_even_mid_chunk()
  local out, err, code = run("")
  lu.assertEquals({ out, err, code }, { "", "", 0 })
  out, err, code = run("1\n")
  lu.assertEquals({ out, err, code }, { "1\n", "", 0 })
  out, err, code = run("function f()\n  return 1\n")
  lu.assertEquals(code, 1) -- an unfinished chunk failed to compile
  lu.assertEquals(out, "")
  lu.assertEquals(err, "stdin:2: 'end' expected (to close 'function' at line 1) near <eof>\n")
  _, _, code = run("os.exit(3)\n")
  lu.assertEquals(code, 3)
end

function TestReplPipe:test_no_history_without_terminal()
  run("1\n2\n")
  lu.assertEquals(t.must("ls -A " .. t.q(last_dir)), "err\nin\nout\n")
end

function TestReplPipe:test_file_runs_first()
  local d = t.tmpdir()
  t.write(d .. "/setup.lua", "local a, b = ...\nGREETING = a .. '-' .. b\n")
  local out, err = run("GREETING\n", t.q(d .. "/setup.lua") .. " x y")
  lu.assertEquals(err, "")
  lu.assertEquals(out, '"x-y"\n')
  -- a broken file is reported and the prompt still starts
  t.write(d .. "/bad.lua", "error('setup failed', 0)\n")
  out, err = run("1\n", t.q(d .. "/bad.lua"))
  lu.assertEquals(err, "setup failed\n")
  lu.assertEquals(out, "1\n")
  out, err = run("1\n", t.q(d .. "/missing.lua"))
  lu.assertStrContains(err, "cannot open " .. d .. "/missing.lua")
end

function TestReplPipe:test_completion_function()
  local out, err = run([[
repl.complete("string.fo", "")
repl.complete("pr", "")
repl.complete("whi", "")
s = "abc"; T = { a = { bcd = 1, bce = 2, [1] = 0 } }
repl.complete("s:up", "")
repl.complete("T.a.bc", "")
repl.complete("T.a:b", "")
Obj = setmetatable({}, { __index = { method = print, field = 1 } })
repl.complete("Obj:", "")
repl.complete("Obj.f", "")
repl.complete("nosuch.x", "")
repl.complete("T.a.bcd.x", "")
repl.complete("string.fo", 'x = "')
]])
  lu.assertEquals(err, "")
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  lu.assertEquals(lines, {
    '{ "string.format" }',
    '{ "preflight", "pretty", "print", "probe" }',
    '{ "while" }',
    '{ "s:upper" }',
    '{ "T.a.bcd", "T.a.bce" }',
    "{}", -- fields that are not functions are no methods
    '{ "Obj:method" }',
    '{ "Obj.field" }',
    "{}", "{}", "{}",
  })
end

function TestReplPipe:test_every_module_and_the_kboot_table()
  local out, err = run([[
return type(kube), type(net), type(versions), type(tokens), type(certs_table), type(kubeconfigs), type(console)
kboot.kube == kube, kboot.components.etcd == require("kboot.components.etcd"), kboot.online.wait_control_plane ~= nil
error == _G.error and type(kboot.error.new)
type(nodes), type(connect), type(etcd.members), type(help), certs == kboot.console.certs, type(kboot.certs.ensure)
kboot.examples
]])
  lu.assertEquals(err, "")
  lu.assertEquals(out, table.concat({
    '"table"\t"table"\t"table"\t"table"\t"table"\t"table"\t"table"',
    "true\ttrue\ttrue",
    '"function"', -- kboot.error does not shadow Lua's error
    '"function"\t"function"\t"function"\t"function"\ttrue\t"function"',
    "nil", -- examples are programs, not loaded
    "" }, "\n"))
end

function TestReplPipe:test_eval_option()
  local out, err, code = run("this is not read\n", "-e '6*7'")
  lu.assertEquals({ out, err, code }, { "42\n", "", 0 })
  out, err, code = run("", "-e 'error(\"boom\", 0)'")
  lu.assertEquals({ out, err, code }, { "", "boom\n", 1 })
  out, err, code = run("", "-e 'return nil, kboot.error.new(\"x\", \"it failed\")'")
  lu.assertEquals({ out, err, code }, { "", "it failed\n", 1 })
  out, err, code = run("", "-e 'for i = 1, 2 do'")
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "(the expression is incomplete)")
  -- a FILE runs first
  local d = t.tmpdir()
  t.write(d .. "/f.lua", "X = 5\n")
  out, err, code = run("", t.q(d .. "/f.lua") .. " -e 'X + 1'")
  lu.assertEquals({ out, err, code }, { "6\n", "", 0 })
end

function TestReplPipe:test_root_and_kubeconfig_options()
  local d = t.tmpdir()
  local out, err, code = run("fs.root()\nkboot.console.state.spec\n", "--root " .. t.q(d) .. " --kubeconfig /x/y.conf")
  lu.assertEquals(err, "")
  lu.assertEquals(code, 0)
  lu.assertEquals(out, ('%q\n"/x/y.conf"\n'):format(d))
  _, err, code = run("", "--root " .. t.q(d .. "/missing"))
  lu.assertEquals(code, 2)
  lu.assertStrContains(err, "repl: --root " .. d .. "/missing: ")
  -- connect() names the kubeconfig it could not find
  out, err, code = run("connect()\n", "--root " .. t.q(d))
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "no kubeconfig found (tried " .. d .. "/etc/kubernetes/admin.conf")
end

function TestReplPipe:test_rows_printed_as_tables()
  local out, err = run([[
{ { name = "b", port = 2380 }, { name = "a", port = 2379, learner = true } }
rows.rows({ { x = "1" } }, { { "x", title = "THE-X" } })
{ { 1 }, { 2 } }
]])
  lu.assertEquals(err, "")
  lu.assertEquals(out, "NAME  LEARNER  PORT\nb              2380\na     yes      2379\nTHE-X\n1\n{ { 1 }, { 2 } }\n")
  lu.assertNil(out:find("\27", 1, true))
end

function TestReplPipe:test_help_prints_the_reference()
  local out, err, code = run('help("kube.get")\nhelp()\nhelp(pki.load_cert)\nhelp(42)\n')
  lu.assertEquals(code, 1) -- help(42) is misuse
  lu.assertStrContains(out, "k:get(api_version, kind, ns_or_nil, name)\n  object, or nil, err")
  lu.assertStrContains(out, "\nConsole helpers (kboot.console, docs/api/console.md):\n")
  lu.assertStrContains(out, "pki.load_cert(pem)\n  the first certificate")
  lu.assertStrContains(err, "help: a function, a module, or a name")
end

function TestReplPipe:test_kubeconfigs_print_without_their_key()
  local out, err = run([[
k = pki.generate_key("ECDSA-P256")
kc = kubeconfig.build{ server = "https://x:6443", ca_pem = "CA", cert_pem = "CERT", key_pem = k:pem() }
kc.users[1].user
k:pem()
]])
  lu.assertEquals(err, "")
  lu.assertStrContains(out, '["client-key-data"] = <private key>')
  lu.assertStrContains(out, "\n<private key>\n")
  lu.assertNotStrContains(out, "PRIVATE KEY")
end

function TestReplPipe:test_help_and_usage_errors()
  local ok, out = t.kboot("repl --help")
  lu.assertTrue(ok)
  lu.assertStrContains(out, "Usage: kboot repl [options] [FILE [ARGS...]]")
  lu.assertStrContains(out, "--no-history")
  lu.assertStrContains(out, "--root DIR")
  lu.assertStrContains(out, "--kubeconfig FILE")
  lu.assertStrContains(out, "-e, --eval EXPR")
  local _, out2, code = t.kboot("repl --frob < /dev/null")
  lu.assertEquals(code, 2)
  lu.assertStrContains(out2, "unknown option --frob")
  ok, out = t.kboot("--help")
  lu.assertStrContains(out, "repl         interactive Lua prompt with every kboot module loaded")
end

os.exit(lu.LuaUnit.run("-v"))

-- kboot.pretty: the printer behind `kboot repl` results, also used from scripts.
local lu = require("luaunit")
local pretty = require("kboot.pretty")
local F = pretty.format

TestPretty = {}

function TestPretty:test_scalars()
  lu.assertEquals(F(nil), "nil")
  lu.assertEquals(F(true), "true")
  lu.assertEquals(F(42), "42")
  lu.assertEquals(F(-7), "-7")
  lu.assertEquals(F(math.mininteger), tostring(math.mininteger))
  lu.assertEquals(F(1.5), "1.5")
  lu.assertEquals(F(2.0), "2.0") -- a float stays visibly a float
  lu.assertEquals(F(0.1), "0.1")
  lu.assertEquals(F(math.huge), "inf")
  lu.assertEquals(F(-math.huge), "-inf")
  -- floats that %.14g would round are printed with enough digits to read back exactly
  for _, x in ipairs({ 1 / 3, 0.1 + 0.2, 2 ^ 60 + 0.0, 1e300, 5e-324, 123456789.123456789 }) do
    lu.assertEquals(load("return " .. F(x))(), x, F(x))
    lu.assertEquals(math.type(load("return " .. F(x))()), "float", F(x))
  end
end

function TestPretty:test_strings_quoted_readably()
  lu.assertEquals(F("abc"), '"abc"')
  lu.assertEquals(F('say "hi"'), [["say \"hi\""]])
  lu.assertEquals(F("a\\b"), [["a\\b"]])
  lu.assertEquals(F("l1\nl2\tx\r"), [["l1\nl2\tx\r"]])
  lu.assertEquals(F("\0\1\127"), [["\x00\x01\x7F"]])
  lu.assertEquals(F("h\195\169llo"), '"h\195\169llo"') -- valid UTF-8 stays readable
  lu.assertEquals(F("bad\255\254"), [["bad\xFF\xFE"]]) -- invalid UTF-8 is escaped
  lu.assertEquals(F(""), '""')
end

function TestPretty:test_strings_read_back_as_the_same_bytes()
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  local samples = { table.concat(all), "1\0002", "\0012", "-----BEGIN CERTIFICATE-----\nMIIB\n", "\u{1F600}" }
  for _, s in ipairs(samples) do
    local q = F(s)
    lu.assertNotStrContains(q, "\n")
    lu.assertEquals(load("return " .. q)(), s)
  end
end

function TestPretty:test_keys_sorted_numbers_then_strings()
  local t = { b = 1, a = 2, [2] = "y", [1] = "x", [10] = 3, [-1] = 0, [1.5] = "f",
              ["with space"] = 4, ["end"] = 5, _x9 = 6, [true] = 7, [false] = 8 }
  lu.assertEquals(F(t, { width = 0 }), table.concat({
    "{",
    "  [-1] = 0,",
    '  "x",',
    "  [1.5] = \"f\",",
    '  "y",',
    "  [10] = 3,",
    "  _x9 = 6,",
    "  a = 2,",
    "  b = 1,",
    '  ["end"] = 5,',
    '  ["with space"] = 4,',
    "  [false] = 8,",
    "  [true] = 7",
    "}",
  }, "\n"))
end

function TestPretty:test_list_and_holes()
  lu.assertEquals(F({ 1, 2, 3 }), "{ 1, 2, 3 }")
  lu.assertEquals(F({ 1, nil, 3 }), "{ 1, [3] = 3 }")
  lu.assertEquals(F({}), "{}")
  lu.assertEquals(F({ {}, { {} } }), "{ {}, { {} } }")
end

function TestPretty:test_nested_indented_when_too_wide()
  local t = { name = "kube-apiserver", flags = { "--secure-port=6443", "--allow-privileged=true" },
              ports = { https = 6443 } }
  lu.assertEquals(F(t, { width = 40 }), table.concat({
    "{",
    "  flags = {",
    '    "--secure-port=6443",',
    '    "--allow-privileged=true"',
    "  },",
    '  name = "kube-apiserver",',
    "  ports = { https = 6443 }",
    "}",
  }, "\n"))
  lu.assertEquals(F(t, { width = 200 }),
    '{ flags = { "--secure-port=6443", "--allow-privileged=true" }, name = "kube-apiserver", ports = { https = 6443 } }')
  lu.assertEquals(F({ a = { b = 1 } }, { width = 0, indent = "\t" }), "{\n\ta = {\n\t\tb = 1\n\t}\n}")
end

function TestPretty:test_cycles_marked()
  local t = { name = "loop" }
  t.self = t
  local addr = ("%p"):format(t)
  lu.assertEquals(F(t), '{ name = "loop", self = <cycle: table: ' .. addr .. "> }")
  -- a cycle through a child, and a cycle through a key
  local a, b = {}, {}
  a.b, b.a = b, a
  lu.assertStrContains(F(a), "b = { a = <cycle: table: " .. ("%p"):format(a) .. "> }")
  local k = {}
  k[k] = 1
  lu.assertStrContains(F(k), "[<cycle: table: " .. ("%p"):format(k) .. ">] = 1")
end

function TestPretty:test_shared_table_is_not_a_cycle()
  local s = { 1 }
  lu.assertEquals(F({ x = s, y = s }), "{ x = { 1 }, y = { 1 } }")
end

function TestPretty:test_depth_limit()
  local deep = { a = { b = { c = { d = {} } } } }
  lu.assertEquals(F(deep, { depth = 2 }), "{ a = { b = {...} } }")
  lu.assertEquals(F(deep, { depth = 0 }), "{...}")
  lu.assertEquals(F(deep), "{ a = { b = { c = { d = {} } } } }")
  -- the default limit stops runaway nesting
  local chain = {}
  local cur = chain
  for _ = 1, 100 do cur.next = {}; cur = cur.next end
  local out = F(chain)
  lu.assertStrContains(out, "{...}")
  local _, n = out:gsub("next =", "")
  lu.assertEquals(n, pretty.defaults.depth)
end

function TestPretty:test_userdata_functions_and_tostring_objects()
  lu.assertStrMatches(F(io.stdout), "file %(0x%x+%)")
  lu.assertStrMatches(F(print), "function: builtin: 0x%x+")
  lu.assertStrMatches(F(function() end), "function: 0x%x+ <.*test_repl_pretty%.lua:%d+>")
  lu.assertStrMatches(F(coroutine.create(print)), "thread: 0x%x+")
  local obj = setmetatable({ secret = 1 }, { __tostring = function() return "<obj 1>" end })
  lu.assertEquals(F({ obj }), "{ <obj 1> }")
  local bad = setmetatable({}, { __tostring = function() error("broken", 0) end })
  lu.assertStrMatches(F(bad), "<table: 0x%x+, __tostring failed: broken>")
end

function TestPretty:test_kboot_error_objects_via_tostring()
  local e = require("kboot.error").new("pki.load", "ca.crt: no such file")
  lu.assertEquals(F(e), "ca.crt: no such file")
  lu.assertEquals(F({ nil, e }), '{ [2] = ca.crt: no such file }')
end

function TestPretty:test_protected_metatable_does_not_hide_tostring()
  local obj = setmetatable({}, { __tostring = function() return "guarded" end, __metatable = false })
  lu.assertEquals(F(obj), "guarded")
end

function TestPretty:test_bad_options_raise()
  lu.assertErrorMsgContains("table expected, got string", F, 1, "wide")
  lu.assertErrorMsgContains("option 'depth': number expected, got string", F, 1, { depth = "2" })
  lu.assertErrorMsgContains("option 'indent': string expected, got number", F, 1, { indent = 2 })
end

function TestPretty:test_print_writes_formatted_values()
  local path = os.tmpname()
  local saved = io.output()
  local f = assert(io.open(path, "w"))
  local real = io.stdout
  -- pretty.print writes to io.stdout; swap it through the io table for the test
  rawset(io, "stdout", f)
  local ok, err = pcall(pretty.print, "a", 1, { 2 })
  rawset(io, "stdout", real)
  io.output(saved)
  f:close()
  local h = assert(io.open(path))
  local out = h:read("a")
  h:close()
  os.remove(path)
  lu.assertTrue(ok, err)
  lu.assertEquals(out, '"a"\t1\t{ 2 }\n')
end

os.exit(lu.LuaUnit.run("-v"))

-- kboot.yaml: scalar typing, structure, errors with positions, encoding layout and quoting,
-- round trips. Peers (kubectl, PyYAML) are checked in tests/integration/test_yaml_kubectl.lua.
local lu = require("luaunit")
local yaml = require("kboot.yaml")
local t = require("testlib")
local cjson = require("cjson")

local null = yaml.null

-- Deep equality that also tells integers from floats and finds NaN equal to NaN.
local function same(a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false, path .. ": " .. math.type(a) .. " vs " .. math.type(b) end
    if a ~= a and b ~= b then return true end
    return a == b, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
  end
  if type(a) ~= "table" then return a == b, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
  for k, v in pairs(a) do
    local ok, why = same(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": missing" end
  end
  return true
end

local function assert_same(a, b)
  local ok, why = same(a, b)
  if not ok then lu.fail(why) end
end

local function decode_err(text)
  local v, err = yaml.decode(text)
  lu.assertNil(v)
  lu.assertNotNil(err, "expected an error for " .. text)
  lu.assertEquals(err.op, "yaml.decode")
  return tostring(err)
end

local function encode_err(value, opts)
  local ok, err = pcall(yaml.encode, value, opts)
  lu.assertFalse(ok)
  return tostring(err)
end

TestDecodeTyping = {}

-- {text of a plain scalar, expected value, expected math.type or nil}
local plain = {
  { "~", null }, { "null", null }, { "Null", null }, { "NULL", null }, { "", null },
  { "true", true }, { "True", true }, { "TRUE", true },
  { "false", false }, { "False", false }, { "FALSE", false },
  { "0", 0, "integer" }, { "42", 42, "integer" }, { "-17", -17, "integer" }, { "+12", 12, "integer" },
  { "012", 12, "integer" }, { "0x1F", 31, "integer" }, { "0xff", 255, "integer" }, { "0o17", 15, "integer" },
  { "9223372036854775807", math.maxinteger, "integer" },
  { "-9223372036854775808", math.mininteger, "integer" },
  { "9223372036854775808", 9223372036854775808.0, "float" },
  { "99999999999999999999", 1e20, "float" },
  { "0xFFFFFFFFFFFFFFFFFF", 2.0 ^ 72, "float" },
  { "1.5", 1.5, "float" }, { "-2.25", -2.25, "float" }, { "1e3", 1000.0, "float" }, { "1E-2", 0.01, "float" },
  { "1.", 1.0, "float" }, { ".5", 0.5, "float" }, { "+1.5e+2", 150.0, "float" },
  { ".inf", math.huge, "float" }, { ".Inf", math.huge, "float" }, { "-.inf", -math.huge, "float" },
  { "+.INF", math.huge, "float" }, { ".nan", 0 / 0, "float" }, { ".NaN", 0 / 0, "float" },
  -- everything else is a string, including YAML 1.1's booleans and octals
  { "yes", "yes" }, { "no", "no" }, { "on", "on" }, { "off", "off" }, { "y", "y" }, { "n", "n" },
  { "nULL", "nULL" }, { "tRUE", "tRUE" }, { "-0o17", "-0o17" }, { "0b101", "0b101" }, { "1_000", "1_000" },
  { "0x", "0x" }, { "0xG", "0xG" }, { "1:30", "1:30" }, { "1.2.3", "1.2.3" }, { "v1.31.0", "v1.31.0" },
  { "10.96.0.0/12", "10.96.0.0/12" }, { "inf", "inf" }, { "nan", "nan" }, { ".", "." }, { "e3", "e3" },
  { "1e", "1e" }, { "2024-01-31", "2024-01-31" }, { "-x", "-x" }, { "abc def", "abc def" },
}


local raises_arg = t.raises_arg

function TestDecodeTyping:test_plain_scalars_follow_the_core_schema()
  for _, c in ipairs(plain) do
    local text, want, mtype = c[1], c[2], c[3]
    local v, err = yaml.decode("k: " .. text .. "\n")
    lu.assertNil(err, text)
    local got = v.k
    if want ~= want then
      lu.assertTrue(got ~= got, text .. " should be NaN")
    else
      lu.assertEquals(got, want, "plain " .. text)
      lu.assertEquals(type(got), type(want), "plain " .. text)
    end
    if mtype then lu.assertEquals(math.type(got), mtype, "plain " .. text) end
    -- the same text as a sequence item and as a whole document
    if text ~= "" then
      local seq = yaml.decode("- " .. text .. "\n")
      if want == want then lu.assertEquals(seq[1], want, "item " .. text) end
      local doc = yaml.decode(text)
      if want == want then lu.assertEquals(doc, want, "doc " .. text) end
    end
  end
end

function TestDecodeTyping:test_quoted_and_block_scalars_are_strings()
  for _, text in ipairs({ "6443", "true", "null", "~", "1.5", "0x10", ".inf", "" }) do
    lu.assertEquals(yaml.decode("k: '" .. text .. "'").k, text)
    lu.assertEquals(yaml.decode('k: "' .. text .. '"').k, text)
  end
  local v = yaml.decode("a: |\n  6443\nb: >\n  true\nc: |-\n  42\nd: >-\n  null\n")
  assert_same(v, { a = "6443\n", b = "true\n", c = "42", d = "null" })
end

function TestDecodeTyping:test_explicit_tags()
  local v, err = yaml.decode([[
s: !!str 6443
t: !!str true
i: !!int "42"
h: !!int 0x10
f: !!float 3
g: !!float "2.5"
b: !!bool "true"
n: !!null ""
x: !!binary aGVsbG8gd29ybGQ=
big: !!int 99999999999999999999
local: !thing 12
bang: ! 12
]])
  lu.assertNil(err)
  assert_same(v, { s = "6443", t = "true", i = 42, h = 16, f = 3.0, g = 2.5, b = true, n = null,
                   x = "hello world", big = 1e20, ["local"] = 12, bang = "12" })
  lu.assertStrContains(decode_err("a: !!int abc\n"), 'line 1, column 4: cannot decode "abc" as !!int')
  lu.assertStrContains(decode_err("a: !!bool yes\n"), "cannot decode \"yes\" as !!bool")
  lu.assertStrContains(decode_err("a: !!float x\n"), "as !!float")
  lu.assertStrContains(decode_err("a: !!null 0\n"), "as !!null")
  lu.assertStrContains(decode_err("a: !!binary '%%%'\n"), "invalid !!binary")
end

function TestDecodeTyping:test_null_is_cjson_null_and_kept_in_maps()
  lu.assertTrue(yaml.null == cjson.null)
  lu.assertEquals(type(yaml.null), "userdata")
  local v = yaml.decode("a: null\nb:\nc: ~\nd: [~, 1]\n")
  lu.assertTrue(v.a == null and v.b == null and v.c == null)
  lu.assertTrue(v.d[1] == null)
  lu.assertEquals(#v.d, 2)
end

function TestDecodeTyping:test_keys()
  local v = yaml.decode("1: int\n'2': str\ntrue: t\n~: n\n1.5: f\n0x10: hex\n")
  lu.assertEquals(v[1], "int")
  lu.assertEquals(v["2"], "str")
  lu.assertNil(v[2])
  lu.assertEquals(v["true"], "t")
  lu.assertEquals(v["~"], "n")
  lu.assertEquals(v["1.5"], "f")
  lu.assertEquals(v[16], "hex")
  -- an alias of a typed scalar as a key is its text too
  v = yaml.decode("a: &t true\n*t : x\n")
  lu.assertEquals(v["true"], "x")
end

TestDecodeStructure = {}

function TestDecodeStructure:test_empty_streams_and_documents()
  lu.assertNil(yaml.decode(""))
  lu.assertNil(yaml.decode("# only a comment\n"))
  lu.assertEquals(select("#", yaml.decode("")), 1)
  lu.assertTrue(yaml.decode("---\n") == null)
  lu.assertEquals(#yaml.decode_all(""), 0)
  lu.assertEquals(getmetatable(yaml.decode_all("")), yaml.array_mt)
end

function TestDecodeStructure:test_sequences_and_maps_get_metatables()
  local v = yaml.decode("a: []\nb: {}\nc: [1]\nd: {x: 1}\n")
  lu.assertIs(getmetatable(v.a), yaml.array_mt)
  lu.assertIs(getmetatable(v.c), yaml.array_mt)
  lu.assertIs(getmetatable(v.b), yaml.map_mt)
  lu.assertIs(getmetatable(v.d), yaml.map_mt)
  lu.assertIs(getmetatable(v), yaml.map_mt)
  lu.assertNotIs(yaml.array_mt, yaml.map_mt)
  -- and they survive a re-encode: [] stays [], {} stays {}
  lu.assertEquals(yaml.encode(v), "a: []\nb: {}\nc:\n- 1\nd:\n  x: 1\n")
end

function TestDecodeStructure:test_multi_document()
  local docs, err = yaml.decode_all("a: 1\n---\n- x\n---\n42\n---\n")
  lu.assertNil(err)
  lu.assertEquals(#docs, 4)
  lu.assertEquals(docs[1], { a = 1 })
  lu.assertEquals(docs[2], { "x" })
  lu.assertEquals(docs[3], 42)
  lu.assertTrue(docs[4] == null)
  -- decode reads the first document only, as Go's yaml.Unmarshal does
  lu.assertEquals(yaml.decode("a: 1\n---\nb: 2\n"), { a = 1 })
  lu.assertEquals(yaml.decode("---\na: 1\n...\n"), { a = 1 })
  -- an error in a later document fails decode_all, naming its line
  local v, e = yaml.decode_all("a: 1\n---\nb: [\n")
  lu.assertNil(v)
  lu.assertEquals(e.op, "yaml.decode_all")
  lu.assertStrContains(tostring(e), "line 4, column 1:")
end

function TestDecodeStructure:test_aliases_resolve_to_the_same_value()
  local v = yaml.decode("base: &b\n  x: 1\n  l: [1, 2]\nuse: *b\nlist: &l [a, b]\nagain: *l\ns: &s str\nt: *s\n")
  lu.assertIs(v.use, v.base)
  lu.assertIs(v.again, v.list)
  lu.assertEquals(v.t, "str")
  -- anchors belong to their document
  local docs, err = yaml.decode_all("a: &x 1\n---\nb: *x\n")
  lu.assertNil(docs)
  lu.assertStrContains(tostring(err), 'line 3, column 4: unknown anchor "x"')
  -- a node cannot refer to itself
  lu.assertStrContains(decode_err("a: &r [*r]\n"), 'unknown anchor "r"')
end

function TestDecodeStructure:test_alias_bomb_is_refused()
  local lines = { 'a: &a ["x","x","x","x","x","x","x","x","x","x"]' }
  for i, name in ipairs({ "b", "c", "d", "e", "f" }) do
    local prev = string.char(string.byte("a") + i - 1)
    lines[#lines + 1] = ("%s: &%s [%s]"):format(name, name, ("*" .. prev .. ","):rep(9) .. "*" .. prev)
  end
  local five = table.concat(lines, "\n", 1, 5) .. "\n" -- ~111k nodes: allowed
  local v, err = yaml.decode(five)
  lu.assertNil(err)
  lu.assertEquals(#v.e[10][10][10][10], 10)
  lu.assertStrContains(decode_err(table.concat(lines, "\n") .. "\n"), "more than 1000000 nodes after alias expansion")
end

function TestDecodeStructure:test_merge_keys()
  local v = yaml.decode([[
base: &b {a: 1, b: 2}
more: &m {c: 3}
x:
  <<: *b
  b: 20
y:
  b: 30
  <<: [*b, *m, {a: 100}]
q:
  "<<": *b
]])
  lu.assertEquals(v.x, { a = 1, b = 20 })
  lu.assertEquals(v.y, { a = 1, b = 30, c = 3 })
  lu.assertEquals(v.q, { ["<<"] = { a = 1, b = 2 } })
  lu.assertStrContains(decode_err("x:\n  <<: {a: 1}\n  a: 2\n  a: 3\n"), 'line 4, column 3: duplicate key "a"')
  lu.assertStrContains(decode_err("x:\n  <<: [1]\n"), 'line 2, column 3: merge key "<<" needs a mapping')
end

function TestDecodeStructure:test_depth_limit()
  local ok_depth = ("["):rep(999) .. ("]"):rep(999)
  local v, err = yaml.decode(ok_depth)
  lu.assertNil(err)
  lu.assertEquals(type(v), "table")
  lu.assertStrContains(decode_err(("["):rep(1001) .. ("]"):rep(1001)), "nesting deeper than 1000 levels")
  local deep = {}
  for i = 1, 1200 do deep[i] = ("  "):rep(i - 1) .. "k:" end
  lu.assertStrContains(decode_err(table.concat(deep, "\n") .. " 1\n"), "nesting deeper than 1000 levels")
end

TestDecodeErrors = {}

function TestDecodeErrors:test_positions_are_exact()
  lu.assertEquals(decode_err("a: b: c\n"), "yaml: line 1, column 5: mapping values are not allowed in this context")
  lu.assertEquals(decode_err("a: 1\nb: [1, 2\nc: 3\n"),
                  "yaml: line 3, column 2: did not find expected ',' or ']' (while parsing a flow sequence)")
  lu.assertEquals(decode_err("a:\n  - b\n c: d\n"),
                  "yaml: line 3, column 2: did not find expected key (while parsing a block mapping)")
  lu.assertEquals(decode_err("a:\n\tb: 1\n"),
                  "yaml: line 2, column 1: found character that cannot start any token (while scanning for the next token)")
  lu.assertEquals(decode_err("ok: 1\nkey: 'unterminated\n"),
                  "yaml: line 3, column 1: found unexpected end of stream (while scanning a quoted scalar)")
  lu.assertEquals(decode_err("a: 1\nbb: x\xffy\n"), "yaml: line 2, column 6: invalid leading UTF-8 octet (#xFF)")
  lu.assertEquals(decode_err("x: 1\ny: *nope\n"), 'yaml: line 2, column 4: unknown anchor "nope" referenced')
  lu.assertEquals(decode_err("? [a]\n: 1\n"),
                  "yaml: line 1, column 3: mapping key must be a scalar (in mapping at line 1, column 1)")
end

function TestDecodeErrors:test_duplicate_keys()
  lu.assertEquals(decode_err("a: 1\nb: 2\na: 3\n"),
                  'yaml: line 3, column 1: duplicate key "a" (in mapping at line 1, column 1)')
  lu.assertEquals(decode_err("top:\n  x: 1\n  'x': 2\n"),
                  'yaml: line 3, column 3: duplicate key "x" (in mapping at line 2, column 3)')
  lu.assertStrContains(decode_err("- {a: 1, a: 1}\n"), 'line 1, column 10: duplicate key "a"')
  lu.assertStrContains(decode_err("1: a\n1: b\n"), 'line 2, column 1: duplicate key "1"')
end

-- sigs.k8s.io/yaml turns every key into a JSON string, so the integer key 1 and the string key
-- '1' are one key to Kubernetes (different ones in Lua): the pair is a duplicate.
function TestDecodeErrors:test_integer_and_string_spellings_of_one_key_are_duplicates()
  lu.assertEquals(decode_err("1: a\n'1': b\n"), 'yaml: line 2, column 1: duplicate key "1" (in mapping at line 1, '
    .. 'column 1; the integer 1 and the string "1" are one key to Kubernetes)')
  lu.assertStrContains(decode_err('"7": a\n7: b\n'), 'line 2, column 1: duplicate key "7"')
  lu.assertStrContains(decode_err("0x1F: a\n'31': b\n"), 'duplicate key "31"')
  lu.assertStrContains(decode_err('x:\n  -3: a\n  "-3": b\n'), 'line 3, column 3: duplicate key "-3"')
  -- what Kubernetes sees as other keys stays allowed
  lu.assertEquals(yaml.decode("1: a\n'01': b\n'+1': c\n'0x1F': d\n' 1': e\n'1.0': f\n"),
    { [1] = "a", ["01"] = "b", ["+1"] = "c", ["0x1F"] = "d", [" 1"] = "e", ["1.0"] = "f" })
  -- an explicit key overrides a merged one of the other spelling, as it does one of the same
  lu.assertEquals(yaml.decode("b: &b {1: m, 2: n}\nx:\n  <<: *b\n  '1': e\n").x, { ["1"] = "e", [2] = "n" })
  -- two merged mappings: the first one's key wins, whichever its spelling
  lu.assertEquals(yaml.decode("a: &a {1: first}\nb: &b {'1': second}\nx:\n  <<: [*a, *b]\n").x, { [1] = "first" })
end

-- Input and single scalars have generous caps (docs/api/yaml.md), errors not out-of-memory.
function TestDecodeErrors:test_size_caps()
  local function refused(f, text) -- never hands luaunit a huge value to print
    local v, err = f(text)
    lu.assertTrue(v == nil and err ~= nil, "a huge input was decoded")
    return err
  end
  local big = ("a"):rep(32 * 1024 * 1024 + 1)
  local err = refused(yaml.decode, big)
  lu.assertEquals(err.op, "yaml.decode")
  lu.assertEquals(err.msg, "yaml: input of 33554433 bytes is larger than the limit of 33554432 bytes (32 MiB)")
  err = refused(yaml.decode_all, big)
  lu.assertEquals(err.op, "yaml.decode_all")
  lu.assertStrContains(err.msg, "larger than the limit")
  big = nil
  err = refused(yaml.decode, "k: |\n  " .. ("b"):rep(4 * 1024 * 1024 + 1) .. "\n")
  lu.assertEquals(err.msg, "yaml: line 1, column 4: scalar of 4194306 bytes is longer than the limit of 4194304 bytes (4 MiB)")
  err = refused(yaml.decode, "? " .. ("k"):rep(4 * 1024 * 1024 + 1) .. "\n: v\n")
  lu.assertStrContains(err.msg, "scalar of 4194305 bytes")
  lu.assertEquals(#yaml.decode("k: " .. ("c"):rep(4 * 1024 * 1024) .. "\n").k, 4 * 1024 * 1024)
  collectgarbage()
end

function TestDecodeErrors:test_misuse_raises()
  lu.assertErrorMsgContains("bad argument #1 to 'kboot.yaml.decode' (string expected, got nil)", yaml.decode, nil)
  lu.assertErrorMsgContains("bad argument #1 to 'kboot.yaml.decode_all' (string expected, got table)",
                            yaml.decode_all, {})
end

function TestDecodeErrors:test_garbage_never_crashes()
  -- every prefix and many single-byte mutations of a realistic document: a value or nil, err
  local doc = yaml.encode({ apiVersion = "v1", kind = "Pod", metadata = { name = "p", labels = { a = "b" } },
    spec = { containers = { { name = "c", args = { "--x=1", "multi\nline\n" }, env = { { name = "A", value = "6443" } } } } },
    extra = "&anchor *alias [flow] {map} 'q' \"dq\" |lit >fold" })
  doc = doc .. "list: &l [1, {a: *l}]\n"
  local seen_err = 0
  for i = 0, #doc do
    local v, err = yaml.decode_all(doc:sub(1, i))
    lu.assertTrue(v ~= nil or err ~= nil)
    if err then seen_err = seen_err + 1 end
  end
  math.randomseed(42)
  local alphabet = "-?:,[]{}#&*!|>'\"%@` \n\t\\abc019.~\xc3\xa9\xff\0"
  for _ = 1, 3000 do
    local pos, ch = math.random(1, #doc), math.random(1, #alphabet)
    local mutated = doc:sub(1, pos - 1) .. alphabet:sub(ch, ch) .. doc:sub(pos + 1)
    local v, err = yaml.decode_all(mutated)
    lu.assertTrue(v ~= nil or (err ~= nil and tostring(err):match("^yaml: line %d+, column %d+: ") ~= nil),
                  tostring(err))
  end
  lu.assertTrue(seen_err > 0)
end

TestEncode = {}

function TestEncode:test_layout_matches_kubectl()
  local pod = {
    apiVersion = "v1", kind = "Pod",
    metadata = { name = "kube-apiserver", namespace = "kube-system", labels = { component = "kube-apiserver", tier = "control-plane" } },
    spec = {
      containers = { {
        name = "kube-apiserver", image = "registry.k8s.io/kube-apiserver:v1.31.0",
        command = { "kube-apiserver", "--advertise-address=10.0.0.1", "--secure-port=6443" },
        volumeMounts = { { mountPath = "/etc/kubernetes/pki", name = "k8s-certs", readOnly = true } },
        resources = { requests = { cpu = "250m" } },
      } },
      hostNetwork = true, priority = 2000001000, volumes = setmetatable({}, yaml.array_mt),
    },
    status = {},
  }
  local want = [[
apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=10.0.0.1
    - --secure-port=6443
    image: registry.k8s.io/kube-apiserver:v1.31.0
    name: kube-apiserver
    resources:
      requests:
        cpu: 250m
    volumeMounts:
    - mountPath: /etc/kubernetes/pki
      name: k8s-certs
      readOnly: true
  hostNetwork: true
  priority: 2000001000
  volumes: []
status: {}
]]
  lu.assertEquals(yaml.encode(pod, { order = { "apiVersion", "kind", "metadata", "spec", "status" } }), want)
end

function TestEncode:test_nested_sequences_and_top_level_values()
  lu.assertEquals(yaml.encode({ { 1, 2 }, { a = 1, b = { c = 2 } }, { { x = "y" } }, {}, setmetatable({}, yaml.array_mt) }),
                  "- - 1\n  - 2\n- a: 1\n  b:\n    c: 2\n- - x: \"y\"\n- {}\n- []\n")
  lu.assertEquals(yaml.encode("text"), "text\n")
  lu.assertEquals(yaml.encode(42), "42\n")
  lu.assertEquals(yaml.encode(null), "null\n")
  lu.assertEquals(yaml.encode(false), "false\n")
  lu.assertEquals(yaml.encode({}), "{}\n")
  lu.assertEquals(yaml.encode(setmetatable({}, yaml.array_mt)), "[]\n")
  lu.assertEquals(yaml.encode({ a = { { b = { 1 } } } }), "a:\n- b:\n  - 1\n")
end

function TestEncode:test_numbers()
  local cases = {
    { 0, "0" }, { -5, "-5" }, { math.maxinteger, "9223372036854775807" }, { math.mininteger, "-9223372036854775808" },
    { 1.5, "1.5" }, { 3.0, "3.0" }, { -0.0, "-0.0" }, { 0.1, "0.1" }, { 1e20, "1.0e+20" }, { 1.5e-7, "1.5e-07" },
    { 1 / 3, "0.3333333333333333" }, { 0.1 + 0.2, "0.30000000000000004" }, { math.huge, ".inf" }, { -math.huge, "-.inf" }, { 0 / 0, ".nan" },
    { 2 ^ 53, "9007199254740992.0" },
  }
  for _, c in ipairs(cases) do
    lu.assertEquals(yaml.encode({ v = c[1] }), "v: " .. c[2] .. "\n")
    assert_same(yaml.decode(yaml.encode({ v = c[1] })).v, c[1])
  end
end

function TestEncode:test_key_order()
  local t = { spec = { b = 1, a = 2, kind = "inner" }, zeta = 1, kind = "K", apiVersion = "v1", alpha = 2,
              metadata = { name = "nm", ["B"] = 1, ["a"] = 2 } }
  local order = { "apiVersion", "kind", "metadata", "spec" }
  lu.assertEquals(yaml.encode(t, { order = order }), [[
apiVersion: v1
kind: K
metadata:
  B: 1
  a: 2
  name: nm
spec:
  kind: inner
  a: 2
  b: 1
alpha: 2
zeta: 1
]])
  -- without an order: byte order everywhere
  lu.assertEquals(yaml.encode({ b = 1, B = 2, a = 3, ["_"] = 4 }), "B: 2\n_: 4\na: 3\nb: 1\n")
  -- a table's own order applies to that table only
  local inner = yaml.ordered({ z = 1, a = 2, m = 3 }, { "m", "z" })
  lu.assertIs(yaml.ordered(inner, { "m", "z" }), inner)
  lu.assertEquals(yaml.encode({ p = inner, q = { z = 1, a = 2 } }, { order = { "q", "p", "z" } }),
                  "q:\n  z: 1\n  a: 2\np:\n  m: 3\n  z: 1\n  a: 2\n")
  -- ordering a decoded map does not touch the shared map_mt
  local d = yaml.decode("b: 1\na: 2\n")
  yaml.ordered(d, { "b" })
  lu.assertNil(rawget(yaml.map_mt, "__order"))
  lu.assertEquals(yaml.encode(d), "b: 1\na: 2\n")
  lu.assertEquals(yaml.encode(yaml.decode("b: 1\na: 2\n")), "a: 2\nb: 1\n")
  lu.assertErrorMsgContains("a sequence has no key order", yaml.ordered, setmetatable({}, yaml.array_mt), {})
end

function TestEncode:test_integer_keys()
  -- a decoded mapping with integer keys stays a mapping (map_mt); integers sort first
  local v = yaml.decode("2: b\n1: a\nx: c\n")
  lu.assertEquals(yaml.encode(v), "1: a\n2: b\nx: c\n")
  assert_same(yaml.decode(yaml.encode(v)), v)
  lu.assertEquals(yaml.encode(yaml.decode("1: a\n")), "1: a\n")
  lu.assertEquals(yaml.encode({ [1] = "a" }), "- a\n")
end

function TestEncode:test_long_keys_use_explicit_form()
  local long, ctl = ("k"):rep(1001), ("\1"):rep(200) -- 200 bytes, 800 once escaped
  local v = { [long] = { a = 1 }, [long .. "s"] = { 1, 2 }, [long .. "x"] = "v", short = 1, [ctl] = "c",
              list = { { [long] = "m\nl\n" } } }
  local out = yaml.encode(v)
  lu.assertStrContains(out, "? " .. long .. "\n:\n  a: 1\n")
  lu.assertStrContains(out, "? " .. long .. "s\n:\n- 1\n- 2\n")
  lu.assertStrContains(out, "\n- ? " .. long .. "\n  : |\n    m\n    l\n")
  lu.assertEquals(out:sub(1, 806), '"' .. ("\\x01"):rep(200) .. '": c\n') -- sorts first
  local back, err = yaml.decode(out)
  lu.assertNil(err)
  assert_same(back, v)
  local huge = ("\1"):rep(300) -- 1200 chars escaped: explicit too
  lu.assertStrContains(yaml.encode({ [huge] = 1 }), '? "' .. ("\\x01"):rep(300) .. '"\n: 1\n')
  assert_same(yaml.decode(yaml.encode({ [huge] = 1 })), { [huge] = 1 })
end

function TestEncode:test_indent_option()
  lu.assertEquals(yaml.encode({ a = { b = { c = 1 }, l = { 1 } }, s = "x\ny" }, { indent = 4 }),
                  "a:\n    b:\n        c: 1\n    l:\n    - 1\ns: |-\n    x\n    y\n")
  lu.assertErrorMsgContains("indent", yaml.encode, {}, { indent = 0 })
  lu.assertErrorMsgContains("indent", yaml.encode, {}, { indent = "x" })
  raises_arg(2, "option 'indent': number expected, got string",
    yaml.encode, {}, { indent = "x" })
  lu.assertErrorMsgContains("order", yaml.encode, {}, { order = "apiVersion" })
  lu.assertErrorMsgContains("order", yaml.encode, {}, { order = { 1 } })
end

-- Strings that would re-read as another type (YAML 1.2 or 1.1) or hold characters to escape:
-- double-quoted, as Go's yaml does.
local must_double = {
  "", "6443", "-1", "+1", "0x1F", "0o17", "012", "1.5", "1e3", ".5", "1.", ".inf", "-.inf", ".nan", ".NaN",
  "true", "True", "FALSE", "null", "Null", "~", "yes", "No", "on", "OFF", "y", "Y", "n", "N",
  "0b101", "0B11", "0X1F", "0O17", "-0x1F", "+0o7", "1_000", "0_7", "1:30", "190:20:30.15", "2024-01-31",
  "2001-12-14t21:59:43.10-05:00", "=", "<<",
  "tab\there", "cr\rhere", "nul\0here", "bell\7", "del\127", "nel\194\133", "ls\226\128\168", "bom\239\187\191",
  "c1\194\128",
}
-- Strings plain YAML cannot hold for an indicator or an edge space: single-quoted, as Go does.
local must_single = {
  " lead", "trail ", "a: b", "a #b", "ends:", "-", "- item", "---", "--- x", "...", "... x",
  "? q", "?q", ":x", ",a", "[a", "]a", "{a", "}a", "#a", "&a", "*a", "!a", "|a", ">a", "'a", '"a', "%a", "@a", "`a",
  "  ",
}
local stay_plain = {
  "a", "kube-apiserver", "--advertise-address=10.0.0.1", "-foo", "--", "10.96.0.0/12", "192.168.0.1",
  "v1.31.0", "1.2.3", "https://10.0.0.1:6443", "a:b", "a#b", "a,b", "a[0]", "x{{y}}", "unix:///run/x.sock",
  "250m", "24h0m0s", "ünïcødé ☃", "日本語", "😀", "0xG", "e3", "inf", "nan", "abc def", "a'b", 'a"b', "a\\b",
  "system:bootstrappers:kubeadm:default-node-token", "registry.k8s.io/pause:3.10", ".5.", "x=y", "_",
}

function TestEncode:test_quoting()
  for _, c in ipairs({ { must_double, '^k: ".*"\n$' }, { must_single, "^k: '.*'\n$" } }) do
    for _, s in ipairs(c[1]) do
      local out = yaml.encode({ k = s })
      lu.assertNotNil(out:match(c[2]), ("%q should be quoted as %s, got: %s"):format(s, c[2], out))
      lu.assertEquals(yaml.decode(out).k, s, out)
      -- and as a key
      out = yaml.encode({ [s] = 1 })
      lu.assertTrue(out:sub(1, 1) == '"' or out:sub(1, 1) == "'", out)
      lu.assertEquals(next(yaml.decode(out)), s)
    end
  end
  for _, s in ipairs(stay_plain) do
    lu.assertEquals(yaml.encode({ k = s }), "k: " .. s .. "\n")
    lu.assertEquals(yaml.decode("k: " .. s).k, s)
    lu.assertEquals(yaml.encode({ s }), "- " .. s .. "\n")
    lu.assertEquals(yaml.encode({ [s] = 1 }), s .. ": 1\n")
  end
  lu.assertEquals(yaml.encode({ k = "it's 'q'" }), "k: it's 'q'\n")
  lu.assertEquals(yaml.encode({ k = "'q' it's" }), "k: '''q'' it''s'\n")
end

function TestEncode:test_escapes()
  lu.assertEquals(yaml.encode("q\"b\\s\t\r\0\7\8\11\12\27\1\127"),
                  '"q\\"b\\\\s\\t\\r\\0\\a\\b\\v\\f\\e\\x01\\x7F"\n')
  lu.assertEquals(yaml.encode("nel\194\133 c1\194\128 ls\226\128\168 ps\226\128\169 bom\239\187\191 ok\194\160"),
                  '"nel\\x85 c1\\x80 ls\\u2028 ps\\u2029 bom\\uFEFF ok\194\160"\n')
  lu.assertEquals(yaml.encode("line\nwith trailing space \nx"), '"line\\nwith trailing space \\nx"\n')
end

function TestEncode:test_multiline_strings()
  local cases = {
    { "a\nb\n", "k: |\n  a\n  b\n" },
    { "a\nb", "k: |-\n  a\n  b\n" },
    { "a\nb\n\n\n", "k: |+\n  a\n  b\n\n\n" },
    { "a\n\nb\n", "k: |\n  a\n\n  b\n" },
    { "#!/bin/sh\necho 'hi' # c\n", "k: |\n  #!/bin/sh\n  echo 'hi' # c\n" },
    { "key: value\n- item\n---\n...\n", "k: |\n  key: value\n  - item\n  ---\n  ...\n" },
    { "a\n  indented\n", "k: |\n  a\n    indented\n" },
    -- a leading blank or newline: the indentation is stated (|2), as Go writes it
    { "\n\na\n", "k: |2\n\n\n  a\n" },
    { " lead\nx\n", "k: |2\n   lead\n  x\n" },
    { "  two\n", "k: |2\n    two\n" },
    { "\n", "k: |2+\n\n" },
    { "\n\n", "k: |2+\n\n\n" },
    { "\nx", "k: |2-\n\n  x\n" },
    -- not representable as a literal block: double-quoted
    { "trail \nx\n", 'k: "trail \\nx\\n"\n' },
    { "x\n \n", 'k: "x\\n \\n"\n' },
    { "x\ny ", 'k: "x\\ny "\n' },
    { "cr\r\nlf\n", 'k: "cr\\r\\nlf\\n"\n' },
    { "tab\n\tx\n", 'k: "tab\\n\\tx\\n"\n' },
  }
  for _, c in ipairs(cases) do
    local out = yaml.encode({ k = c[1] })
    lu.assertEquals(out, c[2])
    lu.assertEquals(yaml.decode(out).k, c[1])
  end
  -- in a sequence, nested, and as the whole document
  local v = { list = { "x\ny\n", { s = "p\nq" } }, top = "t" }
  lu.assertEquals(yaml.encode(v), "list:\n- |\n  x\n  y\n- s: |-\n    p\n    q\ntop: t\n")
  assert_same(yaml.decode(yaml.encode(v)), v)
  lu.assertEquals(yaml.encode("a\nb\n"), "|\n  a\n  b\n")
  lu.assertEquals(yaml.encode(" a\nb\n"), "|2\n   a\n  b\n")
  lu.assertEquals(yaml.encode({ " a\n" }), "- |2\n   a\n")
  lu.assertEquals(yaml.encode({ k = " a\n" }, { indent = 4 }), "k: |4\n     a\n")
  lu.assertEquals(yaml.encode({ { k = " a\n" } }, { indent = 3 }), "- k: |3\n      a\n")
  for _, v in ipairs({ " a\n", { " a\n" }, { k = " a\n" }, { { k = { " a\n", "\n" } } } }) do
    for indent = 1, 9 do assert_same(yaml.decode(yaml.encode(v, { indent = indent })), v) end
  end
  lu.assertEquals(yaml.decode(yaml.encode("a\nb\n\n")), "a\nb\n\n")
  -- a multi-line key is double-quoted
  lu.assertEquals(yaml.encode({ ["a\nb"] = 1 }), '"a\\nb": 1\n')
end

function TestEncode:test_errors_name_the_path()
  lu.assertEquals(encode_err({ spec = { containers = { { name = "a" }, { 1, x = 2 } } } }),
                  "yaml.encode: mixed table at spec.containers[2]")
  lu.assertEquals(encode_err({ a = { [1] = "x", [3] = "y" } }), "yaml.encode: mixed table at a")
  lu.assertEquals(encode_err({ [0] = "x" }), "yaml.encode: mixed table at (root)")
  lu.assertEquals(encode_err({ a = setmetatable({ x = 1 }, yaml.array_mt) }), "yaml.encode: mixed table at a")
  local c = { name = "c" }
  c.child = { list = { c } }
  lu.assertEquals(encode_err({ top = c }), "yaml.encode: cycle at top.child.list[1]")
  lu.assertEquals(encode_err({ a = { f = print } }), "yaml.encode: cannot encode a function value at a.f")
  lu.assertEquals(encode_err({ ["app.kubernetes.io/name"] = io.stdout }),
                  'yaml.encode: cannot encode a userdata value at ["app.kubernetes.io/name"]')
  lu.assertEquals(encode_err({ co = coroutine.create(print) }), "yaml.encode: cannot encode a thread value at co")
  lu.assertEquals(encode_err({ a = { [1.5] = 1 } }), "yaml.encode: unsupported key type (non-integer number) at a")
  lu.assertEquals(encode_err({ [true] = 1 }), "yaml.encode: unsupported key type (boolean) at (root)")
  lu.assertEquals(encode_err({ s = "bad\xffutf8" }), "yaml.encode: invalid UTF-8 in string at s")
  lu.assertEquals(encode_err({ ["k\xc0\x80"] = 1 }), 'yaml.encode: invalid UTF-8 in key at ["k\\192\\128"]')
  lu.assertEquals(encode_err({ "ok", "\xed\xa0\x80" }), "yaml.encode: invalid UTF-8 in string at [2]")
  lu.assertEquals(encode_err({ { a = 1 }, { b = print } }), "yaml.encode: cannot encode a function value at [2].b")
  lu.assertErrorMsgContains("bad argument #1 to 'kboot.yaml.encode' (value expected)", yaml.encode)
  -- shared (acyclic) tables are fine and written twice
  local shared = { x = 1 }
  lu.assertEquals(yaml.encode({ a = shared, b = shared }), "a:\n  x: 1\nb:\n  x: 1\n")
  -- depth
  local deep = {}
  local cur = deep
  for _ = 1, 1001 do cur.n = {} cur = cur.n end
  lu.assertStrContains(encode_err(deep), "nesting deeper than 1000 levels")
  cur = {}
  deep = cur
  for _ = 1, 998 do cur.n = {} cur = cur.n end
  lu.assertEquals(yaml.decode(yaml.encode(deep)).n.n.n.n ~= nil, true)
end

function TestEncode:test_encode_all()
  lu.assertEquals(yaml.encode_all({ { a = 1 }, { 1, 2 }, "s", null }), "a: 1\n---\n- 1\n- 2\n---\ns\n---\nnull\n")
  lu.assertEquals(yaml.encode_all({}), "")
  local docs = { { kind = "A", apiVersion = "v1" }, { kind = "B", apiVersion = "v1", data = { x = "1\n2\n\n" } } }
  local out = yaml.encode_all(docs, { order = { "apiVersion", "kind" } })
  lu.assertEquals(out, "apiVersion: v1\nkind: A\n---\napiVersion: v1\nkind: B\ndata:\n  x: |+\n    1\n    2\n\n")
  assert_same(yaml.decode_all(out), docs)
  local ok, err = pcall(yaml.encode_all, { { a = 1 }, { b = print } })
  lu.assertFalse(ok)
  lu.assertEquals(tostring(err), "yaml.encode: cannot encode a function value at [2].b")
  lu.assertErrorMsgContains("bad argument #1 to 'kboot.yaml.encode_all'", yaml.encode_all, "x")
end

TestRoundTrip = {}

function TestRoundTrip:test_nested_structures()
  local v = {
    s = "str", i = 7, f = 7.25, neg = -3, big = math.maxinteger, t = true, fa = false, n = null,
    empty_map = {}, empty_list = setmetatable({}, yaml.array_mt),
    list = { 1, "2", 3.5, true, null, { "nested", { deeper = { "x" } } }, {} },
    map = { ["with space"] = 1, ["6443"] = "6443", ["true"] = "true", ["-dash"] = "-dash", ["ünï"] = "☃",
            multi = "l1\nl2\n", tricky = "a: b # c", ["a\tb"] = "tab" },
    [5] = nil,
  }
  local text = yaml.encode(v)
  local back, err = yaml.decode(text)
  lu.assertNil(err, text)
  assert_same(back, v)
  -- and a second round is byte-identical
  lu.assertEquals(yaml.encode(back), text)
end

function TestRoundTrip:test_random_strings()
  math.randomseed(7)
  local pieces = { "a", "Z", "0", "1", "9", ".", "-", "+", "_", ":", " ", "#", "'", '"', "\\", "\n", "\t", "\r",
                   "?", ",", "[", "]", "{", "}", "&", "*", "!", "|", ">", "%", "@", "`", "~", "e", "x", "o",
                   "true", "null", "yes", "0x", "0o", ".inf", "<<", "=", "---", "...", "é", "☃", "😀", "\194\133",
                   "\0", "\127", "\226\128\168" }
  for _ = 1, 4000 do
    local parts = {}
    for j = 1, math.random(0, 6) do parts[j] = pieces[math.random(#pieces)] end
    local s = table.concat(parts)
    local text = yaml.encode({ k = s, [s ~= "" and s or "e"] = { s } })
    local back, err = yaml.decode(text)
    if not back then lu.fail(("%q does not decode: %s\n%s"):format(s, tostring(err), text)) end
    if back.k ~= s then lu.fail(("%q came back as %q from\n%s"):format(s, tostring(back.k), text)) end
    lu.assertEquals(back[s ~= "" and s or "e"][1], s)
  end
end

function TestRoundTrip:test_kubeadm_v1beta4_sample()
  local text = [[
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- groups:
  - system:bootstrappers:kubeadm:default-node-token
  token: abcdef.0123456789abcdef
  ttl: 24h0m0s
  usages:
  - signing
  - authentication
localAPIEndpoint:
  advertiseAddress: 10.0.0.10
  bindPort: 6443
nodeRegistration:
  criSocket: unix:///var/run/containerd/containerd.sock
  imagePullPolicy: IfNotPresent
  imagePullSerial: true
  name: node-1
  taints: null
  kubeletExtraArgs:
  - name: node-ip
    value: 10.0.0.10
timeouts:
  controlPlaneComponentHealthCheck: 4m0s
  kubernetesAPICall: 1m0s
---
apiServer:
  certSANs:
  - "10.0.0.1"
  - kube.example.com
  extraArgs:
  - name: authorization-mode
    value: Node,RBAC
  - name: max-requests-inflight
    value: "400"
apiVersion: kubeadm.k8s.io/v1beta4
caCertificateValidityPeriod: 87600h0m0s
certificateValidityPeriod: 8760h0m0s
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controlPlaneEndpoint: "cp.example.com:6443"
controllerManager: {}
dns: {}
encryptionAlgorithm: RSA-2048
etcd:
  local:
    dataDir: /var/lib/etcd
    extraArgs: []
imageRepository: registry.k8s.io
kind: ClusterConfiguration
kubernetesVersion: 1.31.0
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
proxy: {}
scheduler: {}
---
# the kubelet's own config may ride along
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
maxPods: 110
evictionHard:
  memory.available: 100Mi
]]
  local docs, err = yaml.decode_all(text)
  lu.assertNil(err)
  local A = function(t) return setmetatable(t, yaml.array_mt) end
  assert_same(docs, {
    {
      apiVersion = "kubeadm.k8s.io/v1beta4", kind = "InitConfiguration",
      bootstrapTokens = { { groups = { "system:bootstrappers:kubeadm:default-node-token" },
                            token = "abcdef.0123456789abcdef", ttl = "24h0m0s", usages = { "signing", "authentication" } } },
      localAPIEndpoint = { advertiseAddress = "10.0.0.10", bindPort = 6443 },
      nodeRegistration = { criSocket = "unix:///var/run/containerd/containerd.sock", imagePullPolicy = "IfNotPresent",
                           imagePullSerial = true, name = "node-1", taints = null,
                           kubeletExtraArgs = { { name = "node-ip", value = "10.0.0.10" } } },
      timeouts = { controlPlaneComponentHealthCheck = "4m0s", kubernetesAPICall = "1m0s" },
    },
    {
      apiServer = { certSANs = { "10.0.0.1", "kube.example.com" },
                    extraArgs = { { name = "authorization-mode", value = "Node,RBAC" },
                                  { name = "max-requests-inflight", value = "400" } } },
      apiVersion = "kubeadm.k8s.io/v1beta4", caCertificateValidityPeriod = "87600h0m0s",
      certificateValidityPeriod = "8760h0m0s", certificatesDir = "/etc/kubernetes/pki", clusterName = "kubernetes",
      controlPlaneEndpoint = "cp.example.com:6443", controllerManager = {}, dns = {}, encryptionAlgorithm = "RSA-2048",
      etcd = { ["local"] = { dataDir = "/var/lib/etcd", extraArgs = A({}) } }, imageRepository = "registry.k8s.io",
      kind = "ClusterConfiguration", kubernetesVersion = "1.31.0",
      networking = { dnsDomain = "cluster.local", podSubnet = "10.244.0.0/16", serviceSubnet = "10.96.0.0/12" },
      proxy = {}, scheduler = {},
    },
    { apiVersion = "kubelet.config.k8s.io/v1beta1", kind = "KubeletConfiguration", cgroupDriver = "systemd",
      maxPods = 110, evictionHard = { ["memory.available"] = "100Mi" } },
  })
  lu.assertIs(getmetatable(docs[2].etcd["local"].extraArgs), yaml.array_mt)
  -- re-encoded with kubeadm's key order it reads back the same
  local again = yaml.encode_all(docs, { order = { "apiVersion", "kind" } })
  assert_same(yaml.decode_all(again), docs)
  lu.assertStrContains(again, "  - 10.0.0.1\n")
  lu.assertStrContains(again, "    value: \"400\"\n")
  lu.assertStrContains(again, "    extraArgs: []\n")
  lu.assertStrContains(again, "  taints: null\n")
end

os.exit(lu.LuaUnit.run("-v"))

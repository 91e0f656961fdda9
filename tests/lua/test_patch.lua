-- kboot.patch: RFC 6902 (the examples of its appendix A), RFC 7386 (its appendix A table) and the
-- strategic merge patch's rules, on values decoded by kboot.yaml as kboot.patches decodes them.
-- (The strategic merge against kubectl's own: tests/integration/test_patches_kubectl.lua.)
local lu = require("luaunit")
local yaml = require("kboot.yaml")
local cjson = require("cjson")
local patch = require("kboot.patch")

local function Y(s) return assert(yaml.decode(s)) end
-- a value as canonical JSON (keys sorted by cjson? no: compare through a sorted dump)
local function dump(v)
  local k = patch.kind(v)
  if k == "null" then return "null" end
  if k == "map" then
    local keys = {}
    for key in pairs(v) do keys[#keys + 1] = key end
    table.sort(keys)
    local out = {}
    for _, key in ipairs(keys) do out[#out + 1] = cjson.encode(key) .. ":" .. dump(v[key]) end
    return "{" .. table.concat(out, ",") .. "}"
  elseif k == "list" then
    local out = {}
    for i, x in ipairs(v) do out[i] = dump(x) end
    return "[" .. table.concat(out, ",") .. "]"
  end
  return cjson.encode(v)
end
local function same(got, want, msg) lu.assertEquals(dump(got), dump(Y(want)), msg) end

TestJsonPatch = {}

-- RFC 6902 appendix A, each example: document, patch, result (or the start of the error)
local RFC6902 = {
  { "A.1 add an object member", '{"foo": "bar"}', '[{"op": "add", "path": "/baz", "value": "qux"}]',
    '{"baz": "qux", "foo": "bar"}' },
  { "A.2 add an array element", '{"foo": ["bar", "baz"]}', '[{"op": "add", "path": "/foo/1", "value": "qux"}]',
    '{"foo": ["bar", "qux", "baz"]}' },
  { "A.3 remove an object member", '{"baz": "qux", "foo": "bar"}', '[{"op": "remove", "path": "/baz"}]', '{"foo": "bar"}' },
  { "A.4 remove an array element", '{"foo": ["bar", "qux", "baz"]}', '[{"op": "remove", "path": "/foo/1"}]',
    '{"foo": ["bar", "baz"]}' },
  { "A.5 replace a value", '{"baz": "qux", "foo": "bar"}', '[{"op": "replace", "path": "/baz", "value": "boo"}]',
    '{"baz": "boo", "foo": "bar"}' },
  { "A.6 move a value", '{"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}',
    '[{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]',
    '{"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}' },
  { "A.7 move an array element", '{"foo": ["all", "grass", "cows", "eat"]}',
    '[{"op": "move", "from": "/foo/1", "path": "/foo/3"}]', '{"foo": ["all", "cows", "eat", "grass"]}' },
  { "A.8 test a value: success", '{"baz": "qux", "foo": ["a", 2, "c"]}',
    '[{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}]',
    '{"baz": "qux", "foo": ["a", 2, "c"]}' },
  { "A.9 test a value: error", '{"baz": "qux"}', '[{"op": "test", "path": "/baz", "value": "bar"}]',
    false, 'operation 0 (test /baz): test failed: /baz is "qux", not "bar"' },
  { "A.10 add a nested member object", '{"foo": "bar"}', '[{"op": "add", "path": "/child", "value": {"grandchild": {}}}]',
    '{"foo": "bar", "child": {"grandchild": {}}}' },
  { "A.11 ignore unrecognized elements", '{"foo": "bar"}', '[{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]',
    '{"foo": "bar", "baz": "qux"}' },
  { "A.12 add to a nonexistent target", '{"foo": "bar"}', '[{"op": "add", "path": "/baz/bat", "value": "qux"}]',
    false, "operation 0 (add /baz/bat): path /baz/bat does not exist" },
  { "A.14 ~ escape ordering", '{"/": 9, "~1": 10}', '[{"op": "test", "path": "/~01", "value": 10}]', '{"/": 9, "~1": 10}' },
  { "A.15 comparing strings and numbers", '{"/": 9, "~1": 10}', '[{"op": "test", "path": "/~01", "value": "10"}]',
    false, 'operation 0 (test /~01): test failed: /~01 is 10, not "10"' },
  { "A.16 add an array value", '{"foo": ["bar"]}', '[{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]',
    '{"foo": ["bar", ["abc", "def"]]}' },
}

function TestJsonPatch:test_rfc6902_appendix_a()
  for _, c in ipairs(RFC6902) do
    local doc = Y(c[2])
    local before = dump(doc)
    local got, err = patch.json(doc, Y(c[3]))
    if c[4] then same(got, c[4], c[1] .. ": " .. tostring(err))
    else
      lu.assertNil(got, c[1])
      lu.assertEquals(err, c[5], c[1])
    end
    lu.assertEquals(dump(doc), before, c[1] .. ": the input is not changed")
  end
end

function TestJsonPatch:test_more_rules()
  local doc = Y('{"a": {"b": [1, 2]}, "c": "x"}')
  same(patch.json(doc, Y('[{"op": "copy", "from": "/a/b", "path": "/d"}]')), '{"a": {"b": [1, 2]}, "c": "x", "d": [1, 2]}')
  same(patch.json(doc, Y('[{"op": "replace", "path": "", "value": {"z": 1}}]')), '{"z": 1}')
  same(patch.json(doc, Y('[{"op": "add", "path": "/a/b/2", "value": 3}]')), '{"a": {"b": [1, 2, 3]}, "c": "x"}')
  same(patch.json(doc, Y('[{"op": "add", "path": "/n", "value": null}]')), '{"a": {"b": [1, 2]}, "c": "x", "n": null}')
  local bad = {
    { '[{"op": "add", "path": "/a/b/3", "value": 3}]', "operation 0 (add /a/b/3): index 3 is out of range at /a/b/3" },
    { '[{"op": "remove", "path": "/nope"}]', "operation 0 (remove /nope): path /nope does not exist" },
    { '[{"op": "replace", "path": "/a/x", "value": 1}]', "operation 0 (replace /a/x): path /a/x does not exist" },
    { '[{"op": "remove", "path": "/a/b/01"}]', "operation 0 (remove /a/b/01): path /a/b/01 does not exist" },
    { '[{"op": "move", "from": "/a", "path": "/a/b/x"}]', "operation 0 (move /a/b/x): cannot move /a into itself (/a/b/x)" },
    { '[{"op": "add", "path": "a", "value": 1}]', "operation 0 (add a): path \"a\" does not start with '/'" },
    { '[{"op": "add", "path": "/x"}]', "operation 0 (add /x): no value" },
    { '[{"op": "copy", "path": "/x"}]', "operation 0 (copy /x): no from" },
    { '[{"op": "frob", "path": "/x"}]', 'operation 0: unknown op "frob" (add, remove, replace, move, copy, test)' },
    { '[{"path": "/x"}]', "operation 0: unknown op nil (add, remove, replace, move, copy, test)" },
    { '{"op": "add"}', "a JSON patch must be an array of operations, not map" },
    { '[{"op": "test", "path": "/c", "value": "x"}, {"op": "remove", "path": "/zz"}]', "operation 1 (remove /zz): path /zz does not exist" },
  }
  for _, b in ipairs(bad) do
    local got, err = patch.json(doc, Y(b[1]))
    lu.assertNil(got, b[1])
    lu.assertEquals(err, b[2])
  end
end

TestMergePatch = {}

-- RFC 7386 appendix A: original, patch, result
local RFC7386 = {
  { '{"a":"b"}', '{"a":"c"}', '{"a":"c"}' },
  { '{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}' },
  { '{"a":"b"}', '{"a":null}', '{}' },
  { '{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}' },
  { '{"a":["b"]}', '{"a":"c"}', '{"a":"c"}' },
  { '{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}' },
  { '{"a": {"b": "c"}}', '{"a": {"b": "d", "c": null}}', '{"a": {"b": "d"}}' },
  { '{"a": [{"b":"c"}]}', '{"a": [1]}', '{"a": [1]}' },
  { '{"e":null}', '{"a":1}', '{"e":null,"a":1}' },
  { '[1,2]', '{"a":"b","c":null}', '{"a":"b"}' },
  { '{}', '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}' },
}

function TestMergePatch:test_rfc7386_appendix_a()
  for _, c in ipairs(RFC7386) do
    same(patch.merge(Y(c[1]), Y(c[2])), c[3], c[1] .. " + " .. c[2])
  end
  -- a patch that is not an object replaces the document in the RFC; kubeadm's library refuses it
  local got, err = patch.merge(Y('{"a": 1}'), Y('["b"]'))
  lu.assertNil(got)
  lu.assertEquals(err, "a merge patch must be an object, not list")
end

TestStrategic = {}

local POD = [[
apiVersion: v1
kind: Pod
metadata:
  name: p
  labels: {a: "1"}
spec:
  containers:
  - name: one
    image: i1
    args: [x, y]
    env:
    - {name: A, value: "1"}
    - {name: B, value: "2"}
    volumeMounts:
    - {name: v, mountPath: /v}
  - name: two
    image: i2
  volumes:
  - {name: v, hostPath: {path: /v}}
  tolerations:
  - {key: k, operator: Exists}
]]

function TestStrategic:test_lists_merge_by_key_in_apimachinerys_order()
  local pod = Y(POD)
  local got = assert(patch.strategic(pod, Y([[
spec:
  containers:
  - name: one
    env:
    - {name: B, value: "20"}
    - {name: C, value: "3"}
    volumeMounts:
    - {name: w, mountPath: /w}
  - name: three
    image: i3
]]), patch.schemas.Pod))
  local c = got.spec.containers
  -- apimachinery's order: the patch's items in its order, each original item kept before the patch
  -- items that followed it in the original; "three" is new, so it goes before "two"
  lu.assertEquals({ c[1].name, c[2].name, c[3].name }, { "one", "three", "two" })
  same(c[1].env, '[{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]')
  same(c[1].volumeMounts, '[{"name": "w", "mountPath": "/w"}, {"name": "v", "mountPath": "/v"}]')
  lu.assertEquals(c[1].image, "i1")
  -- a new item alone before the original ones
  got = assert(patch.strategic(pod, Y('{"spec": {"containers": [{"name": "zero", "image": "i0"}]}}'), patch.schemas.Pod))
  lu.assertEquals({ got.spec.containers[1].name, got.spec.containers[2].name }, { "zero", "one" })
  lu.assertEquals(#pod.spec.containers, 2, "the input is not changed")
end

function TestStrategic:test_replace_lists_maps_and_nulls()
  local got = assert(patch.strategic(Y(POD), Y([[
metadata: {labels: {a: null, b: "2"}}
spec:
  containers:
  - {name: two, args: [z]}
  - {name: one, args: [only]}
  tolerations: [{operator: Exists}]
]]), patch.schemas.Pod))
  same(got.metadata.labels, '{"b": "2"}')
  -- the patch's order wins for the items it names
  lu.assertEquals({ got.spec.containers[1].name, got.spec.containers[2].name }, { "two", "one" })
  same(got.spec.containers[2].args, '["only"]', "args are replaced, not merged")
  same(got.spec.containers[1].args, '["z"]')
  same(got.spec.tolerations, '[{"operator": "Exists"}]', "tolerations have no merge key: replaced")
end

function TestStrategic:test_directives()
  local S = patch.schemas.Pod
  local got = assert(patch.strategic(Y(POD), Y('{"spec": {"containers": [{"name": "two", "$patch": "delete"}]}}'), S))
  lu.assertEquals(#got.spec.containers, 1)
  got = assert(patch.strategic(Y(POD), Y('{"spec": {"volumes": [{"$patch": "replace"}, {"name": "n", "emptyDir": {}}]}}'), S))
  same(got.spec.volumes, '[{"name": "n", "emptyDir": {}}]')
  got = assert(patch.strategic(Y(POD), Y('{"metadata": {"labels": {"$patch": "replace", "z": "9"}}}'), S))
  same(got.metadata.labels, '{"z": "9"}')
  got = assert(patch.strategic(Y(POD), Y('{"spec": {"containers": [{"name": "one", "$deleteFromPrimitiveList/args": ["x"]}]}}'), S))
  same(got.spec.containers[1].args, '["y"]')
  got = assert(patch.strategic(Y(POD), Y('{"spec": {"$setElementOrder/containers": [{"name": "two"}, {"name": "one"}], "containers": [{"name": "one", "image": "j"}]}}'), S))
  lu.assertEquals({ got.spec.containers[1].name, got.spec.containers[2].name, got.spec.containers[2].image }, { "two", "one", "j" })
  got = assert(patch.strategic(Y(POD), Y('{"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}]}}'), S))
  same(got.spec.volumes, '[{"name": "v", "emptyDir": {}}]')
  local bad = {
    { '{"spec": {"containers": [{"image": "x"}]}}', '$.spec.containers: {"image":"x"} has no merge key name' },
    { '{"spec": {"containers": [{"$patch": "merge"}]}}', "$.spec.containers: $patch: merge is not allowed in a list" },
    { '{"spec": {"$patch": "frob"}}', '$.spec: unknown $patch "frob" in an object (replace or delete)' },
    { '["x"]', "a strategic merge patch must be an object, not list" },
  }
  for _, b in ipairs(bad) do
    local r, err = patch.strategic(Y(POD), Y(b[1]), S)
    lu.assertNil(r, b[1])
    lu.assertEquals(err, b[2])
  end
end

function TestStrategic:test_without_schema_lists_are_replaced()
  -- KubeletConfiguration's Go type has no patch tags: maps merge, lists are replaced
  local got = assert(patch.strategic(Y('{"clusterDNS": ["10.96.0.10"], "featureGates": {"A": true}}'),
    Y('{"clusterDNS": ["10.0.0.10", "10.0.0.11"], "featureGates": {"B": false}}')))
  same(got, '{"clusterDNS": ["10.0.0.10", "10.0.0.11"], "featureGates": {"A": true, "B": false}}')
end

os.exit(lu.LuaUnit.run())

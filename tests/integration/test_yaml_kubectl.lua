-- kboot.yaml against real readers and writers: kubectl (Go's yaml, as the API machinery uses)
-- and, when installed, PyYAML (a YAML 1.1 reader: the strictest test of our quoting).
local lu = require("luaunit")
local t = require("testlib")
local yaml = require("kboot.yaml")
local cjson = require("cjson")

-- Values whose YAML form is easy to get wrong.
local tricky = {
  port = "6443", truth = "true", yes = "yes", no = "NO", on = "on", y = "y", tilde = "~", null_word = "null",
  empty = "", dash = "-leading-dash", dash_space = "- item", dashes = "---", dots = "...",
  flags = "--advertise-address=10.0.0.1", colon = "a: b", hash = "a #b", bang = "!tag", star = "*alias",
  amp = "&anchor", pct = "%x", at = "@x", backtick = "`x", brace = "{a}", bracket = "[a]", quote = "'q'",
  dquote = '"dq"', backslash = "C:\\path\\x", hex = "0x1F", octal = "0o17", oldoctal = "0644", float = "1e3",
  dotfloat = ".5", inf = ".inf", sexagesimal = "1:30", date = "2024-01-31", timestamp = "2024-01-31T10:00:00Z",
  underscore = "1_000", binary = "0b101", merge = "<<", equals = "=", spaces = "  padded  ", tab = "a\tb",
  unicode = "ünïcødé ☃ 日本語 😀", nbsp = "x\194\160y",
  multiline = "line one\nline two\n", nofinal = "first\nsecond", keep = "a\nb\n\n\n", leading_nl = "\n\nafter\n",
  script = "#!/bin/sh\nset -e\nif [ -f /x ]; then\n\techo \"a: b\" # not a comment\nfi\n",
  trailing_space = "line \nnext\n", crlf = "windows\r\nline\r\n", control = "bell\7esc\27",
  long = ("word "):rep(60) .. "end", url = "https://10.0.0.1:6443/api?x=1#frag", ip = "192.168.1.10",
  cidr = "10.96.0.0/12", version = "v1.31.0", semver = "1.31.0", quantity = "250m",
}

local function copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = copy(x) end
  return setmetatable(c, getmetatable(v))
end

local function pod()
  local annotations = copy(tricky)
  return {
    apiVersion = "v1", kind = "Pod",
    metadata = { name = "tricky", namespace = "kube-system", annotations = annotations,
                 labels = { component = "etcd", tier = "control-plane" } },
    spec = {
      hostNetwork = true, priority = 2000001000, terminationGracePeriodSeconds = 30,
      containers = { {
        name = "etcd", image = "registry.k8s.io/etcd:3.5.15-0",
        command = { "etcd", "--listen-client-urls=https://127.0.0.1:2379", "-leading", "6443", "true", "multi\nline\n" },
        env = { { name = "PORT", value = "6443" }, { name = "FLAG", value = "true" }, { name = "U", value = "日本" } },
        ports = { { containerPort = 2381, name = "probe-port", protocol = "TCP" } },
        resources = { requests = { cpu = "100m", memory = "100Mi" } },
      } },
      volumes = { { name = "etcd-data", hostPath = { path = "/var/lib/etcd", type = "DirectoryOrCreate" } } },
      tolerations = setmetatable({}, yaml.array_mt),
    },
  }
end

local function configmap()
  return { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "tricky-cm", namespace = "default" },
           data = copy(tricky) }
end

-- Equality as JSON sees it: numbers by value (cjson reads every number as a float), an empty
-- table equal to an empty table whatever its metatable.
local function json_same(a, b, path)
  path = path or "value"
  if type(a) == "number" and type(b) == "number" then return a == b, path end
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) ~= "table" then return a == b, ("%s: %q vs %q"):format(path, tostring(a), tostring(b)) end
  for k, v in pairs(a) do
    local ok, where = json_same(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, where end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": missing on the left" end
  end
  return true
end

local function assert_json_same(a, b)
  local ok, where = json_same(a, b)
  if not ok then lu.fail("differs at " .. where) end
end

local function kubectl_label(file, fmt)
  -- --local: no cluster, no API discovery; kubectl reads, adds a label, writes back
  return t.must("kubectl label --local -f " .. t.q(file) .. " kboot-test=yes -o " .. fmt .. " 2>&1")
end

local function without_test_label(obj)
  obj.metadata.labels["kboot-test"] = nil
  if next(obj.metadata.labels) == nil then obj.metadata.labels = nil end
  return obj
end

TestKubectl = {}
function TestKubectl:setUp() self.dir = t.tmpdir() end
function TestKubectl:tearDown() t.cleanup() end

function TestKubectl:test_kubectl_reads_what_we_write()
  for _, obj in ipairs({ pod(), configmap() }) do
    local file = self.dir .. "/obj.yaml"
    t.write(file, yaml.encode(obj, { order = { "apiVersion", "kind", "metadata", "spec", "data" } }))
    local got = without_test_label(cjson.decode(kubectl_label(file, "json")))
    assert_json_same(got, obj)
    -- and its YAML, written by Go, reads back to our values (integers stay integers)
    local back, err = yaml.decode(kubectl_label(file, "yaml"))
    lu.assertNil(err)
    back = without_test_label(back)
    assert_json_same(back, obj)
    if obj.kind == "Pod" then
      lu.assertEquals(math.type(back.spec.priority), "integer")
      lu.assertEquals(math.type(back.spec.containers[1].ports[1].containerPort), "integer")
      lu.assertEquals(back.spec.containers[1].env[1].value, "6443")
    end
  end
end

function TestKubectl:test_multi_document_file()
  local file = self.dir .. "/list.yaml"
  t.write(file, yaml.encode_all({ pod(), configmap() }))
  -- kubectl prints one pretty JSON object per document, one after the other
  local out = kubectl_label(file, "json")
  local items = cjson.decode("[" .. out:gsub("\n}\n{\n", "\n},\n{\n") .. "]")
  lu.assertEquals(#items, 2)
  assert_json_same(without_test_label(items[1]), pod())
  assert_json_same(without_test_label(items[2]), configmap())
end

-- Byte for byte what kubectl writes (Go's yaml sorts keys too), apart from our deliberate
-- differences: Go folds plain text over 80 columns, escapes emoji, writes 1e+20 and 3 for floats,
-- and leaves ":x", "?x", "=", "<<" plain (PyYAML would misread "=").
function TestKubectl:test_same_bytes_as_kubectl()
  local obj = pod()
  obj.metadata.labels["kboot-test"] = "yes"
  local a = obj.metadata.annotations
  a.long, a.unicode, a.merge, a.equals = nil, "ünïcødé ☃ 日本語", nil, nil
  obj.spec.containers[1].args = { "--v=2", "  spaced", "a: b", "it's", "x\ny", " lead\n", "\n", "tab\t" }
  local file = self.dir .. "/pod.yaml"
  local ours = yaml.encode(obj)
  t.write(file, ours)
  local theirs = t.must("kubectl label --local --overwrite -f " .. t.q(file) .. " kboot-test=yes -o yaml 2>&1")
  lu.assertEquals(ours, theirs)
  local cm = configmap()
  cm.data.long, cm.data.unicode, cm.data.merge, cm.data.equals = nil, nil, nil, nil
  cm.metadata.labels = { ["kboot-test"] = "yes" }
  ours = yaml.encode(cm)
  t.write(file, ours)
  theirs = t.must("kubectl label --local --overwrite -f " .. t.q(file) .. " kboot-test=yes -o yaml 2>&1")
  lu.assertEquals(ours, theirs)
end

-- Go writes the YAML (folding long strings, choosing its own quotes) from JSON we hand it.
function TestKubectl:test_we_read_what_kubectl_writes()
  local file = self.dir .. "/cm.json"
  local cm = configmap()
  cm.data.long2 = ("x"):rep(30) .. " " .. ("y y "):rep(40) .. "\"quoted\" and 'single'"
  cm.data.folded = ("long line with spaces "):rep(10) .. "\nsecond line\n"
  cm.data.keep_crlf = "a\r\nb"
  t.write(file, cjson.encode(cm))
  local out = kubectl_label(file, "yaml")
  local back, err = yaml.decode(out)
  lu.assertNil(err, out)
  assert_json_same(without_test_label(back), cm)
end

-- Random strings built from the pieces quoting rules care about, as values and as keys.
local function random_strings(seed, count)
  math.randomseed(seed)
  local pieces = { "a", "Z", "0", "1", "7", "9", ".", "-", "+", "_", ":", " ", "  ", "#", "'", '"', "\\", "\n",
                   "\t", "\r", "?", ",", "[", "]", "{", "}", "&", "*", "!", "|", ">", "%", "@", "`", "~", "e", "x",
                   "o", "b", "true", "null", "yes", "Off", "y", "0x", "0o", "0b", ".inf", ".nan", "<<", "=", "---",
                   "...", "2024-01-31", "1:30", "1_0", "é", "☃", "😀", "\194\133", "\0", "\127", "\226\128\168",
                   "\239\187\191" }
  local out, seen = {}, {}
  while #out < count do
    local parts = {}
    for j = 1, math.random(1, 5) do parts[j] = pieces[math.random(#pieces)] end
    local str = table.concat(parts)
    if not seen[str] then
      seen[str] = true
      out[#out + 1] = str
    end
  end
  return out
end

local function random_configmap()
  local strs = random_strings(20261125, 800)
  local cm = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "random" }, data = {} }
  for i, str in ipairs(strs) do
    cm.data[("v%03d"):format(i)] = str
    if i <= 400 then cm.data["k:" .. str] = ("%d"):format(i) end
  end
  return cm
end

function TestKubectl:test_random_strings()
  local cm = random_configmap()
  local file = self.dir .. "/random.yaml"
  t.write(file, yaml.encode(cm))
  assert_json_same(without_test_label(cjson.decode(kubectl_label(file, "json"))), cm)
end

TestPyYAML = {}
function TestPyYAML:setUp()
  self.dir = t.tmpdir()
  if not t.sh("python3 -c 'import yaml'") then lu.skip("PyYAML (python3-yaml) not installed") end
end
function TestPyYAML:tearDown() t.cleanup() end

-- PyYAML resolves YAML 1.1: yes/no/on/off booleans, 0644 octal, 1:30 sexagesimal, timestamps.
-- If any of our plain strings were retyped, the JSON it prints would differ (or fail on a date).
function TestPyYAML:test_yaml11_reader_reads_our_strings_as_strings()
  local file = self.dir .. "/x.yaml"
  local docs = { tricky, pod(), { list = { 1, 2.5, true, yaml.null, "x" }, nested = { { a = { b = { "c" } } } } } }
  t.write(file, yaml.encode_all(docs))
  local out = t.must("python3 -c 'import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1], encoding=\"utf-8\")))))' " .. t.q(file))
  local got = cjson.decode(out)
  lu.assertEquals(#got, 3)
  for i = 1, 3 do assert_json_same(got[i], docs[i]) end
end

function TestPyYAML:test_random_strings()
  local cm = random_configmap()
  local file = self.dir .. "/random.yaml"
  t.write(file, yaml.encode(cm))
  local out = t.must("python3 -c 'import sys, json, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding=\"utf-8\"))))' " .. t.q(file))
  assert_json_same(cjson.decode(out), cm)
end

-- PyYAML's own emitter (another style of quoting and folding) read by us.
function TestPyYAML:test_we_read_pyyaml_output()
  local file = self.dir .. "/in.json"
  -- PyYAML writes 1e3 and 0o17 plain: strings to YAML 1.1, numbers to 1.2 readers (Go's yaml and
  -- ours), so those two are left out here
  local strings = copy(tricky)
  strings.float, strings.octal = nil, nil
  local p = pod()
  p.metadata.annotations = strings
  t.write(file, cjson.encode({ strings, p }))
  for _, style in ipairs({ "default_flow_style=False", "default_flow_style=True", "default_style='\"'",
                           "default_flow_style=False, allow_unicode=True, width=20" }) do
    local py = "import sys, json, yaml; print(yaml.safe_dump_all(json.load(open(sys.argv[1])), " .. style .. "))"
    local out = t.must("python3 -c " .. t.q(py) .. " " .. t.q(file))
    local docs, err = yaml.decode_all(out)
    lu.assertNil(err, style .. "\n" .. out)
    assert_json_same(docs, { strings, p })
  end
end

os.exit(lu.LuaUnit.run("-v"))

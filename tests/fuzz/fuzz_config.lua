-- A structure-aware fuzzer of kboot's configuration loaders (kboot.config, kboot.join_config,
-- kboot.reset_config), run in-process by the kboot host:
--   kboot tests/fuzz/fuzz_config.lua [--seed N] [--iterations N] [--seconds S] [--out DIR]
-- It takes the valid configurations under tests/fuzz/corpus/config, mutates them (values of
-- another type, deleted and unknown fields, huge numbers, odd strings, deep nesting, swapped
-- kinds, and sometimes the YAML bytes themselves), and gives each result to every loader. A
-- loader may accept the input or refuse it with one-line errors; anything else (a Lua runtime
-- error, a traceback, a multi-line or non-string error) is a finding: the input is printed as
-- YAML (and written to DIR with --out), and the exit status is 1.
local yaml = require("kboot.yaml")
local null = yaml.null

local SRC = os.getenv("KBOOT_SRC") or "."
local CORPUS = SRC .. "/tests/fuzz/corpus/config"

local opts = { seed = 1, iterations = 1000 }
do
  local a = { ... }
  if #a == 0 and arg then a = { table.unpack(arg, 1) } end
  local i = 1
  while i <= #a do
    local k, v = a[i]:match("^%-%-(%w+)$"), a[i + 1]
    if not k or v == nil then io.stderr:write("usage: fuzz_config.lua [--seed N] [--iterations N] [--seconds S] [--out DIR]\n"); os.exit(2) end
    opts[k] = tonumber(v) or v
    i = i + 2
  end
end
if opts.seconds then opts.iterations = math.maxinteger end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local seeds = {}
do
  local p = assert(io.popen("ls " .. CORPUS))
  for name in p:lines() do
    if name:match("%.yaml$") then seeds[#seeds + 1] = assert(yaml.decode_all(read(CORPUS .. "/" .. name))) end
  end
  p:close()
  assert(#seeds > 0, "no seeds in " .. CORPUS)
end

---------------------------------------------------------------------------------------------------
-- values and mutations
local R = math.random

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end

local function pick(t) return t[R(#t)] end

local STRINGS = {
  "", " ", "0", "-1", "1.5s", "0s", "-5m", "9223372036854775807s", "2562047h", "1e400", "0x10", "true",
  "null", "~", "/", "..", "/etc/kubernetes/../../tmp", "relative/path", "\0", "a\nb", "é", "\xff\xfe",
  "10.0.0.1", "10.0.0.1/33", "::", "::1", "[::1]:6443", "host:99999", "host:", ":6443", "unix://", "*",
  "abcdef.0123456789abcdef", "sha256:", "%s%d%q", "${HOME}", "v1.31.0", "v999.0.0", "RSA-2048",
  "NoSchedule", "kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4", "InitConfiguration",
  "ClusterConfiguration", "JoinConfiguration", "ResetConfiguration", "KubeletConfiguration",
  ("x"):rep(300), ("a."):rep(200), "100Mi", "500m", "1Ki", "1e3", ".5", "+", "-",
}
local NUMBERS = { 0, 1, -1, 2, 6443, 65536, 1.5, -0.0, 1e308, -1e308, math.maxinteger, math.mininteger,
                  2 ^ 53, 1 / 0, -1 / 0, 0 / 0 }
local KEYS = { "extraArgs", "kubeletExtraArgs", "nodeRegistration", "apiServer", "etcd", "local", "external",
               "networking", "timeouts", "discovery", "bootstrapToken", "controlPlane", "certSANs", "taints",
               "name", "value", "unknownField", "1", "", "kind", "apiVersion", "featureGates" }

local function random_value(depth)
  depth = depth or 0
  local r = R(depth > 2 and 6 or 9)
  if r == 1 then return pick(STRINGS)
  elseif r == 2 then return pick(NUMBERS)
  elseif r == 3 then return R(2) == 1
  elseif r == 4 then return null
  elseif r == 5 then return R(1000000) - 500000
  elseif r == 6 then return pick(STRINGS) .. pick(STRINGS)
  elseif r == 7 then return setmetatable({}, yaml.array_mt)
  elseif r == 8 then
    local t = setmetatable({}, yaml.array_mt)
    for i = 1, R(3) do t[i] = random_value(depth + 1) end
    return t
  else
    local t = {}
    for _ = 1, R(3) do t[pick(KEYS)] = random_value(depth + 1) end -- (keys in KEYS order: replayable)
    return t
  end
end

local function nest(v, n)
  for _ = 1, n do
    if R(2) == 1 then v = setmetatable({ v }, yaml.array_mt) else v = { [pick(KEYS)] = v } end
  end
  return v
end

-- every (parent, key) of a document tree, so one can be picked at random; in key order, since
-- pairs' order changes from run to run (Lua seeds its string hashes) and a seed must replay
local function slots(t, out)
  out = out or {}
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b)
    if type(a) ~= type(b) then return type(a) < type(b) end
    if type(a) == "number" or type(a) == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  for _, k in ipairs(ks) do
    out[#out + 1] = { t, k }
    if type(t[k]) == "table" then slots(t[k], out) end
  end
  return out
end

local MUTATORS = {
  function(_, t, k) t[k] = random_value() end,                       -- a value of another type
  function(_, t, k) t[k] = nil end,                                  -- a deleted field
  function(_, t, k) t[k] = pick(NUMBERS) end,                        -- huge, negative, fractional numbers
  function(_, t, k) t[k] = pick(STRINGS) end,                        -- odd strings
  function(_, t, k) t[k] = nest(t[k], R(200)) end,                   -- deep nesting
  function(_, t, k)                                                   -- an extra field beside it
    if type(k) == "string" then t[pick(KEYS)] = random_value() else t[k + 1] = copy(t[k]) end
  end,
  function(_, t, k) if type(t[k]) == "table" then t[k] = next(t[k]) and setmetatable({}, yaml.array_mt) or {} end end,
  function(docs)                                                      -- a document dropped or doubled
    if R(2) == 1 then table.remove(docs, R(#docs)) else docs[#docs + 1] = copy(docs[R(#docs)]) end
  end,
  function(docs) docs[R(#docs)] = random_value() end,                 -- a document that is not a mapping
  function(docs)                                                      -- another document's kind
    local d = docs[R(#docs)]
    if type(d) == "table" then d.kind = pick(STRINGS) end
  end,
  function(docs)                                                      -- a document of another seed
    local other = pick(seeds)
    docs[#docs + 1] = copy(other[R(#other)])
  end,
}

local function mutate(docs)
  for _ = 1, R(4) do
    local m = pick(MUTATORS)
    local s = #docs > 0 and slots(docs) or {}
    if #s == 0 then docs[1] = random_value() else
      local slot = pick(s)
      m(docs, slot[1], slot[2])
    end
  end
  return docs
end

-- byte-level damage to the YAML text: the decoder's errors must be one line too
local function damage(text)
  if #text == 0 then return text end
  for _ = 1, R(3) do
    local i = R(#text)
    local r = R(4)
    if r == 1 then text = text:sub(1, i - 1) .. string.char(R(256) - 1) .. text:sub(i + 1)
    elseif r == 2 then text = text:sub(1, i - 1) .. text:sub(i + R(20))
    elseif r == 3 then text = text:sub(1, i) .. pick({ ":", "- ", "\n", "{", "[", "&a ", "*a", "!!binary ", "'", '"', "\t", "---\n" }) .. text:sub(i + 1)
    else local j = R(#text); text = text:sub(1, i) .. text:sub(j, j + R(40)) .. text:sub(i + 1) end
  end
  return text
end

---------------------------------------------------------------------------------------------------
-- the oracle
local LOADERS = {
  { "kboot.config", require("kboot.config") },
  { "kboot.join_config", require("kboot.join_config") },
  { "kboot.reset_config", require("kboot.reset_config") },
}
local HOST = { hostname = "node-1", default_address = "10.0.0.5" }

-- nil when the loader behaved, else what went wrong
local function judge(mod, input)
  local o = { host = HOST }
  for k, v in pairs(input) do o[k] = v end
  local ok, parts, errs = pcall(mod.load, o)
  if not ok then return "raised: " .. tostring(parts) end
  if parts then return nil, true end
  if type(errs) ~= "table" or #errs == 0 then return "refused without errors" end
  for _, e in ipairs(errs) do
    if type(e) ~= "string" then return "an error that is not a string: " .. tostring(e) end
    if e:find("\n", 1, true) then return "a multi-line error: " .. e end
    if e:find("traceback", 1, true) or e:find("%.lua:%d+:") or e:find("attempt to ") or e:find("bad argument") then
      return "an internal error: " .. e
    end
  end
  return nil
end

local function dump(input)
  if input.text then return input.text end
  local ok, text = pcall(yaml.encode_all, input.docs)
  return ok and text or ("-- (not encodable as YAML: " .. tostring(text) .. ")\n")
end

math.randomseed(opts.seed)
local started, n, accepted, findings = os.time(), 0, 0, 0
local deadline = opts.seconds and started + opts.seconds
for it = 1, opts.iterations do
  if deadline and os.time() >= deadline then break end
  local docs = mutate(copy(pick(seeds)))
  local input = { docs = docs }
  if R(4) == 1 then
    local ok, text = pcall(yaml.encode_all, docs)
    if ok and type(text) == "string" then input = { text = R(2) == 1 and damage(text) or text } end
  end
  for _, l in ipairs(LOADERS) do
    local why, ok = judge(l[2], input)
    if ok then accepted = accepted + 1 end
    if why then
      findings = findings + 1
      io.stderr:write(("finding %d (seed %d, iteration %d, %s): %s\n%s\n"):format(findings, opts.seed, it, l[1], why, dump(input)))
      if opts.out then
        local f = io.open(("%s/finding-%d-%d.yaml"):format(opts.out, opts.seed, it), "wb")
        if f then f:write(dump(input)); f:close() end
      end
    end
  end
  n = n + 1
end
print(("fuzz_config: seed %d, %d inputs x %d loaders in %ds, %d accepted, %d finding(s)")
  :format(opts.seed, n, #LOADERS, os.time() - started, accepted, findings))
os.exit(findings == 0 and 0 or 1)

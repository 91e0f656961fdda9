-- docs/customising.md, run as written: each "## " section's files (`<!-- file: PATH -->` before a
-- fenced block) are written into a scratch directory, each line of its `<!-- run -->` blocks runs
-- there with this build's kboot first on PATH (a line ending in `# exit N` must exit N, every other
-- line 0), and every line of its `<!-- output -->` blocks must be among what those commands printed
-- ("..." stands for anything). Then what each example promises is checked on the files it wrote.
local lu = require("luaunit")
local t = require("testlib")
local yaml = require("kboot.yaml")

local DOC = t.src .. "/docs/customising.md"

-- { { title =, files = { {path, text} }, runs = { line, ... }, outputs = { line, ... } }, ... }
local function sections()
  local out, cur, pending = {}, nil, nil
  local text = t.read(DOC)
  local lines = {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  local i = 1
  while i <= #lines do
    local l = lines[i]
    local title = l:match("^## (.*)")
    if title then cur = { title = title, files = {}, runs = {}, outputs = {} }; out[#out + 1] = cur end
    local file = l:match("^<!%-%- file: (%S+) %-%->$")
    if file then pending = { "file", file }
    elseif l == "<!-- run -->" then pending = { "run" }
    elseif l == "<!-- output -->" then pending = { "output" }
    elseif l:match("^```") then
      local body = {}
      i = i + 1
      while not lines[i]:match("^```") do body[#body + 1] = lines[i]; i = i + 1 end
      if pending and cur then
        if pending[1] == "file" then cur.files[#cur.files + 1] = { pending[2], table.concat(body, "\n") .. "\n" }
        elseif pending[1] == "run" then for _, b in ipairs(body) do cur.runs[#cur.runs + 1] = b end
        else for _, b in ipairs(body) do cur.outputs[#cur.outputs + 1] = b end end
      end
      pending = nil
    end
    i = i + 1
  end
  return out
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- runs a section in a fresh directory -> dir, everything its commands printed
local function run(s)
  local dir, bin = t.tmpdir(), t.tmpdir()
  t.must(("ln -s %s %s/kboot"):format(t.q(t.bin), t.q(bin)))
  for _, f in ipairs(s.files) do
    local sub = f[1]:match("^(.*)/[^/]*$")
    if sub then t.must("mkdir -p " .. t.q(dir .. "/" .. sub)) end
    t.write(dir .. "/" .. f[1], f[2])
  end
  local printed = {}
  for _, line in ipairs(s.runs) do
    if trim(line) ~= "" and not trim(line):match("^#") then
      local want = tonumber(line:match("#%s*exit (%d+)%s*$") or "0")
      -- t.sh runs "(cmd) 2>&1": a comment must end before the ")"
      local ok, out, code = t.sh(("cd %s && PATH=%s:$PATH; %s\n"):format(t.q(dir), t.q(bin), line))
      lu.assertEquals(ok and 0 or code, want, ("%s: `%s` printed:\n%s"):format(s.title, line, out))
      printed[#printed + 1] = out
    end
  end
  local all = table.concat(printed, "\n")
  local have = {}
  for l in all:gmatch("[^\n]+") do have[#have + 1] = trim(l) end
  for _, o in ipairs(s.outputs) do
    local pat = "^" .. trim(o):gsub("%p", "%%%0"):gsub("%%%.%%%.%%%.", ".*") .. "$"
    local found = false
    for _, h in ipairs(have) do if h:match(pat) then found = true break end end
    lu.assertTrue(found, ("%s: the documented output line\n  %s\nis not in what the commands printed:\n%s"):format(s.title, o, all))
  end
  return dir, all
end

local S = sections()
local function section(prefix)
  for _, s in ipairs(S) do if s.title:sub(1, #prefix) == prefix then return s end end
  error("docs/customising.md has no section " .. prefix)
end

TestCustomisingDoc = {}
function TestCustomisingDoc:tearDown() t.cleanup() end

function TestCustomisingDoc:test_the_doc_has_three_worked_examples()
  for _, p in ipairs({ "1. ", "2. ", "3. " }) do
    local s = section(p)
    lu.assertTrue(#s.files > 0 and #s.runs > 0 and #s.outputs > 0, s.title)
  end
end

function TestCustomisingDoc:test_1_configuration_and_patches()
  local dir = run(section("1. "))
  local pod = assert(yaml.decode(t.read(dir .. "/node/etc/kubernetes/manifests/kube-apiserver.yaml")))
  local c = pod.spec.containers[1]
  lu.assertEquals(c.resources.requests.cpu, "500m")
  lu.assertEquals(c.command[#c.command], "--request-timeout=2m0s")
  lu.assertEquals(c.command[1], "kube-apiserver")
  lu.assertEquals(assert(yaml.decode(t.read(dir .. "/node/var/lib/kubelet/config.yaml"))).maxPods, 60)
  -- the dry run wrote nothing but showed the patched manifest
  lu.assertStrContains(t.read(dir .. "/dry-run.txt"), "        cpu: 500m\n")
end

function TestCustomisingDoc:test_2_an_override_module()
  local _, printed = run(section("2. "))
  lu.assertStrContains(printed, "[scripts] kboot.preflight from site-scripts/kboot/preflight.lua (overrides the built-in)")
  lu.assertStrContains(printed, "--ignore-preflight-errors=SiteApproved")
end

function TestCustomisingDoc:test_3_your_own_entry_script()
  local dir = run(section("3. "))
  local summary = t.read(dir .. "/node3/etc/kubernetes/site-summary.txt")
  lu.assertEquals(select(2, summary:gsub("\n", "")), 4)
  -- the script's init is kboot's: the keys are ECDSA, as its configuration says
  lu.assertStrContains(t.must("openssl pkey -in " .. t.q(dir .. "/node3/etc/kubernetes/pki/ca.key") .. " -noout -text"), "ASN1 OID: prime256v1")
end

os.exit(lu.LuaUnit.run())

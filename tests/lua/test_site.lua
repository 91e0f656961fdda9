-- In-process (so the sanitizer and valgrind runs see the C): kboot.hostfs, kboot.scripts (every
-- embedded source decompressed equals its file), kboot.site, and kboot.patches' file names and
-- directory reading.
local lu = require("luaunit")
local t = require("testlib")
local hostfs = require("kboot.hostfs")
local scripts = require("kboot.scripts")
local site = require("kboot.site")
local patches = require("kboot.patches")

TestHostfs = {}
function TestHostfs:tearDown() t.cleanup() end

function TestHostfs:test_list_stat_cwd()
  local d = t.tmpdir()
  for _, n in ipairs({ "b", "a+x", "a.y", "Z" }) do t.write(d .. "/" .. n, n) end
  t.must("mkdir " .. t.q(d .. "/sub") .. " && ln -s sub " .. t.q(d .. "/link"))
  lu.assertEquals(hostfs.list(d), { "Z", "a+x", "a.y", "b", "link", "sub" })
  lu.assertEquals(hostfs.stat(d .. "/a.y"), { type = "file", size = 3, mode = tonumber(t.must("stat -c %a " .. t.q(d .. "/a.y")), 8) })
  lu.assertEquals(hostfs.stat(d .. "/link").type, "dir")
  lu.assertEquals(hostfs.stat("/dev/null").type, "other")
  local r, err = hostfs.list(d .. "/nope")
  lu.assertNil(r)
  lu.assertEquals(tostring(err), "cannot list " .. d .. "/nope: No such file or directory")
  lu.assertEquals(err.code, 2)
  r, err = hostfs.stat(d .. "/nope")
  lu.assertNil(r)
  lu.assertEquals(tostring(err), d .. "/nope: No such file or directory")
  lu.assertEquals(hostfs.cwd(), (t.must("pwd"):gsub("\n$", "")))
end

TestScripts = {}
function TestScripts:tearDown() t.cleanup() end

function TestScripts:test_every_source_is_its_file()
  local list = scripts.list()
  lu.assertTrue(#list >= 40)
  for _, e in ipairs(list) do
    local want = t.read(t.src .. "/" .. e.path)
    lu.assertEquals(scripts.source(e.name), want, e.path)
    lu.assertEquals(e.size, #want)
    lu.assertEquals(e.command, not e.name:find(".", 1, true))
    lu.assertEquals(select(2, scripts.origin(e.name)), e.path)
  end
  local r, err = scripts.source("kboot.nothing")
  lu.assertNil(r)
  lu.assertEquals(tostring(err), "no built-in script 'kboot.nothing'")
  lu.assertNil(scripts.origin("kboot.nothing"))
  lu.assertNil(scripts.override_dir())
end

function TestScripts:test_load_builtin_and_site_builtin()
  local chunk = assert(scripts.load_builtin("kboot.net"))
  local net = chunk("kboot.net")
  lu.assertEquals(net.nth_ip("10.96.0.0/12", 10), "10.96.0.10")
  lu.assertNotIs(site.builtin("kboot.net"), require("kboot.net")) -- a second copy
  local ok, err = pcall(site.builtin, "kboot.nothing")
  lu.assertFalse(ok)
  lu.assertStrContains(err, "no built-in script 'kboot.nothing'")
end

function TestScripts:test_site_names_and_export()
  for _, s in ipairs({ "kboot.certs_table", "kboot/certs_table.lua", "scripts/kboot/certs_table.lua", "./kboot/certs_table.lua" }) do
    lu.assertEquals(site.name(s), "kboot.certs_table", s)
  end
  lu.assertEquals(site.relpath("kboot.components.etcd"), "kboot/components/etcd.lua")
  local d = t.tmpdir() .. "/x"
  local written, unchanged, dir = site.export(d, { "kboot.net", "init" })
  lu.assertEquals({ written, unchanged, dir }, { 2, 0, d })
  lu.assertEquals(t.read(d .. "/kboot/net.lua"), t.read(t.src .. "/scripts/kboot/net.lua"))
  lu.assertEquals(t.read(d .. "/init.lua"), t.read(t.src .. "/scripts/init.lua"))
  lu.assertEquals({ site.export(d, { "kboot.net" }) }, { 0, 1, d })
  local text, where = site.source("kboot.net")
  lu.assertEquals(text, t.read(t.src .. "/scripts/kboot/net.lua"))
  lu.assertEquals(where, "built-in scripts/kboot/net.lua")
end

TestPatchFiles = {}
function TestPatchFiles:tearDown() t.cleanup() end

function TestPatchFiles:test_names_as_kubeadm_parses_them()
  local cases = {
    { "kube-apiserver0+merge.yaml", "kube-apiserver", "merge" },   -- kubeadm's --patches help examples
    { "etcd.json", "etcd", "strategic" },
    { "kube-scheduler+json.json", "kube-scheduler", "json" },
    { "kube-controller-manager_a-b+strategic.yaml", "kube-controller-manager", "strategic" },
    { "kubeletconfiguration.yaml", "kubeletconfiguration", "strategic" },
    { "corednsdeployment99+merge.yaml", "corednsdeployment", "merge" },
    { "etcd+mergefoo.yaml", "etcd", "merge" },                      -- kubeadm's pattern is not anchored there
  }
  for _, c in ipairs(cases) do lu.assertEquals({ patches.parse_name(c[1]) }, { c[2], c[3] }, c[1]) end
  lu.assertEquals({ patches.parse_name("README.md") }, { nil, "the file extension must be one of [json yaml]", true })
  lu.assertEquals({ patches.parse_name("etcd.yml") }, { nil, "the file extension must be one of [json yaml]", true })
  lu.assertEquals({ patches.parse_name("apiserver.yaml") },
    { nil, "unknown target, must be one of [etcd kube-apiserver kube-controller-manager kube-scheduler kubeletconfiguration corednsdeployment]" })
  lu.assertEquals({ patches.parse_name("etcd+Merge.yaml") },
    { nil, "unknown or missing patch type after '+', must be one of [json merge strategic]" })
end

function TestPatchFiles:test_load_reads_in_lexical_order_with_subdirectories()
  local d = t.tmpdir()
  t.must("mkdir -p " .. t.q(d .. "/a/b"))
  t.write(d .. "/kube-apiserver.yaml", "a: 1\n")
  t.write(d .. "/kube-apiserver+json.yaml", "- {op: add, path: /b, value: 2}\n---\n- {op: add, path: /c, value: 3}\n")
  t.write(d .. "/a/b/etcd.json", '{"x": null}')
  t.write(d .. "/a/kube-scheduler.yaml", "")
  t.write(d .. "/notes.txt", "x")
  local lines = {}
  local log = { info = function(_, fmt, ...) lines[#lines + 1] = fmt:format(...) end }
  local set = assert(patches.load(d, log))
  local names = {}
  for _, f in ipairs(set.files) do names[#names + 1] = f.name .. ":" .. f.target .. ":" .. f.type .. ":" .. #f.docs end
  lu.assertEquals(names, { "etcd.json:etcd:strategic:1", "kube-apiserver+json.yaml:kube-apiserver:json:2",
                           "kube-apiserver.yaml:kube-apiserver:strategic:1" })
  lu.assertEquals(lines, {
    ('Reading patches from path "%s"'):format(d),
    'Ignoring empty file: "kube-scheduler.yaml"',
    'Ignoring file "notes.txt": the file extension must be one of [json yaml]',
    "Found the following patch files: [etcd.json kube-apiserver+json.yaml kube-apiserver.yaml]",
    "Ignored the following files: [kube-scheduler.yaml notes.txt]",
  })
  lu.assertTrue(patches.has(set, "etcd"))
  lu.assertFalse(patches.has(set, "kube-scheduler"))
  -- applied in that order to a document
  local yaml = require("kboot.yaml")
  local got = assert(patches.apply(set, "kube-apiserver", yaml.decode("apiVersion: v1\nkind: Pod\n")))
  lu.assertEquals({ got.a, got.b, got.c }, { 1, 2, 3 })
end

os.exit(lu.LuaUnit.run())

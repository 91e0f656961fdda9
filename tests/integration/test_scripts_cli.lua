-- Site scripts from the command line: `kboot scripts list|show|export` (the sources ride in the
-- binary, compressed, so a node with only the binary can get them), the exported tree used as it is
-- by --scripts, -v naming each override used, --scripts DIR that is not a directory, and an override
-- that fails to load keeping its file:line in the one error line.
local lu = require("luaunit")
local t = require("testlib")

local BASE = "--ignore-preflight-errors=all --apiserver-advertise-address 192.0.2.10 --node-name node-1"

-- every scripts/**/*.lua of the tree this binary was built from: { {path=, name=}, ... }
local function tree()
  local list = {}
  for path in t.must("cd " .. t.q(t.src) .. "/scripts && find . -name '*.lua' | sed 's|^./||' | LC_ALL=C sort"):gmatch("[^\n]+") do
    list[#list + 1] = { path = path, name = (path:gsub("%.lua$", ""):gsub("/", ".")) }
  end
  return list
end

-- kboot ARGS -> code, stdout, stderr
local function kboot(args, env)
  local e = t.tmpdir() .. "/stderr"
  local ok, out, code = t.sh(("%s %s %s 2>%s"):format(env or "", t.q(t.bin), args, t.q(e)))
  return ok and 0 or code, out, t.read(e)
end

local function manifests(out)
  local m = {}
  for path, body in out:gmatch("%-%-%- (/etc/kubernetes/manifests/[%w%-]+%.yaml) %(mode %d+, %d+ bytes%)\n(.-)\n%-%-%- ") do m[path] = body end
  return m
end

TestScriptsCli = {}
function TestScriptsCli:tearDown() t.cleanup() end

function TestScriptsCli:test_list_names_every_script()
  local code, out, err = kboot("scripts list")
  lu.assertEquals(code, 0, err)
  lu.assertStrContains(out, "NAME")
  for _, s in ipairs(tree()) do
    local kind = s.name:find(".", 1, true) and "module" or "command"
    lu.assertNotNil(out:find("\n" .. s.name:gsub("%p", "%%%0") .. " +" .. kind .. " +built%-in scripts/" .. s.path:gsub("%p", "%%%0") .. "\n"), s.path)
  end
  -- with an override directory: what it replaces, and what it adds
  local d = t.tmpdir()
  t.must("mkdir -p " .. t.q(d .. "/kboot/site"))
  t.write(d .. "/kboot/certs_table.lua", "return require('kboot.certs_table')\n")
  t.write(d .. "/kboot/site/extra.lua", "return {}\n")
  code, out, err = kboot("--scripts " .. t.q(d) .. " scripts list")
  lu.assertEquals(code, 0, err)
  lu.assertStrMatches(out, ".*\nkboot%.certs_table +module +" .. d:gsub("%p", "%%%0") .. "/kboot/certs_table%.lua %(overrides scripts/kboot/certs_table%.lua%)\n.*")
  lu.assertStrMatches(out, ".*\nkboot%.site%.extra +module +" .. d:gsub("%p", "%%%0") .. "/kboot/site/extra%.lua %(site%)\n.*")
end

function TestScriptsCli:test_show_prints_each_source_byte_for_byte()
  for _, s in ipairs(tree()) do
    local code, out, err = kboot("scripts show " .. t.q(s.name))
    lu.assertEquals(code, 0, err)
    lu.assertEquals(out, t.read(t.src .. "/scripts/" .. s.path), s.path)
  end
  -- other spellings of a name
  local want = t.read(t.src .. "/scripts/kboot/certs_table.lua")
  for _, n in ipairs({ "kboot/certs_table.lua", "scripts/kboot/certs_table.lua", "kboot/certs_table" }) do
    local code, out = kboot("scripts show " .. n)
    lu.assertEquals(code, 0, n)
    lu.assertEquals(out, want, n)
  end
  -- the override when there is one (--builtin: the binary's)
  local d = t.tmpdir()
  t.must("mkdir -p " .. t.q(d .. "/kboot"))
  t.write(d .. "/kboot/certs_table.lua", "-- mine\nreturn {}\n")
  local code, out, err = kboot("-v --scripts " .. t.q(d) .. " scripts show kboot.certs_table")
  lu.assertEquals(code, 0, err)
  lu.assertEquals(out, "-- mine\nreturn {}\n")
  lu.assertStrContains(err, "kboot.certs_table: override " .. d .. "/kboot/certs_table.lua")
  code, out = kboot("--scripts " .. t.q(d) .. " scripts show --builtin kboot.certs_table")
  lu.assertEquals(out, want)
  code, out, err = kboot("scripts show kboot.nothing")
  lu.assertEquals(code, 1)
  lu.assertEquals(out, "")
  lu.assertEquals(err, "error: no script \"kboot.nothing\" (see 'kboot scripts list')\n")
end

function TestScriptsCli:test_export_writes_the_tree_and_refuses_to_clobber()
  local parent = t.tmpdir()
  local d = parent .. "/site/scripts"
  local code, _, err = kboot("scripts export " .. t.q(d))
  lu.assertEquals(code, 0, err)
  lu.assertStrContains(err, ("[scripts] Wrote %d file(s) under %s (0 already the same)"):format(#tree(), d))
  t.must(("diff -r %s %s"):format(t.q(t.src .. "/scripts"), t.q(d)))
  lu.assertEquals(t.must("find " .. t.q(d) .. " -type f -printf '%m\\n' | sort -u"), "644\n")
  lu.assertEquals(t.must("find " .. t.q(d) .. " -type d -printf '%m\\n' | sort -u"), "755\n")
  local h = t.tree_hash(parent)
  -- again: nothing changes
  code, _, err = kboot("scripts export " .. t.q(d))
  lu.assertEquals(code, 0, err)
  lu.assertStrContains(err, ("Wrote 0 file(s) under %s (%d already the same)"):format(d, #tree()))
  lu.assertEquals(t.tree_hash(parent), h)
  -- a file changed there: refused, nothing written; --force puts the built-in back
  t.write(d .. "/kboot/cli.lua", "-- edited\n")
  h = t.tree_hash(parent)
  code, _, err = kboot("scripts export " .. t.q(d))
  lu.assertEquals(code, 1)
  lu.assertEquals(err, ("error: %s/kboot/cli.lua exists and differs from the built-in kboot.cli (--force overwrites it); nothing was written\n"):format(d))
  lu.assertEquals(t.tree_hash(parent), h)
  code, _, err = kboot("scripts export --force " .. t.q(d))
  lu.assertEquals(code, 0, err)
  lu.assertEquals(t.read(d .. "/kboot/cli.lua"), t.read(t.src .. "/scripts/kboot/cli.lua"))
  -- some modules only, into a relative directory
  local code2, _, err2 = kboot("scripts export one kboot.certs_table kboot/components/etcd.lua", "cd " .. t.q(parent) .. " &&")
  lu.assertEquals(code2, 0, err2)
  lu.assertEquals(t.must("cd " .. t.q(parent .. "/one") .. " && find . -type f | LC_ALL=C sort"),
    "./kboot/certs_table.lua\n./kboot/components/etcd.lua\n")
  code, _, err = kboot("scripts export " .. t.q(parent .. "/two") .. " kboot.nothing")
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, 'error: no built-in script "kboot.nothing"')
  lu.assertFalse(t.sh("test -e " .. t.q(parent .. "/two")))
end

-- A node with only the binary: export from a copy of it alone, then run init on that tree as it is.
function TestScriptsCli:test_the_exported_tree_is_what_scripts_takes()
  local node = t.tmpdir()
  t.must(("cp %s %s/kboot"):format(t.q(t.bin), t.q(node)))
  local bin = node .. "/kboot"
  t.must(("cd / && env -u KBOOT_SCRIPTS %s scripts export %s/tree"):format(t.q(bin), t.q(node)))
  local ok, plain = t.sh(("%s init --root %s --dry-run --offline %s 2>/dev/null"):format(t.q(bin), t.q(t.tmpdir()), BASE))
  lu.assertTrue(ok, plain)
  local e = node .. "/err"
  local over
  ok, over = t.sh(("%s -v --scripts %s/tree init --root %s --dry-run --offline %s 2>%s"):format(t.q(bin), t.q(node), t.q(t.tmpdir()), BASE, t.q(e)))
  lu.assertTrue(ok, t.read(e))
  local a, b = manifests(plain), manifests(over)
  lu.assertEquals(b, a)
  lu.assertNotNil(next(a))
  -- -v names every module that came from the directory, the entry script too
  local err = t.read(e)
  lu.assertStrContains(err, ("[scripts] init from %s/tree/init.lua (overrides the built-in)"):format(node))
  lu.assertStrContains(err, ("[scripts] kboot.components.kube_apiserver from %s/tree/kboot/components/kube_apiserver.lua (overrides the built-in)"):format(node))
  -- without -v, no such lines
  ok, over = t.sh(("%s --scripts %s/tree init --root %s --dry-run --offline %s 2>%s"):format(t.q(bin), t.q(node), t.q(t.tmpdir()), BASE, t.q(e)))
  lu.assertTrue(ok)
  lu.assertNotStrContains(t.read(e), "[scripts]")
end

function TestScriptsCli:test_show_and_export_need_zlib_and_say_so()
  local code, _, err = kboot("scripts show init", "KBOOT_LIBZ=/nonexistent/libz.so.1")
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "error: /nonexistent/libz.so.1 cannot be loaded: ")
  lu.assertStrContains(err, "; install zlib1g\n")
  -- nothing else needs it
  code, _, err = kboot("scripts list", "KBOOT_LIBZ=/nonexistent/libz.so.1")
  lu.assertEquals(code, 0, err)
end

function TestScriptsCli:test_scripts_dir_must_be_a_directory()
  local f = t.tmpdir() .. "/file"
  t.write(f, "x")
  local cases = {
    { "--scripts /nonexistent/site init --help", "", "kboot: --scripts /nonexistent/site: No such file or directory\n" },
    { "--scripts=" .. f .. " version", "", "kboot: --scripts " .. f .. ": not a directory\n" },
    { "version", "KBOOT_SCRIPTS=/nonexistent/site", "kboot: KBOOT_SCRIPTS=/nonexistent/site: No such file or directory\n" },
  }
  for _, c in ipairs(cases) do
    local code, out, err = kboot(c[1], c[2])
    lu.assertEquals(code, 2, c[1])
    lu.assertEquals(out, "")
    lu.assertEquals(err, c[3])
  end
  -- an empty KBOOT_SCRIPTS is no directory at all
  local code, _, err = kboot("version -o short", "KBOOT_SCRIPTS=")
  lu.assertEquals(code, 0, err)
end

-- An override that does not load, or fails as it runs: the error line keeps its file and line, with
-- and without -v.
function TestScriptsCli:test_broken_override_keeps_file_and_line()
  local d = t.tmpdir()
  t.must("mkdir -p " .. t.q(d .. "/kboot/components"))
  local file = d .. "/kboot/components/kube_apiserver.lua"
  local cases = {
    { "local M = {}\nlocal x = = 1\nreturn M\n", ":2: unexpected symbol near '='" },
    { "local M = {}\nerror('broken on purpose')\nreturn M\n", ":2: broken on purpose" },
    { "local M = require('kboot.manifest').static_pod({ name = 'kube-apiserver' })\n"
      .. "function M.render(ctx)\n  return ctx.nothing.here\nend\nreturn M\n", ":3: attempt to index a nil value (field 'nothing')" },
  }
  for _, c in ipairs(cases) do
    t.write(file, c[1])
    for _, v in ipairs({ "", "-v " }) do
      local root = t.tmpdir()
      local code, _, err = kboot(("%s--scripts %s init phase control-plane apiserver --root %s --dry-run %s"):format(v, t.q(d), t.q(root), BASE))
      lu.assertEquals(code, 1, err)
      local line = err:match("error: error execution phase control%-plane/apiserver: ([^\n]*)")
      lu.assertNotNil(line, err)
      lu.assertStrContains(line, file .. c[2])
    end
  end
end

os.exit(lu.LuaUnit.run())

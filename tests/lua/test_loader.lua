-- The script loader: embedded scripts are luac bytecode that loads with the linked liblua under
-- the same chunk names as the source files; --scripts overrides are source text only.
local lu = require("luaunit")
local t = require("testlib")

local searcher = package.searchers[2] -- kboot's (preload is [1])

-- Every scripts/**/*.lua as {name = "kboot.cli", path = "scripts/kboot/cli.lua"}.
local function scripts()
  local list = {}
  for path in t.must("cd " .. t.q(t.src) .. " && find scripts -name '*.lua' | LC_ALL=C sort"):gmatch("[^\n]+") do
    list[#list + 1] = { path = path, name = path:gsub("^scripts/", ""):gsub("%.lua$", ""):gsub("/", ".") }
  end
  return list
end

TestEmbedded = {}
function TestEmbedded:tearDown() t.cleanup() end

function TestEmbedded:test_every_script_loads_as_bytecode_under_its_chunk_name()
  local list = scripts()
  lu.assertTrue(#list >= 30, "scripts/ listed " .. #list)
  local bin = t.read(t.bin)
  for _, s in ipairs(list) do
    local f = searcher(s.name)
    lu.assertIsFunction(f, s.name .. ": " .. tostring(f))
    lu.assertEquals(debug.getinfo(f, "S").source, "@" .. s.path)
    -- The binary holds no plain source text (the sources ride along gzip-compressed, for `kboot
    -- scripts show|export`): a comment line of the file (not its summary line) is not in it.
    -- Embedded chunks load in mode "b", so loading at all proves bytecode.
    local src, comment = t.read(t.src .. "/" .. s.path), nil
    for line in src:gmatch("\n%s*%-%- ([^\n]+)") do
      if #line >= 24 then comment = line break end
    end
    if comment then
      lu.assertNil(bin:find(comment, 1, true), s.path .. " source text is in the binary: " .. comment)
    end
  end
end

function TestEmbedded:test_errors_name_the_script_and_line()
  local cli = require("kboot.cli")
  local ok, err = pcall(cli.parse, nil, {})
  lu.assertFalse(ok)
  lu.assertStrMatches(err, "scripts/kboot/cli%.lua:%d+: attempt to get length of a nil value.*")
  -- Uncaught, with -v: the one-line error and a traceback through the embedded script.
  local d = t.tmpdir()
  t.write(d .. "/e.lua", "require('kboot.cli').parse(nil, {})\n")
  local out
  ok, out = t.kboot("-v " .. t.q(d .. "/e.lua"))
  lu.assertFalse(ok)
  lu.assertStrContains(out, "scripts/kboot/cli.lua:")
  lu.assertStrMatches(out, ".*\n%s*scripts/kboot/cli%.lua:%d+: in function 'kboot%.cli%.parse'.*")
end

function TestEmbedded:test_help_summaries_survive_compilation()
  local ok, out = t.kboot("--help")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "  init         set up a Kubernetes control-plane node (kubeadm init compatible)\n")
  ok, out = t.kboot("help init")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "--config")
end

TestOverride = {}
function TestOverride:tearDown() t.cleanup() end

local function site(files)
  local d = t.tmpdir()
  t.must("mkdir -p " .. t.q(d .. "/kboot"))
  for name, data in pairs(files) do t.write(d .. "/" .. name, data) end
  return d
end

function TestOverride:test_module_syntax_error_names_file_and_line()
  local d = site({ ["kboot/cli.lua"] = "local x = 1\nlocal y = = 2\nreturn {}\n" })
  local ok, out, code = t.kboot("--scripts " .. t.q(d) .. " init --help") -- init requires kboot.cli
  lu.assertFalse(ok)
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "error loading module 'kboot.cli'")
  lu.assertStrContains(out, d .. "/kboot/cli.lua:2: unexpected symbol near '='")
end

function TestOverride:test_script_syntax_error_names_file_and_line()
  local d = site({ ["demo.lua"] = "print(1)\n\n\nprint((\n" })
  local ok, out, code = t.kboot("--scripts " .. t.q(d) .. " demo")
  lu.assertFalse(ok)
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, d .. "/demo.lua:5:")
end

-- Lua does not verify bytecode: a binary chunk dropped in the override dir must never run.
function TestOverride:test_binary_chunks_are_refused()
  local chunk = string.dump(load("print('BINARY CHUNK RAN') return {}"))
  lu.assertEquals(chunk:sub(1, 4), "\27Lua")
  local d = site({ ["kboot/cli.lua"] = chunk })
  local ok, out, code = t.kboot("--scripts " .. t.q(d) .. " init --help")
  lu.assertFalse(ok)
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, d .. "/kboot/cli.lua: attempt to load a binary chunk (mode is 't')")
  lu.assertNotStrContains(out, "BINARY CHUNK RAN")
  d = site({ ["demo.lua"] = chunk })
  ok, out, code = t.sh("KBOOT_SCRIPTS=" .. t.q(d) .. " " .. t.q(t.bin) .. " demo")
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, d .. "/demo.lua: attempt to load a binary chunk (mode is 't')")
  lu.assertNotStrContains(out, "BINARY CHUNK RAN")
end

function TestOverride:test_text_override_still_works()
  local d = site({ ["kboot/cli.lua"] = "#!/usr/bin/env kboot\nreturn { site = true }\n",
                   ["demo.lua"] = "print(require('kboot.cli').site)\n" })
  local ok, out = t.kboot("--scripts " .. t.q(d) .. " demo")
  lu.assertTrue(ok, out)
  lu.assertEquals(out, "true\n")
end

os.exit(lu.LuaUnit.run("-v"))

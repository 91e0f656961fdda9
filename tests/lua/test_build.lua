-- kboot.build: kboot's own version and the versions of the libraries loaded, each checked against
-- what the system says about the same library (openssl's CLI, pkg-config, curl-config, dpkg).
local lu = require("luaunit")
local t = require("testlib")
local build = require("kboot.build")

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

TestBuild = {}
function TestBuild:tearDown() t.cleanup() end

function TestBuild:test_kboot_and_lua()
  lu.assertStrMatches(build.version, "%d+%.%d+%.%d+.*")
  -- the CMake project version is what --version prints too
  lu.assertStrContains(t.must(t.q(t.bin) .. " --version"), "kboot " .. build.version .. " (" .. build.lua .. ")")
  lu.assertStrMatches(build.lua, "Lua 5%.4%.%d+")
  lu.assertEquals(build.lua:match("^(Lua 5%.%d)"), _VERSION)
end

function TestBuild:test_openssl_is_the_library_the_cli_uses()
  local text, short = build.openssl()
  lu.assertStrMatches(short, "%d+%.%d+%.%d+.*")
  -- "OpenSSL 3.0.17 1 Jul 2025 (Library: OpenSSL 3.0.17 1 Jul 2025)": the same shared libcrypto
  local cli = t.must("openssl version")
  local lib = cli:match("%(Library: (.-)%)") or trim(cli)
  lu.assertEquals(text, lib)
  lu.assertStrContains(text, short)
  lu.assertStrMatches(build.openssl_headers, "OpenSSL %d.*")
end

function TestBuild:test_libyaml()
  local v = build.libyaml()
  lu.assertStrMatches(v, "%d+%.%d+%.%d+")
  lu.assertEquals(v, trim(t.must("pkg-config --modversion yaml-0.1")))
end

function TestBuild:test_libcurl_loaded_on_demand()
  local v, ssl = build.libcurl()
  lu.assertNotNil(v, ssl)
  lu.assertEquals("libcurl " .. v, trim(t.must("curl-config --version")))
  lu.assertStrMatches(ssl, "OpenSSL/.*")
end

function TestBuild:test_missing_libcurl_is_nil_err()
  local d = t.tmpdir()
  t.write(d .. "/s.lua", [[
    local b = require("kboot.build")
    local v, err = b.libcurl()
    print(v, err.op, err.msg)
    print((b.openssl()), b.libyaml() ~= nil)
  ]])
  local out = t.must("KBOOT_LIBCURL=/nonexistent/libcurl.so.4 " .. t.q(t.bin) .. " " .. t.q(d .. "/s.lua"))
  lu.assertStrContains(out, "nil\thttp\t/nonexistent/libcurl.so.4 cannot be loaded: ")
  lu.assertStrContains(out, "; install libcurl4\n")
  lu.assertStrContains(out, (build.openssl()) .. "\ttrue\n")
end

os.exit(lu.LuaUnit.run("-v"))

-- `kboot version`: -o json parses and names the OpenSSL the openssl CLI runs on, libcurl as
-- curl-config and libyaml as pkg-config know them, the Kubernetes range of kboot.versions; a
-- libcurl that cannot be loaded is reported, not fatal; a bad -o is a usage error.
local lu = require("luaunit")
local t = require("testlib")
local json = require("cjson")
local versions = require("kboot.versions")

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

TestVersionCli = {}

function TestVersionCli:test_json_names_the_real_libraries()
  local v = json.decode(t.must(t.q(t.bin) .. " version -o json"))
  local cli = t.must("openssl version") -- "OpenSSL 3.0.17 1 Jul 2025 (Library: OpenSSL 3.0.17 1 Jul 2025)"
  lu.assertEquals(v.openssl.text, cli:match("%(Library: (.-)%)") or trim(cli))
  lu.assertStrContains(v.openssl.text, "OpenSSL " .. v.openssl.version .. " ")
  lu.assertEquals("libcurl " .. v.libcurl.version, trim(t.must("curl-config --version")))
  lu.assertStrMatches(v.libcurl.ssl, "OpenSSL/.*")
  lu.assertEquals(v.libyaml.version, trim(t.must("pkg-config --modversion yaml-0.1")))
  lu.assertStrMatches(v.lua.version, "Lua 5%.4%.%d+")
  lu.assertEquals(v.lua.cjson, json._VERSION)
  lu.assertEquals(v.kubernetes, { default = versions.default_version, oldest = "v1.20", newest = "v1.34" })
  lu.assertEquals(v.kboot.version, trim(t.must(t.q(t.bin) .. " version -o short")))
  lu.assertStrContains(t.must(t.q(t.bin) .. " --version"), "kboot " .. v.kboot.version .. " ")
end

function TestVersionCli:test_text_and_yaml_say_the_same()
  local v = json.decode(t.must(t.q(t.bin) .. " version -o json"))
  local text = t.must(t.q(t.bin) .. " version")
  lu.assertEquals(text, table.concat({
    "kboot " .. v.kboot.version, v.lua.version .. " (lua-cjson " .. v.lua.cjson .. ")", v.openssl.text,
    "libcurl " .. v.libcurl.version .. " (" .. v.libcurl.ssl .. ")", "libyaml " .. v.libyaml.version,
    "Kubernetes " .. v.kubernetes.default .. " by default; v1.20 to v1.34 supported", "" }, "\n"))
  local y = require("kboot.yaml").decode(t.must(t.q(t.bin) .. " version -o yaml"))
  lu.assertEquals(y, v)
end

function TestVersionCli:test_missing_libcurl_is_reported()
  local env = "KBOOT_LIBCURL=/nonexistent/libcurl.so.4 "
  local v = json.decode(t.must(env .. t.q(t.bin) .. " version -o json"))
  lu.assertNil(v.libcurl.version)
  lu.assertStrContains(v.libcurl.error, "/nonexistent/libcurl.so.4 cannot be loaded: ")
  lu.assertNotNil(v.openssl.version)
  lu.assertStrContains(t.must(env .. t.q(t.bin) .. " version"), "\nlibcurl: not loadable: /nonexistent/libcurl.so.4 cannot be loaded: ")
end

function TestVersionCli:test_bad_output_format()
  local ok, out, code = t.kboot("version -o xml")
  lu.assertFalse(ok)
  lu.assertEquals(code, 2, out)
  lu.assertStrContains(out, 'invalid value "xml" for -o: want short, json or yaml')
  ok, out, code = t.kboot("version extra")
  lu.assertEquals(code, 2, out)
end

os.exit(lu.LuaUnit.run("-v"))

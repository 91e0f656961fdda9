-- kboot does not link libcurl: it is dlopen()ed on the first http.client, KBOOT_LIBCURL names
-- another file, and a library that cannot be loaded is one clear error while offline work goes on.
-- (The requests themselves: test_http.lua and test_http_tls.lua, against real local servers.)
local lu = require("luaunit")
local t = require("testlib")

local function run(env, code)
  local d = t.tmpdir()
  t.write(d .. "/s.lua", code)
  return t.sh(env .. " " .. t.q(t.bin) .. " " .. t.q(d .. "/s.lua"))
end

local MAPPED = [[
local function curl_mapped()
  local f = assert(io.open("/proc/self/maps"))
  local m = f:read("a")
  f:close()
  return m:find("libcurl", 1, true) ~= nil
end
]]

TestDlopen = {}
function TestDlopen:tearDown() t.cleanup() end

function TestDlopen:test_libcurl_is_not_needed()
  local out = t.must("readelf -d " .. t.q(t.bin))
  lu.assertStrContains(out, "(NEEDED)")
  lu.assertStrContains(out, "[liblua5.4.so.0]") -- the listing is real
  lu.assertNil(out:find("curl", 1, true), out)
end

function TestDlopen:test_loaded_on_first_client_only()
  local ok, out = run("", MAPPED .. [[
    local http = require("kboot.http")
    require("kboot.kube"); require("kboot.kubeconfig")
    io.write(tostring(curl_mapped()), " ")
    local c = assert(http.client({ server = "https://127.0.0.1:1" }))
    io.write(tostring(curl_mapped()), " ", tostring(c):match("^kboot%.http%.client") or "?", "\n")
  ]])
  lu.assertTrue(ok, out)
  lu.assertEquals(out, "false true kboot.http.client\n")
end

function TestDlopen:test_missing_library_is_one_clear_error()
  local ok, out = run("KBOOT_LIBCURL=/nonexistent/libcurl.so.4", MAPPED .. [[
    local http = require("kboot.http")
    for i = 1, 2 do -- the same error every time
      local c, err = http.client({ server = "https://127.0.0.1:1" })
      print(c, err.op, err.msg)
    end
    local kc = require("kboot.kubeconfig")
    print(select(2, kc.client({ clusters = { { name = "k", cluster = { server = "https://127.0.0.1:1" } } },
      users = { { name = "u", user = { token = "x" } } },
      contexts = { { name = "c", context = { cluster = "k", user = "u" } } }, ["current-context"] = "c" })))
    print(curl_mapped())
  ]])
  lu.assertTrue(ok, out)
  local msg = "/nonexistent/libcurl.so.4 cannot be loaded: /nonexistent/libcurl.so.4: cannot open shared "
    .. "object file: No such file or directory; install libcurl4"
  lu.assertEquals(out, ("nil\thttp\t%s\n"):rep(2):format(msg, msg)
    .. 'kubeconfig: cluster "k": ' .. msg .. "\nfalse\n")
end

function TestDlopen:test_library_without_curl_symbols()
  local ok, out = run("KBOOT_LIBCURL=libyaml-0.so.2", [[
    print(select(2, require("kboot.http").client({ server = "https://127.0.0.1:1" })))
  ]])
  lu.assertTrue(ok, out)
  lu.assertEquals(out, "libyaml-0.so.2 cannot be used: it has no curl_global_init; install libcurl4\n")
end

function TestDlopen:test_offline_init_needs_no_libcurl()
  local d = t.tmpdir()
  t.write(d .. "/cfg.yaml", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
    .. "localAPIEndpoint:\n  advertiseAddress: 10.0.0.10\nnodeRegistration:\n  name: node-1\n---\n"
    .. "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\n")
  t.must("mkdir " .. t.q(d .. "/root"))
  local ok, out = t.sh(("KBOOT_LIBCURL=/nonexistent/libcurl.so.4 %s init --root %s --config %s "
    .. "--skip-phases=preflight --offline"):format(t.q(t.bin), t.q(d .. "/root"), t.q(d .. "/cfg.yaml")))
  lu.assertTrue(ok, out)
  for _, f in ipairs({ "pki/ca.crt", "pki/apiserver.key", "admin.conf", "manifests/kube-apiserver.yaml" }) do
    lu.assertNotNil(io.open(d .. "/root/etc/kubernetes/" .. f), f)
  end
end

os.exit(lu.LuaUnit.run("-v"))

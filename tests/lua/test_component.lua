-- kboot.component: the generic save/apply/run of the component protocol, on a real sandbox root
-- (modes checked with stat) and the API server double.
local lu = require("luaunit")
local t = require("testlib")
local fs = require("kboot.fs")
local component = require("kboot.component")

local root
local function setup() root = t.tmpdir(); assert(fs.set_root(root)) end
local function teardown() fs.set_root(nil); t.cleanup() end
local function mode_of(p) return (t.must("stat -c %a " .. t.q(root .. p)):gsub("%s+$", "")) end

-- the API server double (tests/lib/fake_apiserver.py): what reached the server is what was sent
local API = require("fake_api").start()
local function api_kube() API:reset(); return API:kube() end

TestComponent = { setUp = setup, tearDown = teardown }

function TestComponent:test_run_saves_dirs_files_then_applies_objects_then_after()
  local order = {}
  local m = {
    name = "x",
    render = function() return {
      dirs = { { path = "/var/lib/x", mode = 448 } },
      files = { { path = "/etc/x/a.yaml", mode = 384, content = "a: 1\n" } },
      objects = { { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "one", namespace = "default" } },
                  { apiVersion = "v1", kind = "ServiceAccount", metadata = { name = "two", namespace = "default" } } } } end,
    after = function(_, a) order[#order + 1] = #a.objects; return true end,
  }
  local ctx = { fs = fs, kube = api_kube() }
  lu.assertEquals(component.run(ctx, m), true)
  lu.assertEquals(mode_of("/var/lib/x"), "700")
  lu.assertEquals(mode_of("/etc/x/a.yaml"), "600")
  lu.assertEquals(mode_of("/etc/x"), "700")
  lu.assertEquals(fs.read("/etc/x/a.yaml"), "a: 1\n")
  lu.assertEquals(API:sent(), { "apply configmaps default/one", "apply serviceaccounts default/two" })
  lu.assertEquals(order, { 2 })
end

function TestComponent:test_apply_failure_names_the_object_and_stops()
  local ctx = { fs = fs, kube = api_kube() }
  API:fail{ method = "PATCH", path = "/configmaps/one", status = 403, message = "refused" }
  local ok, err = component.run(ctx, { render = function() return { objects = {
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "one", namespace = "default" } },
    { apiVersion = "v1", kind = "ServiceAccount", metadata = { name = "two", namespace = "default" } } } } end })
  lu.assertNil(ok)
  lu.assertEquals(tostring(err), "cannot apply ConfigMap default/one: apply ConfigMap default/one: 403 Forbidden: refused")
  lu.assertEquals(err.status, 403)
  lu.assertEquals(API:sent(), { "apply configmaps default/one" }) -- refused, and nothing after it
  lu.assertNil(API:object("v1", "ServiceAccount", "default", "two"))
end

function TestComponent:test_save_failure_is_an_error_and_later_files_are_not_written()
  t.must("mkdir -p " .. t.q(root .. "/etc") .. " && touch " .. t.q(root .. "/etc/blocker"))
  local ok, err = component.save({ fs = fs }, { files = {
    { path = "/etc/blocker/a", mode = 420, content = "x" }, { path = "/etc/b", mode = 420, content = "y" } } })
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "cannot write " .. root .. "/etc/blocker/a")
  lu.assertFalse(fs.exists("/etc/b"))
end

function TestComponent:test_nothing_to_do_touches_nothing()
  local ctx = { fs = fs, kube = setmetatable({}, { __index = function() error("no API call expected") end }) }
  lu.assertEquals(component.run(ctx, { render = function() return { dirs = {}, files = {}, objects = {} } end }), true)
  lu.assertEquals(t.must("ls -A " .. t.q(root)), "")
  local ok, err = component.run(ctx, { render = function() return nil, "bad config" end })
  lu.assertNil(ok)
  lu.assertEquals(err, "bad config")
  lu.assertEquals(component.describe({ kind = "Node", metadata = { name = "n1" } }), "Node n1")
end

os.exit(lu.LuaUnit.run())

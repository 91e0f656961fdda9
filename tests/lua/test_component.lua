-- kboot.component: the generic save/apply/run of the component protocol, on a real sandbox root
-- (modes checked with stat) and a recording API client.
local lu = require("luaunit")
local t = require("testlib")
local fs = require("kboot.fs")
local component = require("kboot.component")

local root
local function setup() root = t.tmpdir(); assert(fs.set_root(root)) end
local function teardown() fs.set_root(nil); t.cleanup() end
local function mode_of(p) return (t.must("stat -c %a " .. t.q(root .. p)):gsub("%s+$", "")) end

local function fake_kube(fail_on)
  local k = { sent = {} }
  function k:apply(obj)
    if obj.metadata.name == fail_on then
      return nil, require("kboot.error").new("apply", "refused", { status = 403, reason = "Forbidden" })
    end
    self.sent[#self.sent + 1] = obj.kind .. "/" .. obj.metadata.name
    return obj
  end
  return k
end

TestComponent = { setUp = setup, tearDown = teardown }

function TestComponent:test_run_saves_dirs_files_then_applies_objects_then_after()
  local order = {}
  local m = {
    name = "x",
    render = function() return {
      dirs = { { path = "/var/lib/x", mode = 448 } },
      files = { { path = "/etc/x/a.yaml", mode = 384, content = "a: 1\n" } },
      objects = { { kind = "ConfigMap", metadata = { name = "one", namespace = "ns" } },
                  { kind = "Service", metadata = { name = "two", namespace = "ns" } } } } end,
    after = function(_, a) order[#order + 1] = #a.objects; return true end,
  }
  local ctx = { fs = fs, kube = fake_kube() }
  lu.assertEquals(component.run(ctx, m), true)
  lu.assertEquals(mode_of("/var/lib/x"), "700")
  lu.assertEquals(mode_of("/etc/x/a.yaml"), "600")
  lu.assertEquals(mode_of("/etc/x"), "700")
  lu.assertEquals(fs.read("/etc/x/a.yaml"), "a: 1\n")
  lu.assertEquals(ctx.kube.sent, { "ConfigMap/one", "Service/two" })
  lu.assertEquals(order, { 2 })
end

function TestComponent:test_apply_failure_names_the_object_and_stops()
  local ctx = { fs = fs, kube = fake_kube("one") }
  local ok, err = component.run(ctx, { render = function() return { objects = {
    { kind = "ConfigMap", metadata = { name = "one", namespace = "ns" } },
    { kind = "Service", metadata = { name = "two" } } } } end })
  lu.assertNil(ok)
  lu.assertEquals(tostring(err), "cannot apply ConfigMap ns/one: refused")
  lu.assertEquals(err.status, 403)
  lu.assertEquals(ctx.kube.sent, {})
end

function TestComponent:test_save_failure_is_an_error_and_later_files_are_not_written()
  t.must("mkdir -p " .. t.q(root .. "/etc") .. " && touch " .. t.q(root .. "/etc/blocker"))
  local ok, err = component.save({ fs = fs }, { files = {
    { path = "/etc/blocker/a", mode = 420, content = "x" }, { path = "/etc/b", mode = 420, content = "y" } } })
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "cannot write /etc/blocker/a")
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

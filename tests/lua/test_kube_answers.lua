-- kboot.kube against answers an API server (or a proxy in front of it) should not give: an error
-- body that is not a Status, a 2xx body that is not JSON or not an object. Each is one line
-- naming the request and the object, never a Lua error. The answers come from the API server
-- double over the wire (tests/lib/fake_apiserver.py's raw failures), not from a fake client.
local lu = require("luaunit")
local t = require("testlib")

local API = require("fake_api").start()

TestKubeAnswers = {}
function TestKubeAnswers:setUp() API:reset() end
function TestKubeAnswers:tearDown() API:heal() end

local CM = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "x", namespace = "kube-system" }, data = { a = "b" } }

local cases = {
  { name = "HTML 502 from a proxy", status = 502, raw = "<html><body>\n<h1>502 Bad Gateway</h1>\n</body></html>",
    want = "get ConfigMap kube-system/x: 502 InternalError: <html><body> <h1>502 Bad Gateway</h1> </body></html>" },
  { name = "403 text, no Status", status = 403, raw = "forbidden: no",
    want = "get ConfigMap kube-system/x: 403 Forbidden: forbidden: no" },
  { name = "Status cut short", status = 500, raw = '{"kind":"Status","message":"etcd',
    want = 'get ConfigMap kube-system/x: 500 InternalError: {"kind":"Status","message":"etcd' },
  { name = "200 not JSON", status = 200, raw = "ok", want = "get ConfigMap kube-system/x: GET /api/v1/namespaces/kube-system/configmaps/x: 200 response is not valid JSON" },
  { name = "200 a number", status = 200, raw = "5", want = "get ConfigMap kube-system/x: the answer is not a JSON object" },
  { name = "200 a list", status = 200, raw = "[1, 2]", want = "get ConfigMap kube-system/x: the answer is not a JSON object" },
  { name = "200 a string", status = 200, raw = '"x"', want = "get ConfigMap kube-system/x: the answer is not a JSON object" },
}

function TestKubeAnswers:test_get_each_bad_answer_one_line()
  local k = API:kube({ retries = 0 })
  for _, c in ipairs(cases) do
    API:heal()
    API:fail{ method = "GET", path = "/configmaps/x", status = c.status, raw = c.raw }
    local ok, obj, err = pcall(k.get, k, "v1", "ConfigMap", "kube-system", "x")
    lu.assertTrue(ok, c.name .. ": raised " .. tostring(obj))
    lu.assertNil(obj, c.name)
    lu.assertStrContains(tostring(err), c.want, false, c.name)
    lu.assertNotStrContains(tostring(err), "\n", false, c.name)
  end
end

function TestKubeAnswers:test_apply_and_list_bad_answers_one_line()
  local k = API:kube({ retries = 0 })
  API:fail{ method = "PATCH", path = "/configmaps/x", status = 200, raw = "7" }
  local ok, obj, err = pcall(k.apply, k, CM)
  lu.assertTrue(ok, tostring(obj))
  lu.assertNil(obj)
  lu.assertStrContains(tostring(err), "ConfigMap kube-system/x: the answer is not a JSON object")
  API:heal()
  API:fail{ method = "GET", path = "/configmaps", status = 200, raw = '{"items": 5}' }
  local items, lerr
  ok, items, lerr = pcall(k.list, k, "v1", "ConfigMap", "kube-system")
  lu.assertTrue(ok, tostring(items))
  lu.assertNil(items)
  lu.assertStrContains(tostring(lerr), "list ConfigMap kube-system: the answer's items is not a list")
end

os.exit(lu.LuaUnit.run())

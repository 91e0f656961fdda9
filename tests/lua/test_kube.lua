-- kboot.kube without a server: resource paths, misuse raising, dry-run recording.
local lu = require("luaunit")
local kube = require("kboot.kube")

TestKubePath = {}
function TestKubePath:test_core_and_groups()
  lu.assertEquals(kube.path("v1", "ConfigMap", "kube-system", "kubeadm-config"),
                  "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
  lu.assertEquals(kube.path("v1", "Secret", "kube-system"), "/api/v1/namespaces/kube-system/secrets")
  lu.assertEquals(kube.path("v1", "Secret"), "/api/v1/secrets") -- all namespaces
  lu.assertEquals(kube.path("v1", "Node", nil, "n1"), "/api/v1/nodes/n1")
  lu.assertEquals(kube.path("v1", "Node", "ignored", "n1"), "/api/v1/nodes/n1")
  lu.assertEquals(kube.path("apps/v1", "DaemonSet", "kube-system", "kube-proxy"),
                  "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy")
  lu.assertEquals(kube.path("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", nil, "kubeadm:get-nodes"),
                  "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm:get-nodes")
end

function TestKubePath:test_register()
  kube.register("example.com/v1", "Widget", "widgets", true)
  lu.assertEquals(kube.path("example.com/v1", "Widget", "a", "b"), "/apis/example.com/v1/namespaces/a/widgets/b")
end

function TestKubePath:test_misuse_raises()
  lu.assertErrorMsgContains("unknown resource v1 Gadget", kube.path, "v1", "Gadget", "a", "b")
  lu.assertErrorMsgContains("ConfigMap \"x\" needs a namespace", kube.path, "v1", "ConfigMap", nil, "x")
  lu.assertErrorMsgContains("must be strings", kube.path, nil, "ConfigMap")
  lu.assertErrorMsgContains("expected a kubeconfig", kube.new, 42)
end

function TestKubePath:test_error_predicates()
  lu.assertTrue(kube.not_found({ status = 404 }))
  lu.assertFalse(kube.not_found({ status = 409 }))
  lu.assertTrue(kube.conflict({ status = 409 }))
  lu.assertFalse(kube.not_found("x"))
end

TestKubeCovers = {}
function TestKubeCovers:test_covers()
  local yaml = require("kboot.yaml")
  local live = { data = { a = "1", b = "2" }, spec = { ports = { { port = 53, protocol = "UDP", targetPort = 53 } } },
                 metadata = { name = "x" } }
  lu.assertTrue(kube.covers({ data = { a = "1" } }, live))
  lu.assertFalse(kube.covers({ data = { a = "2" } }, live))
  lu.assertTrue(kube.covers({ spec = { ports = { { port = 53 } } } }, live)) -- defaulted fields in live are fine
  lu.assertFalse(kube.covers({ spec = { ports = { { port = 53 }, { port = 54 } } } }, live))
  lu.assertFalse(kube.covers({ spec = { ports = { { port = "53" } } } }, live)) -- types matter
  lu.assertTrue(kube.covers({ annotations = {} }, {}))                         -- empty map = absent
  lu.assertTrue(kube.covers({ rules = setmetatable({}, yaml.array_mt) }, {}))
  lu.assertFalse(kube.covers({ rules = setmetatable({}, yaml.array_mt) }, { rules = { "x" } }))
  lu.assertFalse(kube.covers({ missing = "x" }, live))
  lu.assertTrue(kube.covers({ readOnly = false, replicas = 0, s = "" }, {}))  -- omitempty zero values
  lu.assertFalse(kube.covers({ readOnly = false }, { readOnly = true }))
  lu.assertEquals(select(2, kube.covers({ a = { b = { 1, 2 } } }, { a = { b = { 1, 3 } } })), ".a.b[1]")
end

TestKubeDryRun = {}
function TestKubeDryRun:test_records_and_sends_nothing()
  -- no server at all: a dry run needs none
  local k = assert(kube.new(nil, { dry_run = true }))
  local cm = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c", namespace = "kube-system" },
               data = { a = "1" } }
  lu.assertIs(k:create(cm), cm)
  lu.assertIs(k:apply(cm), cm)
  lu.assertTrue(k:delete("v1", "ConfigMap", "kube-system", "c"))
  local p = k:patch("v1", "Node", nil, "n1", { metadata = { labels = { a = "b" } } }, "merge")
  lu.assertEquals(p.patchType, "merge")
  lu.assertEquals(#k.recorded, 4)
  lu.assertEquals(k.recorded[1].data.a, "1")
  local got, err = k:get("v1", "ConfigMap", "kube-system", "c")
  lu.assertNil(got)
  lu.assertTrue(kube.not_found(err))
  lu.assertTrue(err.dry_run)
  lu.assertEquals(#k:list("v1", "ConfigMap", "kube-system"), 0)
  lu.assertEquals(k:stats().requests, 0)
end

function TestKubeDryRun:test_missing_kubeconfig()
  local k, err = kube.new("/nonexistent/admin.conf")
  lu.assertNil(k)
  lu.assertStrContains(tostring(err), "/nonexistent/admin.conf")
  -- in a dry run the file may not exist yet
  lu.assertNotNil(kube.new("/nonexistent/admin.conf", { dry_run = true }))
end

function TestKubeDryRun:test_patch_misuse()
  local k = kube.new(nil, { dry_run = true })
  lu.assertErrorMsgContains("is not strategic, merge or json", k.patch, k, "v1", "Node", nil, "n", {}, "xml")
  lu.assertErrorMsgContains("has no metadata.name", k.create, k, { apiVersion = "v1", kind = "ConfigMap" })
end

function TestKubeDryRun:test_wait_for()
  local k = kube.new(nil, { dry_run = true })
  local n = 0
  lu.assertEquals(k:wait_for(function() n = n + 1 if n == 3 then return "done" end return nil, "n=" .. n end, 5, 0.01), "done")
  local v, err = k:wait_for(function() return nil, "node kbnode not found yet" end, 0.2, 0.05)
  lu.assertNil(v)
  lu.assertStrContains(tostring(err), "timed out after 0.2s waiting: node kbnode not found yet")
end

function TestKubeDryRun:test_delete_all_deletes_each_object_in_order()
  local k = assert(require("kboot.kube").new(nil, { dry_run = true }))
  lu.assertTrue(k:delete_all({
    { apiVersion = "v1", kind = "ConfigMap", metadata = { namespace = "kube-system", name = "coredns" } },
    { apiVersion = "rbac.authorization.k8s.io/v1", kind = "ClusterRole", metadata = { name = "system:coredns" } },
  }))
  lu.assertEquals(#k.recorded, 2)
  lu.assertEquals(k.recorded[1].kind, "ConfigMap")
  lu.assertEquals(k.recorded[2].metadata.name, "system:coredns")
  lu.assertEquals(k:stats().requests, 0)
end

function TestKubePath:test_reasons_and_status()
  -- client-go's reasons for a status whose body is not a Status
  lu.assertEquals(kube.reason(404), "NotFound")
  lu.assertEquals(kube.reason(409), "Conflict")
  lu.assertEquals(kube.reason(422), "Invalid")
  lu.assertEquals(kube.reason(502), "InternalError")
  lu.assertEquals(kube.reason(418), "Unknown")
  lu.assertNil(kube.status({ status = 500, body = "<html>oops</html>" }))
  lu.assertNil(kube.status({ status = 500, body = '{"kind":"ConfigMap"}' }))
  lu.assertEquals(kube.status({ status = 409, body = '{"kind":"Status","reason":"AlreadyExists"}' }).reason, "AlreadyExists")
  lu.assertNil(kube.status("not a table"))
end

os.exit(lu.LuaUnit.run("-v"))

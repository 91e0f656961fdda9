-- kboot.kube against a real kube-apiserver v1.20.2 (tests/lib/controlplane.lua runs it from kboot
-- init's own manifests): CRUD, server-side apply, the three patch types, selectors and pagination,
-- watch, Status errors as one line (404, 409, 422, 403 from RBAC), retries off for refused
-- connections, a wrong CA, and one TLS connection for many requests.
local lu = require("luaunit")
local t = require("testlib")
local controlplane = require("controlplane")
local kube = require("kboot.kube")
local kubeconfig = require("kboot.kubeconfig")
local yaml = require("kboot.yaml")

local skip = controlplane.missing()
local cp, k, start_err
local NS = "kboot-test"

if not skip then
  local root = t.tmpdir()
  local plan = controlplane.plan{ root = root }
  cp, start_err = controlplane.init_offline_and_start(plan)
  if cp then
    -- the test's own client: super-admin (system:masters), since no kubeadm:cluster-admins binding exists yet
    k = assert(kube.new(cp.super_admin_conf))
    assert(k:create({ apiVersion = "v1", kind = "Namespace", metadata = { name = NS } }))
  end
end

local function cm(name, data, labels)
  return { apiVersion = "v1", kind = "ConfigMap", metadata = { name = name, namespace = NS, labels = labels },
           data = data or {} }
end

local function kubectl(args) return t.must(cp.kubectl_super .. " " .. args) end

TestKube = {}
function TestKube:setUp()
  if skip then lu.skip(skip) end
  if start_err then error(start_err) end
end

function TestKube:test_get_and_not_found()
  local ns = assert(k:get("v1", "Namespace", nil, "kube-system"))
  lu.assertEquals(ns.metadata.name, "kube-system")
  lu.assertEquals(math.type(ns.metadata.generation or 0), "integer")
  local got, err = k:get("v1", "ConfigMap", NS, "nope")
  lu.assertNil(got)
  lu.assertTrue(kube.not_found(err))
  lu.assertEquals(err.reason, "NotFound")
  lu.assertEquals(tostring(err), 'get ConfigMap kboot-test/nope: 404 NotFound: configmaps "nope" not found')
end

function TestKube:test_create_conflict_and_kubectl_sees_it()
  local obj = assert(k:create(cm("created", { ["a.txt"] = "hello\nworld\n", empty = "" })))
  lu.assertEquals(obj.metadata.namespace, NS)
  lu.assertNotNil(obj.metadata.uid)
  -- checked by a real peer, not by kboot itself
  lu.assertEquals(kubectl("-n " .. NS .. " get configmap created -o jsonpath='{.data.a\\.txt}'"), "hello\nworld\n")
  local again, err = k:create(cm("created"))
  lu.assertNil(again)
  lu.assertTrue(kube.conflict(err))
  lu.assertEquals(err.reason, "AlreadyExists")
  lu.assertEquals(tostring(err), 'create ConfigMap kboot-test/created: 409 AlreadyExists: configmaps "created" already exists')
end

function TestKube:test_invalid_is_one_line_422()
  local obj, err = k:create(cm("Bad_Name"))
  lu.assertNil(obj)
  lu.assertEquals(err.status, 422)
  lu.assertEquals(err.reason, "Invalid")
  lu.assertStrContains(tostring(err), 'create ConfigMap kboot-test/Bad_Name: 422 Invalid: ConfigMap "Bad_Name" is invalid: metadata.name')
  lu.assertNotStrContains(tostring(err), "\n")
end

function TestKube:test_list_selectors_and_pages()
  for i = 1, 5 do assert(k:create(cm("page-" .. i, { i = tostring(i) }, { kboot = "page", n = tostring(i) }))) end
  assert(k:create(cm("page-other", {}, { kboot = "other" })))
  local before = k:stats().requests
  local items = assert(k:list("v1", "ConfigMap", NS, { label_selector = "kboot=page", limit = 2 }))
  lu.assertEquals(#items, 5)
  lu.assertEquals(k:stats().requests - before, 3) -- 2 + 2 + 1: followed `continue` twice
  local names = {}
  for _, it in ipairs(items) do names[#names + 1] = it.metadata.name end
  table.sort(names)
  lu.assertEquals(names, { "page-1", "page-2", "page-3", "page-4", "page-5" })
  items = assert(k:list("v1", "ConfigMap", NS, { label_selector = "kboot=page,n in (2,4)" }))
  lu.assertEquals(#items, 2)
  items = assert(k:list("v1", "ConfigMap", NS, { field_selector = "metadata.name=page-3" }))
  lu.assertEquals(#items, 1)
  lu.assertEquals(items[1].data.i, "3")
  -- all namespaces
  items = assert(k:list("v1", "ConfigMap", nil, { label_selector = "kboot=other" }))
  lu.assertEquals(#items, 1)
  local bad, err = k:list("v1", "ConfigMap", NS, { label_selector = "kboot in in" })
  lu.assertNil(bad)
  lu.assertEquals(err.status, 400)
  lu.assertStrContains(tostring(err), "list ConfigMap kboot-test: 400 BadRequest: ")
end

function TestKube:test_apply_is_idempotent_and_keeps_empty_lists()
  local role = { apiVersion = "rbac.authorization.k8s.io/v1", kind = "Role",
                 metadata = { name = "applied", namespace = NS },
                 rules = { { apiGroups = setmetatable({ "" }, yaml.array_mt), resources = { "configmaps" },
                             verbs = { "get" }, resourceNames = setmetatable({}, yaml.array_mt) } } }
  local a = assert(k:apply(role))
  local rv = a.metadata.resourceVersion
  lu.assertEquals(a.rules[1].verbs, { "get" })
  lu.assertEquals(a.metadata.managedFields[1].manager, "kboot")
  lu.assertEquals(a.metadata.managedFields[1].operation, "Apply")
  local before = k:stats().requests
  local b = assert(k:apply(role))
  lu.assertEquals(b.metadata.resourceVersion, rv) -- nothing changed, nothing written
  lu.assertEquals(k:stats().requests - before, 1) -- one GET: the live object already says it all
  b = assert(k:apply(role, { always = true }))   -- and a real no-op SSA PATCH changes nothing either
  if b.metadata.resourceVersion ~= rv then
    -- The API server before 1.27 stores a no-op apply when only its managedFields time moved to a
    -- new second (a slow machine gets there between the two calls): then nothing else may differ.
    local function without_time(o)
      local m = {}
      for i, e in ipairs(o.metadata.managedFields) do m[i] = { manager = e.manager, operation = e.operation, fieldsV1 = e.fieldsV1 } end
      return { rules = o.rules, labels = o.metadata.labels, managed = m }
    end
    lu.assertEquals(without_time(b), without_time(a))
    lu.assertNotEquals(b.metadata.managedFields[1].time, a.metadata.managedFields[1].time)
  end
  lu.assertEquals(k:stats().requests - before, 2)
  role.rules[1].verbs = { "get", "list" }
  local c = assert(k:apply(role))
  lu.assertNotEquals(c.metadata.resourceVersion, rv)
  lu.assertEquals(kubectl("-n " .. NS .. " get role applied -o jsonpath='{.rules[0].verbs}'"), '["get","list"]')
  -- force: take over a field another manager (kubectl) owns
  kubectl("-n " .. NS .. " label role applied owner=kubectl --overwrite")
  role.metadata.labels = { owner = "kboot" }
  local d, err = k:apply(role)
  lu.assertNotNil(d, err)
  lu.assertEquals(d.metadata.labels.owner, "kboot")
  local e
  role.metadata.labels = { owner = "else" }
  e, err = k:apply(role, { force = false, field_manager = "someone-else" })
  lu.assertNil(e)
  lu.assertTrue(kube.conflict(err))
  lu.assertStrContains(tostring(err), "apply Role kboot-test/applied: 409 Conflict: ")
end

function TestKube:test_patch_three_types()
  assert(k:create(cm("patched", { a = "1" })))
  local s = assert(k:patch("v1", "ConfigMap", NS, "patched", { metadata = { labels = { via = "strategic" } } }, "strategic"))
  lu.assertEquals(s.metadata.labels.via, "strategic")
  local m = assert(k:patch("v1", "ConfigMap", NS, "patched", { data = { b = "2" } }, "merge"))
  lu.assertEquals(m.data, { a = "1", b = "2" })
  local j = assert(k:patch("v1", "ConfigMap", NS, "patched",
    '[{"op":"remove","path":"/data/a"},{"op":"add","path":"/data/c","value":"3"}]', "json"))
  lu.assertEquals(j.data, { b = "2", c = "3" })
  lu.assertEquals(kubectl("-n " .. NS .. " get cm patched -o jsonpath='{.data.c}'"), "3")
  -- a node: what mark-control-plane does (label and taint, strategic merge)
  local node = assert(k:patch("v1", "Node", nil, cp.node_name, { metadata = { labels = {
    ["node-role.kubernetes.io/control-plane"] = "" } }, spec = { taints = { {
    key = "node-role.kubernetes.io/control-plane", effect = "NoSchedule" } } } }, "strategic"))
  lu.assertEquals(node.metadata.labels["node-role.kubernetes.io/control-plane"], "")
  local bad, err = k:patch("v1", "ConfigMap", NS, "patched", '[{"op":"remove","path":"/data/zzz"}]', "json")
  lu.assertNil(bad)
  lu.assertStrContains(tostring(err), "patch ConfigMap kboot-test/patched: 422 ")
  bad, err = k:patch("v1", "ConfigMap", NS, "missing", { data = {} }, "merge")
  lu.assertNil(bad)
  lu.assertTrue(kube.not_found(err))
end

function TestKube:test_delete_and_404_is_done()
  assert(k:create(cm("deleted")))
  lu.assertTrue(k:delete("v1", "ConfigMap", NS, "deleted"))
  lu.assertTrue(kube.not_found(select(2, k:get("v1", "ConfigMap", NS, "deleted"))))
  lu.assertTrue(k:delete("v1", "ConfigMap", NS, "deleted"))
  lu.assertFalse(t.sh(cp.kubectl_super .. " -n " .. NS .. " get cm deleted"))
end

function TestKube:test_wait_for_object_and_timeout()
  local function has(name)
    return function()
      local o, err = k:get("v1", "ConfigMap", NS, name)
      if o then return o end
      return nil, tostring(err)
    end
  end
  local v, err = k:wait_for(has("never"), 1, 0.2)
  lu.assertNil(v)
  lu.assertStrContains(tostring(err), 'timed out after 1s waiting: get ConfigMap kboot-test/never: 404 NotFound: configmaps "never" not found')
  -- created by a real peer while we wait
  t.must(("(sleep 1; %s -n %s create configmap later) >/dev/null 2>&1 &"):format(cp.kubectl_super, NS))
  local o = assert(k:wait_for(has("later"), 30, 0.2))
  lu.assertEquals(o.metadata.name, "later")
end

function TestKube:test_watch_streams_events()
  assert(k:create(cm("w1", {}, { watch = "yes" })))
  local seen = {}
  local ok, err = k:watch("v1", "ConfigMap", NS, { label_selector = "watch=yes", timeout_seconds = 30 }, function(ty, obj)
    seen[#seen + 1] = ty .. " " .. obj.metadata.name
    if obj.metadata.name == "w1" and ty == "ADDED" then
      -- the same client serves requests while its watch streams
      assert(k:create(cm("w2", {}, { watch = "yes" })))
      assert(k:patch("v1", "ConfigMap", NS, "w2", { data = { x = "1" } }, "merge"))
      assert(k:delete("v1", "ConfigMap", NS, "w2"))
    end
    return not (ty == "DELETED")
  end)
  lu.assertTrue(ok, err)
  lu.assertEquals(seen, { "ADDED w1", "ADDED w2", "MODIFIED w2", "DELETED w2" })
  -- a bad selector: the stream's status becomes one line
  local ok2, err2 = k:watch("v1", "ConfigMap", NS, { field_selector = "data.x=1", timeout_seconds = 5 }, function() return true end)
  lu.assertNil(ok2)
  lu.assertEquals(err2.status, 400)
  lu.assertStrContains(tostring(err2), 'watch ConfigMap kboot-test: 400 BadRequest: ')
  lu.assertStrContains(tostring(err2), '"data.x" is not a known field selector')
end

function TestKube:test_forbidden_by_rbac_with_a_limited_token()
  -- a bootstrap token authenticates (system:bootstrap:<id>) but may not read secrets
  local id, secret = "kbtest", "0123456789abcdef"
  assert(k:apply({ apiVersion = "v1", kind = "Secret", type = "bootstrap.kubernetes.io/token",
                   metadata = { name = "bootstrap-token-" .. id, namespace = "kube-system" },
                   stringData = { ["token-id"] = id, ["token-secret"] = secret,
                                  ["usage-bootstrap-authentication"] = "true" } }))
  local kc = assert(kubeconfig.load(cp.admin_conf))
  local cur = assert(kubeconfig.current(kc))
  local limited = assert(kube.new(kubeconfig.build{ server = cur.server, ca_pem = cur.ca_pem,
                                                    user = "tls-bootstrap-token-user", token = id .. "." .. secret }))
  local got, err = limited:get("v1", "Secret", "kube-system", "bootstrap-token-" .. id)
  lu.assertNil(got)
  lu.assertEquals(err.status, 403)
  lu.assertEquals(err.reason, "Forbidden")
  lu.assertEquals(tostring(err), 'get Secret kube-system/bootstrap-token-kbtest: 403 Forbidden: secrets "bootstrap-token-kbtest" is forbidden: '
    .. 'User "system:bootstrap:kbtest" cannot get resource "secrets" in API group "" in the namespace "kube-system"')
  -- a wrong token: 401
  local wrong = assert(kube.new(kubeconfig.build{ server = cur.server, ca_pem = cur.ca_pem, token = id .. ".ffffffffffffffff" }))
  got, err = wrong:get("v1", "Namespace", nil, "default")
  lu.assertNil(got)
  lu.assertEquals(err.status, 401)
  lu.assertStrContains(tostring(err), "get Namespace default: 401 Unauthorized: Unauthorized")
end

function TestKube:test_one_connection_for_many_requests()
  local c = assert(kube.new(cp.super_admin_conf))
  for i = 1, 10 do assert(c:apply(cm("conn-" .. i, { i = tostring(i) }))) end
  for i = 1, 10 do assert(c:get("v1", "ConfigMap", NS, "conn-" .. i)) end
  assert(c:list("v1", "ConfigMap", NS))
  local s = c:stats()
  lu.assertEquals(s.requests, 31) -- each apply of a new object: GET (404) + PATCH
  lu.assertEquals(s.connects, 1)
  lu.assertEquals(s.retries, 0)
end

function TestKube:test_unreachable_and_wrong_ca()
  local kc = assert(kubeconfig.current(assert(kubeconfig.load(cp.admin_conf))))
  local port = t.free_port()
  local down = assert(kube.new(kubeconfig.build{ server = "https://127.0.0.1:" .. port, ca_pem = kc.ca_pem,
                                                 cert_pem = kc.cert_pem, key_pem = kc.key_pem }, { retries = 1, timeout = 5 }))
  local got, err = down:get("v1", "Namespace", nil, "default")
  lu.assertNil(got)
  lu.assertStrContains(tostring(err), "get Namespace default: GET https://127.0.0.1:" .. port .. "/api/v1/namespaces/default: ")
  lu.assertStrContains(tostring(err), "(after 2 attempts)")
  lu.assertNotStrContains(tostring(err), "\n")
  -- another cluster's CA (the front-proxy CA kboot generated): TLS verification fails, not retried
  local other_ca = t.read(cp.root .. "/etc/kubernetes/pki/front-proxy-ca.crt")
  local wrong = assert(kube.new(kubeconfig.build{ server = kc.server, ca_pem = other_ca, cert_pem = kc.cert_pem,
                                                  key_pem = kc.key_pem }))
  got, err = wrong:get("v1", "Namespace", nil, "default")
  lu.assertNil(got)
  lu.assertStrContains(tostring(err), "get Namespace default: ")
  lu.assertStrContains(tostring(err), "check the CA")
  lu.assertEquals(wrong:stats().retries, 0)
end

function TestKube:test_dry_run_sends_nothing()
  local d = assert(kube.new(cp.super_admin_conf, { dry_run = true }))
  lu.assertNotNil(d:create(cm("dry")))
  lu.assertNotNil(d:apply(cm("dry2")))
  lu.assertEquals(#d.recorded, 2)
  lu.assertEquals(d:stats().requests, 0)
  lu.assertTrue(kube.not_found(select(2, k:get("v1", "ConfigMap", NS, "dry"))))
  lu.assertTrue(kube.not_found(select(2, k:get("v1", "ConfigMap", NS, "dry2"))))
end

local rc = lu.LuaUnit.run("-v")
if cp and rc ~= 0 then io.stderr:write(cp:tail(10), "\n") end
if cp then cp:stop() end
t.cleanup()
os.exit(rc)

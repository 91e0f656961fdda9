-- End to end: tenant kubeconfigs against the real v1.20.2 API server (tests/lib/controlplane.lua,
-- on loopback). A kubeconfig from `kboot kubeconfig user --client-name alice --org team-a` plus its
-- --bind-role binding can list pods in team-a and nothing else (kube-system, nodes: Forbidden); a
-- re-run changes nothing; a ClusterRoleBinding user; and scripts/examples/tenants.lua for two
-- tenants the same way. Skipped when the v1.20.2 binaries are absent (tests/e2e/build-control-plane.sh).
local lu = require("luaunit")
local t = require("testlib")
local controlplane = require("controlplane")
local cjson = require("cjson")

local skip = controlplane.missing()
local cp, root, start_err

if not skip then
  root = t.tmpdir()
  local plan = controlplane.plan{ root = root }
  cp, start_err = controlplane.init_offline_and_start(plan)
  if cp then
    -- what the online init does first, so that admin.conf (O=kubeadm:cluster-admins) may act
    t.must(cp.kubectl_super .. " create clusterrolebinding kubeadm:cluster-admins --clusterrole=cluster-admin --group=kubeadm:cluster-admins")
    -- view's rules are aggregated by the controller-manager a few seconds after it starts
    for _ = 1, 120 do
      local ok, out = t.sh(cp.kubectl_super .. " get clusterrole view -o jsonpath='{.rules[*].verbs}'")
      if ok and out:find("list", 1, true) then break end
      os.execute("sleep 0.5")
    end
  end
end

local KUBECTL = controlplane.bin_dir() .. "/kubectl"
local function as(conf, args) return t.sh(("%s --kubeconfig %s %s"):format(t.q(KUBECTL), t.q(root .. conf), args)) end
local function admin(args) return t.must(cp.kubectl .. " " .. args) end
local function apply(text)
  local f = root .. "/obj-" .. math.random(1e9) .. ".yaml"
  t.write(f, text)
  return admin("apply -f " .. t.q(f))
end

-- A Role that allows listing and reading pods, in namespace ns (made with the namespace).
local function pod_reader(ns)
  apply(([[
apiVersion: v1
kind: Namespace
metadata: {name: %s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: %s}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
]]):format(ns, ns))
end

local function allowed(conf, args)
  local ok, out = as(conf, args)
  lu.assertTrue(ok, args .. ": " .. out)
  return out
end
local function forbidden(conf, args, user)
  local ok, out = as(conf, args)
  lu.assertFalse(ok, args .. ": allowed: " .. out)
  lu.assertStrContains(out, "Forbidden")
  lu.assertStrContains(out, ('User "%s" cannot'):format(user))
end

TestE2EKubeconfigUser = {}
function TestE2EKubeconfigUser:setUp()
  if skip then lu.skip(skip) end
  if not cp then error(tostring(start_err)) end
end

function TestE2EKubeconfigUser:test_01_tenant_with_a_role()
  pod_reader("team-a")
  local args = ("kubeconfig user --root %s --client-name alice --org team-a --bind-role pod-reader --namespace team-a --output /alice.conf")
    :format(t.q(root))
  local ok, out = t.kboot(args)
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "RoleBinding team-a/kboot:group:team-a:role:pod-reader created (Role pod-reader for Group team-a)")
  local rb = cjson.decode(admin("-n team-a get rolebinding kboot:group:team-a:role:pod-reader -o json"))
  lu.assertEquals(rb.subjects, { { apiGroup = "rbac.authorization.k8s.io", kind = "Group", name = "team-a" } })
  lu.assertEquals(rb.roleRef.name, "pod-reader")
  -- the kubeconfig's server is admin.conf's: the real API server
  lu.assertEquals(allowed("/alice.conf", "config view -o jsonpath='{.clusters[0].cluster.server}'"), cp.server)
  lu.assertStrContains(allowed("/alice.conf", "get pods -n team-a"), "No resources found in team-a namespace.")
  lu.assertEquals(allowed("/alice.conf", "auth can-i list pods -n team-a"), "yes\n")
  forbidden("/alice.conf", "get pods -n kube-system", "alice")
  forbidden("/alice.conf", "get nodes", "alice")
  forbidden("/alice.conf", "get secrets -n team-a", "alice")
  -- a re-run: the binding is left as it is (same resourceVersion), a new kubeconfig works too
  local rv = rb.metadata.resourceVersion
  ok, out = t.kboot(args:gsub("/alice%.conf", "/alice2.conf"))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "RoleBinding team-a/kboot:group:team-a:role:pod-reader unchanged")
  lu.assertEquals(admin("-n team-a get rolebinding kboot:group:team-a:role:pod-reader -o jsonpath='{.metadata.resourceVersion}'"), rv)
  allowed("/alice2.conf", "get pods -n team-a")
end

function TestE2EKubeconfigUser:test_02_the_binding_is_what_grants()
  -- the same group, no binding of its own, another namespace: nothing
  local ok, out = t.kboot(("kubeconfig user --root %s --client-name mallory --org team-x --config %s --output /mallory.conf")
    :format(t.q(root), t.q(root .. "/kubeadm.yaml")))
  lu.assertTrue(ok, out)
  forbidden("/mallory.conf", "get pods -n team-a", "mallory")
  -- a user bound by name, cluster-wide to view: pods everywhere, still no nodes or secrets
  ok, out = t.kboot(("kubeconfig user --root %s --client-name auditor --bind-clusterrole view --output /auditor.conf")
    :format(t.q(root)))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "ClusterRoleBinding kboot:user:auditor:clusterrole:view created (ClusterRole view for User auditor)")
  allowed("/auditor.conf", "get pods -n kube-system")
  forbidden("/auditor.conf", "get nodes", "auditor")
  forbidden("/auditor.conf", "get secrets -n kube-system", "auditor")
end

function TestE2EKubeconfigUser:test_03_missing_namespace_writes_nothing()
  local before = t.tree_hash(root .. "/etc")
  local ok, out, rc = t.kboot(("kubeconfig user --root %s --client-name zed --bind-role pod-reader --namespace nowhere --output /zed.conf")
    :format(t.q(root)))
  lu.assertFalse(ok)
  lu.assertEquals(rc, 1, out)
  lu.assertStrContains(out, 'namespaces "nowhere" not found')
  lu.assertStrContains(out, "no kubeconfig was written")
  lu.assertEquals(select(2, out:gsub("\n", "")), 1, out)
  lu.assertFalse((t.sh("test -e " .. t.q(root .. "/zed.conf"))))
  lu.assertEquals(t.tree_hash(root .. "/etc"), before)
end

function TestE2EKubeconfigUser:test_04_tenants_example()
  pod_reader("team-d") -- dave's namespace and Role exist; carol's namespace is made by the script
  local list = root .. "/tenants.yaml"
  t.write(list, [[
- name: carol
  namespace: team-c
  clusterRole: view
- name: dave
  namespace: team-d
  role: pod-reader
  groups: [team-d]
]])
  local script = t.src .. "/scripts/examples/tenants.lua"
  local cmd = ("%s %s %s --root %s --out-dir /tenants"):format(t.q(t.bin), t.q(script), t.q(list), t.q(root))
  local ok, out = t.sh(cmd)
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "carol: Namespace team-c created, RoleBinding team-c/kboot:user:carol:clusterrole:view created")
  lu.assertStrContains(out, "dave: Namespace team-d unchanged, RoleBinding team-d/kboot:group:team-d:role:pod-reader created")
  for _, u in ipairs({ { "carol", "team-c", "team-d" }, { "dave", "team-d", "team-c" } }) do
    local conf = "/tenants/" .. u[1] .. ".conf"
    lu.assertEquals(t.must("stat -c %a " .. t.q(root .. conf)), "600\n")
    lu.assertStrContains(allowed(conf, "get pods -n " .. u[2]), "No resources found in " .. u[2] .. " namespace.")
    forbidden(conf, "get pods -n " .. u[3], u[1])
    forbidden(conf, "get pods -n kube-system", u[1])
    forbidden(conf, "get nodes", u[1])
  end
  -- a second run changes nothing in the cluster
  ok, out = t.sh(cmd)
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "carol: Namespace team-c unchanged, RoleBinding team-c/kboot:user:carol:clusterrole:view unchanged")
  lu.assertStrContains(out, "dave: Namespace team-d unchanged, RoleBinding team-d/kboot:group:team-d:role:pod-reader unchanged")
  -- a bad list: one line, exit 2, nothing done
  t.write(list, "- name: erin\n  namespace: Team_E\n- name: erin\n  role: r\n  clusterRole: c\n  namespace: e\n")
  local rc
  ok, out, rc = t.sh(cmd)
  lu.assertFalse(ok)
  lu.assertEquals(rc, 2, out)
  lu.assertStrContains(out, "[0] namespace: a DNS label is required; [0] give role or clusterRole; [1] name \"erin\": given twice; [1] give role or clusterRole")
  lu.assertEquals(select(2, out:gsub("\n", "")), 1, out)
end

local rc = lu.LuaUnit.run("-v")
if cp then cp:stop() end
t.cleanup()
os.exit(rc)

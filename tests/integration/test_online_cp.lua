-- The online phases one by one against a real v1.20.2 control plane (tests/lib/controlplane.lua),
-- checked with kubectl: re-runs change nothing, admins' edits survive (Corefile, replicas, node
-- taints), kube-proxy's server is configurable, and faults give one clear line and a re-run
-- completes: missing cluster-admins binding without super-admin.conf (403), a wrong CA, the API
-- server down, the API server killed and restarted while the addons are applied.
-- Skipped when the control-plane binaries or the harness are not in this build/host.
local lu = require("luaunit")
local t = require("testlib")
local cjson = require("cjson")

local controlplane = require("controlplane")
-- the only skip: no control-plane binaries on this machine (KBOOT_E2E_BIN)
local skip = controlplane.missing()

local ONLINE = "wait-control-plane,upload-config,upload-certs,mark-control-plane,bootstrap-token,kubelet-finalize,addon,show-join-command"
local cp, root, plan, start_err

local function config(p)
  -- v1beta4, so the API call timeout (retry deadline) can be short for the fault tests
  t.write(p.config, table.concat({
    "apiVersion: kubeadm.k8s.io/v1beta4", "kind: InitConfiguration",
    "localAPIEndpoint:", "  advertiseAddress: 127.0.0.1", "  bindPort: " .. p.api_port,
    "nodeRegistration:", "  name: " .. p.node_name,
    "  taints:", "  - key: node-role.kubernetes.io/control-plane", "    effect: NoSchedule",
    "timeouts:", "  kubernetesAPICall: 40s", "---",
    "apiVersion: kubeadm.k8s.io/v1beta4", "kind: ClusterConfiguration", "kubernetesVersion: v1.20.2", "---",
    "apiVersion: kubelet.config.k8s.io/v1beta1", "kind: KubeletConfiguration",
    "healthzBindAddress: 127.0.0.1", "healthzPort: " .. p.kubelet_port, "",
  }, "\n"))
end

if not skip then
  root = t.tmpdir()
  plan = controlplane.plan{ root = root }
  config(plan)
  t.must(("%s init %s --skip-phases=preflight,%s"):format(t.q(t.bin), plan.init_args, ONLINE))
  local ok, res = pcall(controlplane.start, { root = root, kubelet_port = plan.kubelet_port })
  if ok then cp = res else start_err = res end
end

local function phase(name, extra)
  return t.kboot(("init phase %s %s %s"):format(name, plan.init_args, extra or ""))
end
local function must_phase(name, extra)
  local ok, out = phase(name, extra)
  lu.assertTrue(ok, name .. ":\n" .. out)
  return out
end
local function kubectl(args) return t.must(cp.kubectl_super .. " " .. args) end
local function jget(args) return cjson.decode(kubectl(args .. " -o json")) end
local function rv(args) return kubectl(args .. " -o jsonpath='{.metadata.resourceVersion}'") end

-- Wait until the controller has caught up with an object (status.observedGeneration ==
-- metadata.generation) and its resourceVersion holds still, so a later comparison sees only kboot.
local function settle(args)
  local last
  for _ = 1, 120 do
    local o = jget(args)
    local cur = o.metadata.resourceVersion
    if (o.status or {}).observedGeneration == o.metadata.generation and cur == last then return end
    last = cur
    os.execute("sleep 0.5")
  end
  error("object did not settle: " .. args)
end

TestOnlineCP = {}
function TestOnlineCP:setUp()
  if skip then lu.skip(skip) end
  if start_err then error(start_err) end
end

function TestOnlineCP:test_01_upload_config_and_rerun_changes_nothing()
  local out = must_phase("wait-control-plane")
  lu.assertStrContains(out, "The API server is healthy")
  must_phase("upload-config")
  lu.assertEquals(t.must(cp.kubectl .. " auth can-i '*' '*'"), "yes\n")
  local cc = kubectl("-n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}'")
  lu.assertStrContains(cc, "kind: ClusterConfiguration")
  local kl = kubectl("-n kube-system get configmap kubelet-config -o jsonpath='{.data.kubelet}'")
  lu.assertStrContains(kl, ("healthzPort: %d"):format(plan.kubelet_port))
  local role = jget("-n kube-system get role kubeadm:kubelet-config")
  lu.assertEquals(role.rules[1].resourceNames, { "kubelet-config" })
  local ids = "-n kube-system get configmap kubeadm-config"
  local before = { rv(ids), rv("-n kube-system get rolebinding kubeadm:nodes-kubeadm-config"), rv("get clusterrolebinding kubeadm:cluster-admins") }
  must_phase("upload-config")
  lu.assertEquals({ rv(ids), rv("-n kube-system get rolebinding kubeadm:nodes-kubeadm-config"), rv("get clusterrolebinding kubeadm:cluster-admins") }, before)
end

function TestOnlineCP:test_02_mark_control_plane_keeps_other_taints()
  kubectl(("taint node %s example.com/maintenance=yes:NoExecute --overwrite"):format(cp.node_name))
  must_phase("mark-control-plane")
  local node = jget("get node " .. cp.node_name)
  lu.assertEquals(node.metadata.labels["node-role.kubernetes.io/control-plane"], "")
  lu.assertEquals(node.metadata.labels["node.kubernetes.io/exclude-from-external-load-balancers"], "")
  local taints = {}
  for _, ta in ipairs(node.spec.taints or {}) do taints[ta.key .. ":" .. ta.effect] = true end
  lu.assertTrue(taints["node-role.kubernetes.io/control-plane:NoSchedule"])
  lu.assertTrue(taints["example.com/maintenance:NoExecute"])
  -- a re-run writes nothing. Not the Node's resourceVersion: with no kubelet posting status, the
  -- node lifecycle controller updates the Node on its own (conditions Unknown, unreachable taints)
  -- about 40 s after it appeared, which a slow machine reaches mid-test; rewriting the taints list
  -- it also takes f:spec.f:taints from kboot's managedFields entry. So: what mark-control-plane
  -- sets holds still, kboot's entries keep their time, and their fields may only shrink (lost to
  -- another manager), never grow (a write by kboot would take fields back).
  local function state()
    local n = jget("get node " .. cp.node_name)
    local entries = {}
    for _, m in ipairs(n.metadata.managedFields or {}) do
      if tostring(m.manager):match("^kboot") then entries[#entries + 1] = m end
    end
    local owned = {}
    for _, ta in ipairs(n.spec.taints or {}) do
      if ta.key:match("^node%-role") or ta.key:match("^example%.com") then owned[#owned + 1] = ta end
    end
    return { managed = entries, owned_taints = owned, labels = n.metadata.labels }
  end
  local function subset(a, b) -- every field set path in a is in b
    for k, v in pairs(a) do
      if type(b) ~= "table" or b[k] == nil or (type(v) == "table" and not subset(v, b[k])) then return false end
    end
    return true
  end
  local before = state()
  lu.assertTrue(#before.managed > 0, "kboot has no managedFields entry on the Node")
  must_phase("mark-control-plane")
  local after = state()
  lu.assertEquals(after.labels, before.labels)
  lu.assertEquals(after.owned_taints, before.owned_taints)
  lu.assertEquals(#after.managed, #before.managed)
  for i, m in ipairs(after.managed) do
    lu.assertEquals(m.time, before.managed[i].time)
    lu.assertTrue(subset(m.fieldsV1, before.managed[i].fieldsV1), "kboot's managed fields grew: it wrote the Node")
  end
end

function TestOnlineCP:test_03_addons_keep_admin_edits_and_proxy_server_is_configurable()
  must_phase("addon", "--kube-proxy-server https://lb.example:7443")
  local cm = jget("-n kube-system get configmap kube-proxy")
  lu.assertStrContains(cm.data["kubeconfig.conf"], "server: https://lb.example:7443")
  lu.assertEquals(kubectl("-n kube-system get service kube-dns -o jsonpath='{.spec.clusterIP}'"), "10.96.0.10")
  lu.assertEquals(kubectl("-n kube-system get deployment coredns -o jsonpath='{.spec.template.spec.containers[0].image}'"),
    "registry.k8s.io/coredns:1.7.0")
  -- an admin edits the Corefile and scales CoreDNS: a re-run keeps both
  local corefile = jget("-n kube-system get configmap coredns").data.Corefile
  kubectl("-n kube-system patch configmap coredns --type merge -p " .. t.q(cjson.encode({ data = { Corefile = corefile .. "# edited\n" } })))
  kubectl("-n kube-system scale deployment coredns --replicas 3")
  settle("-n kube-system get deployment coredns")
  settle("-n kube-system get daemonset kube-proxy")
  local dep_rv = rv("-n kube-system get deployment coredns")
  local ds_rv = rv("-n kube-system get daemonset kube-proxy")
  must_phase("addon", "--kube-proxy-server https://lb.example:7443")
  lu.assertStrContains(jget("-n kube-system get configmap coredns").data.Corefile, "# edited\n")
  lu.assertEquals(kubectl("-n kube-system get deployment coredns -o jsonpath='{.spec.replicas}'"), "3")
  lu.assertEquals(rv("-n kube-system get deployment coredns"), dep_rv)
  lu.assertEquals(rv("-n kube-system get daemonset kube-proxy"), ds_rv)
  -- the default server again: the control-plane endpoint
  must_phase("addon/kube-proxy")
  lu.assertStrContains(jget("-n kube-system get configmap kube-proxy").data["kubeconfig.conf"], "server: " .. cp.server)
end

function TestOnlineCP:test_04_missing_cluster_admins_without_super_admin_is_403_then_rerun_completes()
  local sa = root .. "/etc/kubernetes/super-admin.conf"
  kubectl("delete clusterrolebinding kubeadm:cluster-admins")
  t.must(("mv %s %s.off"):format(t.q(sa), t.q(sa)))
  -- any phase that talks to the API server needs the binding: each says the same
  local ok, out, code = phase("upload-config/kubeadm")
  local ok2, out2 = phase("mark-control-plane")
  t.must(("mv %s.off %s"):format(t.q(sa), t.q(sa)))
  lu.assertFalse(ok2)
  lu.assertStrContains(out2, "error execution phase mark-control-plane: admin.conf has no rights yet")
  lu.assertFalse(ok)
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "error execution phase upload-config/kubeadm: admin.conf has no rights yet (ClusterRoleBinding kubeadm:cluster-admins is missing)")
  lu.assertStrContains(out, "super-admin.conf")
  lu.assertEquals(select(2, out:gsub("\nerror", "")), 1, "one error line:\n" .. out)
  lu.assertNotStrContains(out, "cannot read /etc/kubernetes/super-admin.conf: cannot read")
  must_phase("upload-config/kubeadm")
  lu.assertEquals(t.must(cp.kubectl .. " auth can-i '*' '*'"), "yes\n")
end

function TestOnlineCP:test_05_wrong_ca_is_one_clear_line()
  local admin = root .. "/etc/kubernetes/admin.conf"
  local text = t.read(admin)
  local other = require("kboot.pki").self_signed_ca(assert(require("kboot.pki").generate_key()), { cn = "other" })
  local bad = text:gsub("certificate%-authority%-data: [%w+/=]+", "certificate-authority-data: " .. require("kboot.crypto").base64(other:pem()))
  t.write(admin, bad)
  local ok, out, code = phase("mark-control-plane")
  t.write(admin, text)
  lu.assertFalse(ok)
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "error execution phase mark-control-plane:")
  lu.assertStrContains(out, "TLS verification failed")
  lu.assertStrContains(out, "check the CA")
  must_phase("mark-control-plane")
end

function TestOnlineCP:test_06_api_server_down_then_restarted_during_addons()
  cp:kill("kube-apiserver")
  -- down for good within the retry deadline: one line naming the call and the connection error
  local dir = t.tmpdir()
  local short = dir .. "/short.yaml"
  t.write(short, t.read(plan.config):gsub("kubernetesAPICall: 40s", "kubernetesAPICall: 2s"))
  local ok, out, code = t.kboot(("init phase upload-config/kubeadm --root %s --config %s"):format(t.q(root), t.q(short)))
  lu.assertFalse(ok)
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "error execution phase upload-config/kubeadm:")
  -- refused, or (when another test's server took the freed port meanwhile) reset in the handshake
  lu.assertNotNil(out:find("Couldn't connect", 1, true) or out:find("Connection reset by peer", 1, true), out)
  lu.assertEquals(select(2, out:gsub("\nerror", "")), 1, out) -- one error line
  -- killed while the addon phase runs, back a few seconds later: the phase's retries ride it out
  local logf = dir .. "/addon.log"
  t.must(("(%s init phase addon %s >%s 2>&1; echo $? >%s.rc) </dev/null >/dev/null 2>&1 &"):format(t.q(t.bin), plan.init_args, t.q(logf), t.q(logf)))
  os.execute("sleep 2")
  cp:restart("kube-apiserver")
  cp:wait_live(90)
  local rc
  for _ = 1, 600 do
    local f = io.open(logf .. ".rc")
    if f then rc = tonumber(f:read("l") or ""); f:close() end
    if rc then break end
    os.execute("sleep 0.2")
  end
  local log = t.read(logf)
  if rc ~= 0 then
    -- it may also give up with one clear line; then a re-run completes
    lu.assertStrContains(log, "error execution phase addon/")
    must_phase("addon")
  end
  lu.assertEquals(kubectl("-n kube-system get daemonset kube-proxy -o jsonpath='{.metadata.name}'"), "kube-proxy")
end

local rc = lu.LuaUnit.run("-v")
if cp and rc ~= 0 then io.stderr:write(cp:tail(10), "\n") end
if cp then cp:stop() end
t.cleanup()
os.exit(rc)

-- End to end: `kboot init --root SANDBOX --kubernetes-version v1.20.2` against a real control plane
-- started from kboot's own static Pod manifests (tests/lib/controlplane.lua plays the kubelet).
-- init runs in the background; the control plane comes up as soon as the manifests appear, so the
-- online phases (wait-control-plane, upload-config, upload-certs, mark-control-plane, bootstrap-token,
-- addons) run against it. Objects are checked with the freshly built kubectl. Online phases whose
-- module is not in this build are skipped with a message. Skipped entirely when the v1.20.2 binaries
-- are absent (build them with tests/e2e/build-control-plane.sh).
local lu = require("luaunit")
local t = require("testlib")
local controlplane = require("controlplane")
local crypto = require("kboot.crypto")
local cjson = require("cjson")

local TOKEN_ID, TOKEN_SECRET = "kbe2e0", "0123456789abcdef"
local TOKEN = TOKEN_ID .. "." .. TOKEN_SECRET
local CERT_KEY = ("0123456789abcdef"):rep(4)

local skip = controlplane.missing()
local cp, root, plan, init_out, init_rc, start_err

local function run_init(extra)
  local logf = root .. "/init-" .. os.time() .. "-" .. math.random(1e6) .. ".log"
  local rcf = logf .. ".rc"
  t.must(("(%s init %s --skip-phases=preflight --upload-certs %s >%s 2>&1; echo $? >%s) </dev/null >/dev/null 2>&1 &")
    :format(t.q(t.bin), plan.init_args, extra or "", t.q(logf), t.q(rcf)))
  return logf, rcf
end

local function wait_rc(rcf, timeout)
  for _ = 1, timeout * 5 do
    local f = io.open(rcf, "r")
    if f then
      local rc = tonumber(f:read("l") or "")
      f:close()
      if rc then return rc end
    end
    os.execute("sleep 0.2")
  end
  return nil
end

if not skip then
  root = t.tmpdir()
  plan = controlplane.plan{ root = root, token = TOKEN, certificate_key = CERT_KEY }
  local logf, rcf = run_init()
  local ok, res = pcall(controlplane.start, { root = root, kubelet_port = plan.kubelet_port, wait_manifests = 120 })
  if ok then cp = res else start_err = res end
  init_rc = wait_rc(rcf, 400)
  init_out = t.read(logf)
end

local function kubectl(args) return t.must(cp.kubectl .. " " .. args) end
local function kubectl_super(args) return t.must(cp.kubectl_super .. " " .. args) end
local function jget(args) return cjson.decode(kubectl(args .. " -o json")) end

-- Polls kubectl until it succeeds (objects made by controllers take a few seconds).
local function eventually(args, timeout, pred)
  local last
  for _ = 1, (timeout or 60) * 2 do
    local ok, out = t.sh(cp.kubectl_super .. " " .. args)
    if ok and (not pred or pred(out)) then return out end
    last = out
    os.execute("sleep 0.5")
  end
  error("timed out: kubectl " .. args .. ": " .. tostring(last), 2)
end

TestE2EInit = {}
function TestE2EInit:setUp()
  if skip then lu.skip(skip) end
  if start_err then error(start_err .. "\n--- kboot init output:\n" .. tostring(init_out)) end
end

function TestE2EInit:test_01_init_succeeds()
  lu.assertEquals(init_rc, 0, "kboot init failed:\n" .. tostring(init_out) .. "\n" .. cp:tail(10))
end

function TestE2EInit:test_02_control_plane_from_kboot_manifests_works()
  lu.assertEquals(kubectl_super("get --raw /livez"), "ok")
  -- controller-manager and scheduler authenticate with their kubeconfigs and win leader election
  eventually("-n kube-system get lease kube-controller-manager", 60)
  eventually("-n kube-system get lease kube-scheduler", 60)
  -- the controller-manager signs with kboot's CA: the kube-root-ca.crt ConfigMap holds ca.crt
  local ca = eventually("-n default get configmap kube-root-ca.crt -o jsonpath='{.data.ca\\.crt}'", 60)
  lu.assertEquals(ca, t.read(root .. "/etc/kubernetes/pki/ca.crt"))
  lu.assertEquals(kubectl_super("get node " .. cp.node_name .. " -o jsonpath='{.metadata.name}'"), cp.node_name)
end

function TestE2EInit:test_03_upload_config_and_admin_conf_works()
  -- admin.conf (O=kubeadm:cluster-admins) works only through the kubeadm:cluster-admins binding
  lu.assertEquals(kubectl("auth can-i '*' '*'"), "yes\n")
  local crb = jget("get clusterrolebinding kubeadm:cluster-admins")
  lu.assertEquals(crb.roleRef.name, "cluster-admin")
  lu.assertEquals(crb.subjects[1].name, "kubeadm:cluster-admins")
  local cc = kubectl("-n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}'")
  lu.assertStrContains(cc, "kind: ClusterConfiguration")
  lu.assertStrContains(cc, "kubernetesVersion: v1.20.2")
  lu.assertNotStrContains(cc, TOKEN_SECRET)
  local kl = kubectl("-n kube-system get configmap kubelet-config -o jsonpath='{.data.kubelet}'")
  lu.assertStrContains(kl, "kind: KubeletConfiguration")
  for _, n in ipairs({ "kubeadm:nodes-kubeadm-config", "kubeadm:kubelet-config" }) do
    kubectl("-n kube-system get role " .. n)
    local rb = jget("-n kube-system get rolebinding " .. n)
    local subj = {}
    for _, s in ipairs(rb.subjects) do subj[s.name] = true end
    lu.assertTrue(subj["system:bootstrappers:kubeadm:default-node-token"], n)
  end
end

function TestE2EInit:test_04_mark_control_plane()
  local node = jget("get node " .. cp.node_name)
  lu.assertEquals(node.metadata.labels["node-role.kubernetes.io/control-plane"], "")
  lu.assertNotNil(node.metadata.labels["node.kubernetes.io/exclude-from-external-load-balancers"])
  local found = false
  for _, ta in ipairs(node.spec.taints or {}) do
    if ta.key == "node-role.kubernetes.io/control-plane" and ta.effect == "NoSchedule" then found = true end
  end
  lu.assertTrue(found, "control-plane taint missing")
end

function TestE2EInit:test_05_bootstrap_token_and_signed_cluster_info()
  local s = jget("-n kube-system get secret bootstrap-token-" .. TOKEN_ID)
  lu.assertEquals(s.type, "bootstrap.kubernetes.io/token")
  lu.assertEquals(crypto.unbase64(s.data["token-secret"]), TOKEN_SECRET)
  lu.assertEquals(crypto.unbase64(s.data["usage-bootstrap-authentication"]), "true")
  for _, n in ipairs({ "kubeadm:kubelet-bootstrap", "kubeadm:node-autoapprove-bootstrap",
                       "kubeadm:node-autoapprove-certificate-rotation", "kubeadm:get-nodes" }) do
    kubectl("get clusterrolebinding " .. n)
  end
  kubectl("get clusterrole kubeadm:get-nodes")
  kubectl("-n kube-public get role kubeadm:bootstrap-signer-clusterinfo")
  -- the controller-manager's bootstrap signer adds the JWS (about 12 s after the token appears)
  local key = "jws-kubeconfig-" .. TOKEN_ID
  eventually("-n kube-public get configmap cluster-info -o json", 90, function(out)
    return cjson.decode(out).data[key] ~= nil
  end)
  local ci = jget("-n kube-public get configmap cluster-info")
  lu.assertStrContains(ci.data.kubeconfig, "certificate-authority-data:")
  lu.assertStrContains(ci.data.kubeconfig, cp.server)
  lu.assertTrue(crypto.jws_verify(ci.data[key], ci.data.kubeconfig, TOKEN_ID, TOKEN_SECRET))
  -- and with a wrong secret it is refused
  lu.assertNil(crypto.jws_verify(ci.data[key], ci.data.kubeconfig, TOKEN_ID, "ffffffffffffffff"))
  -- anonymous may read it (what join's discovery does)
  local ok, out = t.sh(("curl -sS --cacert %s https://127.0.0.1:%d/api/v1/namespaces/kube-public/configmaps/cluster-info")
    :format(t.q(root .. "/etc/kubernetes/pki/ca.crt"), cp.api_port))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, key)
end

function TestE2EInit:test_06_token_list_shows_the_token()
  local out = t.must(t.q(t.bin) .. " token list --root " .. t.q(root))
  lu.assertStrContains(out, "TOKEN")
  lu.assertStrContains(out, TOKEN)
  lu.assertStrContains(out, "authentication,signing")
end

function TestE2EInit:test_07_upload_certs()
  local s = jget("-n kube-system get secret kubeadm-certs")
  for _, k in ipairs({ "ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key",
                       "etcd-ca.crt", "etcd-ca.key" }) do
    lu.assertNotNil(s.data[k], k)
  end
  lu.assertEquals(s.metadata.ownerReferences[1].kind, "Secret")
  -- sealed: the plaintext CA is not in the Secret, and opens with the certificate key
  local sealed = crypto.unbase64(s.data["ca.crt"])
  lu.assertNotStrContains(sealed, "BEGIN CERTIFICATE")
  local tokens = require("kboot.tokens")
  local files = assert(tokens.open_certs_secret(s, CERT_KEY))
  lu.assertEquals(files["ca.crt"], t.read(root .. "/etc/kubernetes/pki/ca.crt"))
end

function TestE2EInit:test_08_addons()
  local dep = jget("-n kube-system get deployment coredns")
  lu.assertStrContains(dep.spec.template.spec.containers[1].image, "coredns")
  lu.assertEquals(kubectl("-n kube-system get service kube-dns -o jsonpath='{.spec.clusterIP}'"), "10.96.0.10")
  kubectl("-n kube-system get configmap coredns")
  local ds = jget("-n kube-system get daemonset kube-proxy")
  lu.assertStrContains(ds.spec.template.spec.containers[1].image, "kube-proxy:v1.20.2")
  local cm = jget("-n kube-system get configmap kube-proxy")
  lu.assertNotNil(cm.data["config.conf"])
  lu.assertStrContains(cm.data["kubeconfig.conf"], cp.server)
end

function TestE2EInit:test_09_show_join_command()
  lu.assertStrContains(init_out, "join 127.0.0.1:" .. cp.api_port .. " --token " .. TOKEN)
  local pin = t.must(("openssl x509 -in %s -noout -pubkey | openssl pkey -pubin -outform der | sha256sum")
    :format(t.q(root .. "/etc/kubernetes/pki/ca.crt"))):match("^(%x+)")
  lu.assertStrContains(init_out, "--discovery-token-ca-cert-hash sha256:" .. pin)
  lu.assertStrContains(init_out, "--certificate-key " .. CERT_KEY)
end

-- Every object in the namespaces kboot writes to, with its resourceVersion (aside: kubeadm-certs,
-- whose sealed values get a fresh nonce, checked for content in test_07; Nodes, whose status the
-- controller-manager updates; service account token Secrets, made by the token controller).
local function snapshot()
  local out = {}
  for _, args in ipairs({
    "get configmaps,secrets,serviceaccounts,services,deployments,daemonsets,roles,rolebindings -A",
    "get clusterroles,clusterrolebindings,nodes",
  }) do
    local items = cjson.decode(kubectl_super(args .. " -o json")).items
    for _, it in ipairs(items) do
      local id = it.kind .. " " .. (it.metadata.namespace or "") .. "/" .. it.metadata.name
      if not id:find("kubeadm-certs", 1, true) and not id:find("^Node ") and not (id:find("^Secret .*%-token%-%w+$") and not id:find("bootstrap-token-", 1, true)) then
        out[#out + 1] = id .. " " .. it.metadata.resourceVersion
      end
    end
  end
  table.sort(out)
  return table.concat(out, "\n")
end

function TestE2EInit:test_10_second_init_changes_nothing()
  lu.assertEquals(init_rc, 0, "first init failed")
  -- let controllers settle (bootstrap signer, service account tokens) before comparing
  do
    eventually("-n kube-public get configmap cluster-info -o json", 90, function(out)
      return cjson.decode(out).data["jws-kubeconfig-" .. TOKEN_ID] ~= nil
    end)
  end
  os.execute("sleep 3")
  local files = t.tree_hash(root .. "/etc/kubernetes") .. t.tree_hash(root .. "/var/lib/kubelet")
  local before = snapshot()
  local logf, rcf = run_init()
  local rc = wait_rc(rcf, 300)
  local out = t.read(logf)
  lu.assertEquals(rc, 0, out)
  lu.assertEquals(t.tree_hash(root .. "/etc/kubernetes") .. t.tree_hash(root .. "/var/lib/kubelet"), files)
  local after = snapshot()
  if after ~= before then
    local was, diff = {}, {}
    for l in before:gmatch("[^\n]+") do was[l] = true end
    for l in after:gmatch("[^\n]+") do if not was[l] then diff[#diff + 1] = "changed or new: " .. l end end
    lu.fail("the second init changed objects:\n" .. table.concat(diff, "\n") .. "\n--- its output:\n" .. out)
  end
end

local rc = lu.LuaUnit.run("-v")
if cp and rc ~= 0 then io.stderr:write("--- kboot init output:\n", tostring(init_out), "\n", cp:tail(15), "\n") end
if cp then
  cp:stop()
  -- cleanup stops the processes: nothing listens on the API server port any more
  if t.sh(("ss -Hltn 'sport = :%d' | grep -q ."):format(cp.api_port)) then
    io.stderr:write("kube-apiserver still listening after cp:stop()\n")
    rc = 1
  end
end
t.cleanup()
os.exit(rc)

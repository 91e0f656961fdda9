-- End to end: `kboot init --patches DIR` against a real control plane started from the patched static
-- Pod manifests (tests/lib/controlplane.lua plays the kubelet: a flag a patch adds is one the real
-- kube-apiserver runs with). The real API server is the judge of what was patched: it accepts each
-- patched manifest as a Pod (`kubectl apply --dry-run=server`), its mirror Pod carries the patched
-- CPU request, and the coredns Deployment it holds is the patched one. Skipped when the v1.20.2
-- binaries are absent (tests/e2e/build-control-plane.sh).
local lu = require("luaunit")
local t = require("testlib")
local controlplane = require("controlplane")
local cjson = require("cjson")

local skip = controlplane.missing()
local cp, root, init_out, init_rc, start_err

local PATCHES = {
  ["kube-apiserver.yaml"] = [[
spec:
  containers:
  - name: kube-apiserver
    resources:
      requests:
        cpu: 500m
    env:
    - name: KBOOT_PATCHED
      value: "yes"
]],
  ["kube-apiserver+json.yaml"] = "- {op: add, path: /spec/containers/0/command/-, value: --v=2}\n",
  ["kube-scheduler+merge.yaml"] = "metadata:\n  annotations:\n    kboot.test/patched: \"yes\"\n",
  ["kubeletconfiguration.yaml"] = "maxPods: 42\n",
  ["corednsdeployment.yaml"] = [[
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: coredns
        resources:
          limits:
            memory: 200Mi
]],
}

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
end

if not skip then
  root = t.tmpdir()
  local plan = controlplane.plan{ root = root, token = "kbpatc.0123456789abcdef" }
  local dir = root .. "/patches"
  t.must("mkdir -p " .. t.q(dir))
  for name, text in pairs(PATCHES) do t.write(dir .. "/" .. name, text) end
  local logf, rcf = root .. "/init.log", root .. "/init.rc"
  t.must(("(%s init %s --skip-phases=preflight --patches %s >%s 2>&1; echo $? >%s) </dev/null >/dev/null 2>&1 &")
    :format(t.q(t.bin), plan.init_args, t.q(dir), t.q(logf), t.q(rcf)))
  local ok, res = pcall(controlplane.start, { root = root, kubelet_port = plan.kubelet_port, wait_manifests = 120 })
  if ok then cp = res else start_err = res end
  init_rc = wait_rc(rcf, 400)
  init_out = t.read(logf)
end

local function jget(args) return cjson.decode(t.must(cp.kubectl_super .. " " .. args .. " -o json")) end

TestE2EPatches = {}
function TestE2EPatches:setUp()
  if skip then lu.skip(skip) end
  if start_err then error(start_err .. "\n--- kboot init output:\n" .. tostring(init_out)) end
end

function TestE2EPatches:test_01_init_succeeds_with_the_patches_applied()
  lu.assertEquals(init_rc, 0, "kboot init failed:\n" .. tostring(init_out) .. "\n" .. cp:tail(10))
  lu.assertStrContains(init_out, '[patches] Applied patch of type "application/json-patch+json" to target "kube-apiserver"')
  lu.assertStrContains(init_out, '[patches] Applied patch of type "application/strategic-merge-patch+json" to target "corednsdeployment"')
end

function TestE2EPatches:test_02_the_api_server_runs_the_patched_command()
  lu.assertEquals(t.must(cp.kubectl_super .. " get --raw /livez"), "ok")
  -- the harness runs the manifest's command as it is (re-rooted): the patched flag is there
  local cmdline = t.read("/proc/" .. cp.pids["kube-apiserver"] .. "/cmdline"):gsub("%z", " ")
  lu.assertStrContains(cmdline, " --v=2 ")
  lu.assertStrContains(cmdline, "--secure-port=")
end

-- retried while the controller-manager has not made kube-system's default ServiceAccount yet (the
-- admission of a Pod needs it)
local function eventually(cmd, timeout)
  local out
  for _ = 1, (timeout or 60) * 2 do
    local ok
    ok, out = t.sh(cmd)
    if ok then return out end
    os.execute("sleep 0.5")
  end
  error("timed out: " .. cmd .. ": " .. tostring(out), 2)
end

function TestE2EPatches:test_03_the_api_server_accepts_every_patched_manifest()
  for _, name in ipairs({ "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler" }) do
    local out = eventually(("%s apply --dry-run=server -f %s"):format(cp.kubectl_super,
      t.q(root .. "/etc/kubernetes/manifests/" .. name .. ".yaml")))
    lu.assertStrContains(out, "pod/" .. name .. " created (server dry run)")
  end
  local pod = jget("-n kube-system get pod kube-apiserver-kbnode")
  lu.assertEquals(pod.spec.containers[1].resources.requests.cpu, "500m")
  lu.assertEquals(pod.spec.containers[1].env, { { name = "KBOOT_PATCHED", value = "yes" } })
  pod = jget("-n kube-system get pod kube-scheduler-kbnode")
  lu.assertEquals(pod.metadata.annotations["kboot.test/patched"], "yes")
end

function TestE2EPatches:test_04_coredns_deployment_is_the_patched_one()
  local dep = jget("-n kube-system get deployment coredns")
  lu.assertEquals(dep.spec.replicas, 1)
  lu.assertEquals(dep.spec.template.spec.containers[1].resources.limits.memory, "200Mi")
  lu.assertEquals(dep.spec.template.spec.containers[1].resources.requests.memory, "70Mi")
end

function TestE2EPatches:test_05_kubelet_config_patched_on_disk_not_in_the_cluster()
  lu.assertStrContains(t.read(root .. "/var/lib/kubelet/config.yaml"), "\nmaxPods: 42\n")
  -- kubeadm patches this node's file; the cluster's kubelet-config stays the shared one
  local cm = jget("-n kube-system get configmap kubelet-config")
  lu.assertNil(cm.data.kubelet:find("maxPods: 42", 1, true))
end

local rc = lu.LuaUnit.run("-v")
if cp and rc ~= 0 then io.stderr:write("--- kboot init output:\n", tostring(init_out), "\n", cp:tail(15), "\n") end
if cp then cp:stop() end
t.cleanup()
os.exit(rc)

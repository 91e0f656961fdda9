-- kubeadm's patches through the kboot binary (`kboot init --patches DIR`, patches.directory): every
-- patch type on every target kind, lexical order, the dry run showing the patched files, kubectl
-- reading what was patched, kubectl's own strategic merge as the reference (a Pod and a Deployment),
-- and every bad patch directory one line, exit 1, nothing written. (join: tests/lua/test_join_flow.lua;
-- a real API server running the patched manifests: test_e2e_patches.lua.)
local lu = require("luaunit")
local t = require("testlib")
local yaml = require("kboot.yaml")
local cjson = require("cjson")
local patch = require("kboot.patch")

local BASE = "--ignore-preflight-errors=all --apiserver-advertise-address 192.0.2.10 --node-name node-1"
local PODS = { "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler" }
local CPU = '{"spec":{"containers":[{"name":"kube-apiserver","resources":{"requests":{"cpu":"500m"}}}]}}'

-- a directory holding files { ["name"] = text } (names may hold a subdirectory)
local function dir_with(files)
  local d = t.tmpdir()
  for name, text in pairs(files) do
    local sub = name:match("^(.*)/[^/]*$")
    if sub then t.must("mkdir -p " .. t.q(d .. "/" .. sub)) end
    t.write(d .. "/" .. name, text)
  end
  return d
end

-- kboot init ARGS -> code, stdout, stderr
local function init(args)
  local e = t.tmpdir() .. "/stderr"
  local ok, out, code = t.sh(("%s init %s 2>%s"):format(t.q(t.bin), args, t.q(e)))
  return ok and 0 or code, out, t.read(e)
end

-- the files of a dry run's report: { [path] = content }; and the API objects printed before it
local function report(out)
  local files, pos = {}, 1
  while true do
    local s, e, path, n = out:find("\n?%-%-%- (/[^\n]-) %(mode %d+, (%d+) bytes%)\n", pos)
    if not s then break end
    files[path] = out:sub(e + 1, e + tonumber(n))
    pos = e + tonumber(n) + 1
  end
  -- the objects, as kboot.kube's dry run prints them (documents between "---" lines), then the
  -- join command text, then the report
  local objects = {}
  for chunk in (out:sub(1, (out:find("\n%-%-%- /") or #out)) .. "\n---\n"):gmatch("(.-)\n%-%-%-\n") do
    local ok, d = pcall(yaml.decode, chunk)
    if ok and type(d) == "table" and d.kind then objects[#objects + 1] = d end
  end
  return files, objects
end

local function applied_lines(err)
  local l = {}
  for target in err:gmatch('%[patches%] Applied patch of type "[^"]+" to target "([^"]+)"') do l[#l + 1] = target end
  return l
end

local function kubectl_json(args) return cjson.decode(t.must("kubectl " .. args .. " -o json")) end
-- kubectl's typed reading of a file, printed back: what it makes of a manifest
local function kubectl_read(file) return kubectl_json("patch --local --type merge -p '{}' -f " .. t.q(file)) end

TestPatches = {}
function TestPatches:tearDown() t.cleanup() end

function TestPatches:test_every_type_on_every_target_and_the_dry_run_shows_them()
  local files = {}
  local function labels(target)
    files[target .. ".yaml"] = "metadata:\n  labels:\n    kboot.test/strategic: \"yes\"\n"
    files[target .. "+merge.json"] = '{"metadata": {"labels": {"kboot.test/merge": "yes"}}}'
    files[target .. "+json.yaml"] = "- op: add\n  path: /metadata/labels/kboot.test~1json\n  value: \"yes\"\n"
  end
  for _, p in ipairs(PODS) do labels(p) end
  labels("corednsdeployment")
  files["kubeletconfiguration.yaml"] = "maxPods: 111\n"
  files["kubeletconfiguration+merge.json"] = '{"podPidsLimit": 222}'
  files["kubeletconfiguration+json.yaml"] = "- {op: add, path: /containerLogMaxFiles, value: 3}\n"
  files["README.md"] = "not a patch\n"
  local d = dir_with(files)
  local root = t.tmpdir()
  local before = t.tree_hash(root)
  local code, out, err = init(("--root %s --dry-run --patches %s %s"):format(t.q(root), t.q(d), BASE))
  lu.assertEquals(code, 0, err)
  lu.assertEquals(t.tree_hash(root), before, "a dry run writes nothing")
  lu.assertStrContains(err, ('[patches] Reading patches from path "%s"'):format(d))
  lu.assertStrContains(err, '[patches] Ignoring file "README.md": the file extension must be one of [json yaml]')
  lu.assertStrContains(err, '[patches] Applied patch of type "application/json-patch+json" to target "etcd"')
  lu.assertStrContains(err, '[patches] Applied patch of type "application/merge-patch+json" to target "kube-scheduler"')
  lu.assertStrContains(err, '[patches] Applied patch of type "application/strategic-merge-patch+json" to target "corednsdeployment"')
  -- phase order, then each target's files in lexical order; the kubelet's instance configuration
  -- (kubeadm's NodeLocalCRISocket, v1.34) is applied over the user's patches, as kubeadm does
  lu.assertEquals(applied_lines(err), { "etcd", "etcd", "etcd", "kube-apiserver", "kube-apiserver", "kube-apiserver",
    "kube-controller-manager", "kube-controller-manager", "kube-controller-manager",
    "kube-scheduler", "kube-scheduler", "kube-scheduler",
    "kubeletconfiguration", "kubeletconfiguration", "kubeletconfiguration", "kubeletconfiguration",
    "corednsdeployment", "corednsdeployment", "corednsdeployment" })
  local shown, objects = report(out)
  local tmp = t.tmpdir()
  for _, p in ipairs(PODS) do
    local text = assert(shown["/etc/kubernetes/manifests/" .. p .. ".yaml"], p)
    t.write(tmp .. "/" .. p .. ".yaml", text)
    local pod = kubectl_read(tmp .. "/" .. p .. ".yaml")
    lu.assertEquals(pod.metadata.labels, { component = p, tier = "control-plane", ["kboot.test/strategic"] = "yes",
                                           ["kboot.test/merge"] = "yes", ["kboot.test/json"] = "yes" }, p)
    lu.assertEquals(pod.spec.containers[1].name, p)
  end
  local kc = assert(yaml.decode(shown["/var/lib/kubelet/config.yaml"]))
  lu.assertEquals({ kc.maxPods, kc.podPidsLimit, kc.containerLogMaxFiles }, { 111, 222, 3 })
  lu.assertEquals(kc.kind, "KubeletConfiguration")
  lu.assertEquals(kc.containerRuntimeEndpoint, "unix:///var/run/containerd/containerd.sock")
  local dep
  for _, o in ipairs(objects) do if o.kind == "Deployment" then dep = o end end
  lu.assertEquals(dep.metadata.labels, { ["k8s-app"] = "kube-dns", ["kboot.test/strategic"] = "yes",
                                         ["kboot.test/merge"] = "yes", ["kboot.test/json"] = "yes" })
  t.write(tmp .. "/coredns.yaml", yaml.encode(dep))
  lu.assertEquals(kubectl_read(tmp .. "/coredns.yaml").spec.template.spec.containers[1].name, "coredns")
end

function TestPatches:test_cpu_request_500m_reaches_the_manifest_as_kubectl_patches_it()
  -- the reference: kubectl's strategic merge of the same patch into the unpatched manifest
  local plain = t.tmpdir()
  local code, out, err = init(("--root %s --dry-run --offline %s"):format(t.q(plain), BASE))
  lu.assertEquals(code, 0, err)
  local unpatched = t.tmpdir() .. "/kube-apiserver.yaml"
  t.write(unpatched, report(out)["/etc/kubernetes/manifests/kube-apiserver.yaml"])
  lu.assertStrContains(t.read(unpatched), "cpu: 250m")
  local want = kubectl_json(("patch --local --type strategic -p %s -f %s"):format(t.q(CPU), t.q(unpatched)))
  lu.assertEquals(want.spec.containers[1].resources.requests.cpu, "500m")

  local d = dir_with({ ["kube-apiserver.yaml"] = "spec:\n  containers:\n  - name: kube-apiserver\n    resources:\n      requests:\n        cpu: 500m\n" })
  local root = t.tmpdir()
  code, out, err = init(("--root %s --offline --patches %s %s"):format(t.q(root), t.q(d), BASE))
  lu.assertEquals(code, 0, err)
  local file = root .. "/etc/kubernetes/manifests/kube-apiserver.yaml"
  local text = t.read(file)
  lu.assertStrContains(text, "        cpu: 500m\n")
  lu.assertNil(text:find("250m", 1, true))
  lu.assertEquals(t.must("stat -c %a " .. t.q(file)), "600\n")
  lu.assertEquals(kubectl_read(file), want)
  -- re-running with the same patches changes nothing
  local h = t.tree_hash(root)
  code, out, err = init(("--root %s --offline --patches %s %s"):format(t.q(root), t.q(d), BASE))
  lu.assertEquals(code, 0, err)
  lu.assertEquals(t.tree_hash(root), h)
end

function TestPatches:test_lexical_order_subdirectories_and_documents()
  -- each json patch tests the value the one before it left: any other order fails the run
  local d = dir_with({
    ["kube-apiserver0+json.yaml"] = [[
- {op: test, path: /spec/containers/0/resources/requests/cpu, value: 250m}
- {op: replace, path: /spec/containers/0/resources/requests/cpu, value: 300m}
]],
    ["kube-apiserver1+merge.yaml"] = "metadata: {annotations: {step: one}}\n",
    ["kube-apiserver2+json.yaml"] = [[
- {op: test, path: /spec/containers/0/resources/requests/cpu, value: 300m}
- {op: test, path: /metadata/annotations/step, value: one}
- {op: replace, path: /spec/containers/0/resources/requests/cpu, value: 400m}
---
- {op: test, path: /spec/containers/0/resources/requests/cpu, value: 400m}
- {op: add, path: /metadata/annotations/step, value: two}
]],
    ["z/kube-apiserver+json.json"] = [[
[{"op": "test", "path": "/metadata/annotations/step", "value": "two"},
 {"op": "replace", "path": "/spec/containers/0/resources/requests/cpu", "value": "500m"}]
]],
    ["empty/kube-apiserver.yaml"] = "",
  })
  local root = t.tmpdir()
  local code, out, err = init(("--root %s --dry-run --offline --patches %s %s"):format(t.q(root), t.q(d), BASE))
  lu.assertEquals(code, 0, err)
  lu.assertStrContains(err, '[patches] Found the following patch files: [kube-apiserver0+json.yaml '
    .. 'kube-apiserver1+merge.yaml kube-apiserver2+json.yaml kube-apiserver+json.json]')
  lu.assertStrContains(err, '[patches] Ignoring empty file: "kube-apiserver.yaml"')
  lu.assertEquals(applied_lines(err), { "kube-apiserver", "kube-apiserver", "kube-apiserver", "kube-apiserver", "kube-apiserver" })
  local pod = yaml.decode(report(out)["/etc/kubernetes/manifests/kube-apiserver.yaml"])
  lu.assertEquals(pod.spec.containers[1].resources.requests.cpu, "500m")
  lu.assertEquals(pod.metadata.annotations.step, "two")
end

function TestPatches:test_patches_directory_from_the_config_file_and_the_flag_wins()
  local a = dir_with({ ["kube-scheduler+merge.yaml"] = "metadata: {labels: {from: config}}\n" })
  local b = dir_with({ ["kube-scheduler+merge.yaml"] = "metadata: {labels: {from: flag}}\n" })
  for _, v in ipairs({ "v1beta3", "v1beta4" }) do
    local cfg = t.tmpdir() .. "/kubeadm.yaml"
    t.write(cfg, ("apiVersion: kubeadm.k8s.io/%s\nkind: InitConfiguration\npatches:\n  directory: %s\n"):format(v, a))
    local code, out, err = init(("--root %s --dry-run --offline --config %s %s"):format(t.q(t.tmpdir()), t.q(cfg), BASE))
    lu.assertEquals(code, 0, err)
    lu.assertEquals(yaml.decode(report(out)["/etc/kubernetes/manifests/kube-scheduler.yaml"]).metadata.labels.from, "config", v)
    code, out, err = init(("--root %s --dry-run --offline --config %s --patches %s %s"):format(t.q(t.tmpdir()), t.q(cfg), t.q(b), BASE))
    lu.assertEquals(code, 0, err)
    lu.assertEquals(yaml.decode(report(out)["/etc/kubernetes/manifests/kube-scheduler.yaml"]).metadata.labels.from, "flag", v)
  end
end

function TestPatches:test_phase_runs_apply_only_their_targets()
  local d = dir_with({ ["kube-scheduler+merge.yaml"] = "metadata: {labels: {x: y}}\n",
                       ["etcd+json.yaml"] = "- {op: remove, path: /nothing/here}\n" })
  -- the broken etcd patch is not tried: this run renders only the scheduler
  local code, out, err = init(("phase control-plane scheduler --root %s --dry-run --patches %s %s"):format(t.q(t.tmpdir()), t.q(d), BASE))
  lu.assertEquals(code, 0, err)
  lu.assertEquals(applied_lines(err), { "kube-scheduler" })
  lu.assertEquals(yaml.decode(report(out)["/etc/kubernetes/manifests/kube-scheduler.yaml"]).metadata.labels.x, "y")
end

-- every bad patch: one line naming the file, exit 1, nothing written (not even a dry-run report)
function TestPatches:test_bad_patches_are_one_line_and_write_nothing()
  local cases = {
    { { ["kube-apiservr.yaml"] = "a: b\n" }, "kube%-apiservr%.yaml: unknown target, must be one of %[etcd kube%-apiserver "
      .. "kube%-controller%-manager kube%-scheduler kubeletconfiguration corednsdeployment%]$" },
    { { ["etcd+frob.yaml"] = "a: b\n" }, "etcd%+frob%.yaml: unknown or missing patch type after '%+', must be one of %[json merge strategic%]$" },
    { { ["etcd+.json"] = "{}" }, "etcd%+%.json: unknown or missing patch type" },
    { { ["kube-scheduler.yaml"] = "spec:\n  a: [1, 2\n" }, "kube%-scheduler%.yaml: yaml: line %d+, column %d+: " },
    { { ["kube-scheduler.yaml"] = "- a\n- b\n" }, "kube%-scheduler%.yaml: a strategic patch must be an object, not a list$" },
    { { ["kube-scheduler+merge.yaml"] = "a: 1\n---\n42\n" }, "kube%-scheduler%+merge%.yaml: document 2: a merge patch must be an object, not a scalar$" },
    { { ["kube-scheduler+json.yaml"] = "{op: add}\n" }, "kube%-scheduler%+json%.yaml: a json patch must be a list of operations$" },
    { { ["kube-apiserver+json.yaml"] = "- {op: remove, path: /spec/nothing}\n" },
      "kube%-apiserver%+json%.yaml: cannot apply this json patch to kube%-apiserver: operation 0 %(remove /spec/nothing%): path /spec/nothing does not exist$" },
    { { ["kube-apiserver+json.yaml"] = "- {op: test, path: /spec/hostNetwork, value: false}\n" },
      "kube%-apiserver%+json%.yaml: cannot apply this json patch to kube%-apiserver: operation 0 %(test /spec/hostNetwork%): test failed: /spec/hostNetwork is true, not false$" },
    { { ["kube-controller-manager.yaml"] = "spec:\n  containers:\n  - image: x\n" },
      'kube%-controller%-manager%.yaml: cannot apply this strategic patch to kube%-controller%-manager: %$%.spec%.containers: {"image":"x"} has no merge key name$' },
    { { ["etcd+merge.yaml"] = "kind: ConfigMap\n" }, "etcd%+merge%.yaml: the patched etcd is no longer an v1 Pod$" },
    { { ["kubeletconfiguration.yaml"] = "$patch: frob\n" }, 'kubeletconfiguration%.yaml: cannot apply this strategic patch to kubeletconfiguration: %$: unknown %$patch "frob"' },
    -- not --offline: the addon phase is part of this run, so its patch is tried before anything is
    -- written (and before the API server is asked for anything)
    { { ["corednsdeployment+json.yaml"] = "- {op: replace, path: /spec/replicas/x, value: 1}\n" },
      "corednsdeployment%+json%.yaml: cannot apply this json patch to corednsdeployment: operation 0 %(replace /spec/replicas/x%): path /spec/replicas/x does not exist$", "" },
    { { ["sub/kube-scheduler+merge.yaml"] = "[1]\n" }, "sub/kube%-scheduler%+merge%.yaml: a merge patch must be an object, not a list$" },
  }
  for _, c in ipairs(cases) do
    local d = dir_with(c[1])
    for _, mode in ipairs({ "", "--dry-run" }) do
      local root = t.tmpdir()
      local before = t.tree_hash(root)
      local code, out, err = init(("--root %s %s %s --patches %s %s"):format(t.q(root), mode, c[3] or "--offline", t.q(d), BASE))
      local what = next(c[1]) .. " " .. mode
      lu.assertEquals(code, 1, what .. ": " .. err)
      local lines = {}
      for l in err:gmatch("[^\n]+") do if not l:find("^%[patches%]") then lines[#lines + 1] = l end end
      lu.assertEquals(#lines, 1, what .. ": " .. err)
      local want = "^error: " .. d:gsub("%p", "%%%0") .. "/" .. c[2]
      lu.assertNotNil(lines[1]:match(want), what .. ": " .. lines[1] .. "\n  does not match " .. want)
      lu.assertEquals(out, "", what .. ": nothing reported")
      lu.assertEquals(t.tree_hash(root), before, what .. ": nothing written")
    end
  end
end

function TestPatches:test_bad_directory()
  local root = t.tmpdir()
  local file = t.tmpdir() .. "/f"
  t.write(file, "x")
  for _, c in ipairs({ { "/nonexistent/patches", "error: cannot read the patches directory /nonexistent/patches: No such file or directory" },
                       { file, ("error: the patches path %s is not a directory"):format(file) } }) do
    local before = t.tree_hash(root)
    local code, _, err = init(("--root %s --offline --patches %s %s"):format(t.q(root), t.q(c[1]), BASE))
    lu.assertEquals(code, 1, err)
    lu.assertStrContains(err, c[2] .. "\n")
    lu.assertEquals(t.tree_hash(root), before)
  end
end

-- kboot's strategic merge against kubectl's own (`kubectl patch --local --type strategic`, which
-- holds the Go types' patch tags), on a Pod and a Deployment as kboot renders them
local POD_CASES = {
  CPU,
  '{"spec":{"containers":[{"name":"sidecar","image":"busybox","command":["sleep","inf"]}]}}',
  '{"spec":{"containers":[{"name":"kube-apiserver","env":[{"name":"GODEBUG","value":"x509sha1=1"}]}]}}',
  '{"spec":{"containers":[{"name":"kube-apiserver","volumeMounts":[{"name":"audit","mountPath":"/var/log/audit"},'
    .. '{"name":"k8s-certs","mountPath":"/etc/kubernetes/pki","readOnly":false}]}],'
    .. '"volumes":[{"name":"audit","hostPath":{"path":"/var/log/audit","type":"DirectoryOrCreate"}}]}}',
  '{"spec":{"containers":[{"name":"kube-apiserver","command":["kube-apiserver","--v=4"]}]}}',
  '{"spec":{"volumes":[{"name":"ca-certs","$patch":"delete"}],"containers":[{"name":"kube-apiserver","volumeMounts":[{"mountPath":"/etc/ssl/certs","$patch":"delete"}]}]}}',
  '{"spec":{"containers":[{"$patch":"replace"},{"name":"only","image":"x"}]}}',
  '{"metadata":{"labels":{"tier":null,"extra":"v"},"annotations":{"a":"b"}},"spec":{"tolerations":[{"operator":"Exists"}],"dnsPolicy":"ClusterFirstWithHostNet"}}',
  '{"spec":{"securityContext":{"$patch":"replace","runAsUser":0},"containers":[{"name":"kube-apiserver","livenessProbe":null,"startupProbe":{"failureThreshold":50}}]}}',
  '{"spec":{"initContainers":[{"name":"init","image":"busybox"}],"containers":[{"name":"kube-apiserver","ports":[{"containerPort":6443,"name":"https"}]}]}}',
  -- directives in values with nothing to merge into: what apimachinery leaves of them
  '{"spec":{"affinity":{"$patch":"replace","nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":'
    .. '{"nodeSelectorTerms":[{"matchExpressions":[{"key":"a","operator":"Exists"}]}]}}}}}',
  '{"spec":{"initContainers":[{"$patch":"replace"},{"name":"i","image":"b","env":[{"name":"x","value":"1"},{"$patch":"delete","name":"y"}]}]}}',
  '{"spec":{"dnsConfig":{"options":[{"name":"a","value":null}],"nameservers":null}}}',
}
local DEPLOYMENT_CASES = {
  '{"spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"coredns","resources":{"limits":{"memory":"300Mi"}}}]}}}}',
  '{"spec":{"template":{"spec":{"containers":[{"name":"coredns","args":["-conf","/etc/coredns/Corefile","-dns.port","1053"],'
    .. '"ports":[{"containerPort":1053,"name":"dns-alt","protocol":"UDP"}]}],"tolerations":[{"operator":"Exists"}]}}}}',
  '{"spec":{"template":{"metadata":{"annotations":{"x":"y"}},"spec":{"volumes":[{"name":"extra","emptyDir":{}}],'
    .. '"containers":[{"name":"coredns","volumeMounts":[{"name":"extra","mountPath":"/extra"}]}]}}}}',
}

local function compare(file, cases, schema)
  local doc = assert(yaml.decode(t.read(file)))
  local tmp = t.tmpdir() .. "/patched.yaml"
  for _, p in ipairs(cases) do
    local want = kubectl_json(("patch --local --type strategic -p %s -f %s"):format(t.q(p), t.q(file)))
    local got = assert(patch.strategic(doc, assert(yaml.decode(p)), schema))
    t.write(tmp, yaml.encode(got))
    lu.assertEquals(kubectl_read(tmp), want, p)
  end
end

function TestPatches:test_strategic_merge_is_kubectls()
  local code, out, err = init(("--root %s --dry-run %s"):format(t.q(t.tmpdir()), BASE))
  lu.assertEquals(code, 0, err)
  local files, objects = report(out)
  local tmp = t.tmpdir()
  t.write(tmp .. "/pod.yaml", files["/etc/kubernetes/manifests/kube-apiserver.yaml"])
  compare(tmp .. "/pod.yaml", POD_CASES, patch.schemas.Pod)
  for _, o in ipairs(objects) do
    if o.kind == "Deployment" then t.write(tmp .. "/deployment.yaml", yaml.encode(o)) end
  end
  compare(tmp .. "/deployment.yaml", DEPLOYMENT_CASES, patch.schemas.Deployment)
end

os.exit(lu.LuaUnit.run())

-- The static Pod manifests as written to disk, parsed by a real peer (kubectl, offline:
-- `kubectl label --local -f FILE x=y -o json`), and compared field by field with the table in
-- tests/data/manifests/expected.lua, written from kubeadm's source.
local lu = require("luaunit")
local t = require("testlib")
local fixture = require("ctx_fixture")
local cjson = require("cjson")
local fs = require("kboot.fs")

local expected = dofile(os.getenv("KBOOT_SRC") .. "/tests/data/manifests/expected.lua")
local components = {
  ["kube-apiserver"] = require("kboot.components.kube_apiserver"),
  ["kube-controller-manager"] = require("kboot.components.kube_controller_manager"),
  ["kube-scheduler"] = require("kboot.components.kube_scheduler"),
  ["etcd"] = require("kboot.components.etcd"),
}
local component = require("kboot.component")
local quiet = { info = function() end, warn = function() end, debug = function() end, error = function() end }

local function ctx_for(root, o)
  o = o or {}
  o.root = root
  local c = fixture.new(o)
  c.log, c.host.proxy_env = quiet, {}
  return c
end

-- kubectl's view of a manifest file, as a Lua table.
local function kubectl(file)
  local out = t.must(("kubectl label --local -f %s kboot-test=yes -o json"):format(t.q(file)))
  return cjson.decode(out)
end

local function mode(path) return t.must(("stat -c %%a %s"):format(t.q(path))):match("%d+") end

TestManifestsKubectl = {}
function TestManifestsKubectl:setUp()
  self.root = t.tmpdir()
end
function TestManifestsKubectl:tearDown() fs.set_root("/"); t.cleanup() end

function TestManifestsKubectl:test_default_manifests_match_kubeadm()
  local ctx = ctx_for(self.root)
  for name, comp in pairs(components) do
    assert(component.run(ctx, comp))
    local file = self.root .. "/etc/kubernetes/manifests/" .. name .. ".yaml"
    lu.assertEquals(mode(file), "600", name)
    local pod = kubectl(file)
    local want = expected[name]
    lu.assertEquals(pod.apiVersion, "v1")
    lu.assertEquals(pod.kind, "Pod")
    lu.assertEquals(pod.metadata.name, name)
    lu.assertEquals(pod.metadata.namespace, "kube-system")
    lu.assertEquals(pod.metadata.labels, { component = name, tier = "control-plane", ["kboot-test"] = "yes" })
    if want.annotations then lu.assertEquals(pod.metadata.annotations, want.annotations, name) end
    lu.assertTrue(pod.spec.hostNetwork)
    lu.assertEquals(pod.spec.priorityClassName, "system-node-critical")
    lu.assertEquals(pod.spec.priority, 2000001000)
    lu.assertEquals(pod.spec.securityContext, { seccompProfile = { type = "RuntimeDefault" } })
    lu.assertEquals(#pod.spec.containers, 1)
    local c = pod.spec.containers[1]
    lu.assertEquals(c.name, name)
    lu.assertEquals(c.image, want.image)
    lu.assertEquals(c.imagePullPolicy, "IfNotPresent")
    lu.assertEquals(c.command, want.command, name)
    lu.assertEquals(c.resources.requests.cpu, want.cpu)
    lu.assertEquals(c.resources.requests.memory, want.memory)
    lu.assertNil(c.env)
    for probe, p in pairs(want.probes) do
      local got = c[probe]
      lu.assertEquals({ host = got.httpGet.host, path = got.httpGet.path, port = got.httpGet.port, scheme = got.httpGet.scheme,
        initialDelaySeconds = got.initialDelaySeconds, timeoutSeconds = got.timeoutSeconds,
        failureThreshold = got.failureThreshold, periodSeconds = got.periodSeconds }, p, name .. " " .. probe)
    end
    for _, probe in ipairs({ "livenessProbe", "readinessProbe", "startupProbe" }) do
      if not want.probes[probe] then lu.assertNil(c[probe], name .. " " .. probe) end
    end
    local vols, mounts = {}, {}
    for _, v in ipairs(pod.spec.volumes) do vols[v.name] = v end
    for _, m in ipairs(c.volumeMounts) do mounts[m.name] = m end
    local n = 0
    for vname, v in pairs(want.volumes) do
      n = n + 1
      lu.assertEquals(vols[vname].hostPath, { path = v[1], type = v[2] }, name .. " " .. vname)
      lu.assertEquals(mounts[vname].mountPath, v[3], name .. " " .. vname)
      lu.assertEquals(mounts[vname].readOnly or false, v[4], name .. " " .. vname)
    end
    lu.assertEquals(#pod.spec.volumes, n, name)
    lu.assertEquals(#c.volumeMounts, n, name)
  end
  lu.assertEquals(mode(self.root .. "/etc/kubernetes/manifests"), "700")
  lu.assertEquals(mode(self.root .. "/var/lib/etcd"), "700")
  -- re-running rewrites nothing
  local before = t.tree_hash(self.root)
  local ctx2 = ctx_for(self.root)
  for _, comp in pairs(components) do assert(component.run(ctx2, comp)) end
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestManifestsKubectl:test_extra_args_volumes_envs_reach_the_pod()
  local ctx = ctx_for(self.root, { cluster = {
    apiServer = {
      extraArgs = { { name = "audit-log-path", value = "/var/log/kubernetes/audit.log" },
                    { name = "secure-port", value = "7443" } },
      extraVolumes = { { name = "audit", hostPath = "/var/log/kubernetes", mountPath = "/var/log/kubernetes",
                         readOnly = false, pathType = "DirectoryOrCreate" } },
      extraEnvs = { { name = "GODEBUG", value = "x509sha1=1" }, { name = "A_FIRST", value = "1" } },
    },
    scheduler = { extraArgs = { { name = "bind-address", value = "0.0.0.0" } } },
  } })
  ctx.host.proxy_env = { { name = "HTTPS_PROXY", value = "http://proxy:3128" } }
  assert(component.run(ctx, components["kube-apiserver"]))
  assert(component.run(ctx, components["kube-scheduler"]))
  local pod = kubectl(self.root .. "/etc/kubernetes/manifests/kube-apiserver.yaml")
  local c = pod.spec.containers[1]
  local has = {}
  for _, a in ipairs(c.command) do has[a] = true end
  lu.assertTrue(has["--audit-log-path=/var/log/kubernetes/audit.log"])
  lu.assertTrue(has["--secure-port=7443"])
  lu.assertNil(has["--secure-port=6443"])
  lu.assertEquals(c.env, { { name = "A_FIRST", value = "1" }, { name = "GODEBUG", value = "x509sha1=1" },
                           { name = "HTTPS_PROXY", value = "http://proxy:3128" } })
  local found
  for _, m in ipairs(c.volumeMounts) do if m.name == "audit" then found = m end end
  lu.assertEquals(found, { name = "audit", mountPath = "/var/log/kubernetes" })
  -- the scheduler probes the pod IP when bound to all addresses
  local s = kubectl(self.root .. "/etc/kubernetes/manifests/kube-scheduler.yaml").spec.containers[1]
  lu.assertNil(s.livenessProbe.httpGet.host)
end

function TestManifestsKubectl:test_external_etcd_apiserver()
  local ctx = ctx_for(self.root, { external_etcd = { endpoints = { "https://10.0.0.2:2379" },
    caFile = "/etc/etcd/ca.crt", certFile = "/etc/etcd/client.crt", keyFile = "/etc/etcd/client.key" } })
  assert(component.run(ctx, components["kube-apiserver"]))
  -- init's flow skips etcd/local with external etcd
  local phases, flow = require("kboot.phases"), require("kboot.flows.init")
  local ok, f = phases.run(ctx, assert(phases.select(phases.expand(flow.phases), { only = "etcd" })))
  lu.assertTrue(ok, f and f[1] and f[1].msg)
  lu.assertFalse(fs.exists("/etc/kubernetes/manifests/etcd.yaml"))
  local pod = kubectl(self.root .. "/etc/kubernetes/manifests/kube-apiserver.yaml")
  local vols = {}
  for _, v in ipairs(pod.spec.volumes) do vols[v.name] = v.hostPath.path end
  lu.assertEquals(vols["etcd-certs-0"], "/etc/etcd")
end

function TestManifestsKubectl:test_bad_extra_volume_is_rejected_before_writing()
  local before = t.tree_hash(self.root)
  local ctx = ctx_for(self.root, { cluster = { apiServer = { extraVolumes = {
    { name = "ok", hostPath = "/a", mountPath = "/a" }, { name = "audit", mountPath = "/var/log" } } } } })
  local ok, err = pcall(component.run, ctx, components["kube-apiserver"])
  lu.assertFalse(ok) -- raised from the render: nothing was written
  lu.assertStrContains(err.msg, "apiServer.extraVolumes[1].hostPath: a non-empty string is required")
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestManifestsKubectl:test_write_failure_is_clear_and_atomic()
  -- the manifests directory is a file: nothing can be written there
  t.must(("mkdir -p %s && touch %s"):format(t.q(self.root .. "/etc/kubernetes"), t.q(self.root .. "/etc/kubernetes/manifests")))
  local before = t.tree_hash(self.root)
  local ok, err = component.run(ctx_for(self.root), components["kube-scheduler"])
  lu.assertNil(ok)
  lu.assertStrContains(err.msg, "cannot write " .. self.root .. "/etc/kubernetes/manifests/kube-scheduler.yaml")
  lu.assertEquals(t.tree_hash(self.root), before)
end

os.exit(lu.LuaUnit.run("-v"))

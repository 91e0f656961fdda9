-- The online init phases without a cluster: render functions (coredns, kube-proxy, upload-config)
-- checked field by field against kubeadm's manifests, the version table, mark-control-plane's patch,
-- kubelet-finalize's rewrite, the "already right" check, and wait-control-plane's diagnosis with fake
-- /proc and /etc files under a --root sandbox and closed or misbehaving ports.
local lu = require("luaunit")
local t = require("testlib")
local fixture = require("ctx_fixture")
local yaml = require("kboot.yaml")

local function by_kind(objs)
  local m = {}
  for _, o in ipairs(objs) do m[o.kind .. "/" .. o.metadata.name] = o end
  return m
end

local function ctx(o)
  o = o or {}
  local c = fixture.new(o)
  c.log = { info = function() end, warn = function() end, error = function() end, debug = function() end }
  return c
end

---------------------------------------------------------------------------------------------------
TestCoreDNS = {}

function TestCoreDNS:test_objects_and_order_as_kubeadm()
  local a = require("kboot.components.coredns").render(ctx())
  local kinds = {}
  for _, o in ipairs(a.objects) do kinds[#kinds + 1] = o.kind .. "/" .. o.metadata.name end
  lu.assertEquals(kinds, { "ConfigMap/coredns", "ClusterRole/system:coredns", "ClusterRoleBinding/system:coredns",
                           "ServiceAccount/coredns", "Deployment/coredns", "Service/kube-dns" })
  local m = by_kind(a.objects)
  local svc = m["Service/kube-dns"]
  lu.assertEquals(svc.spec.clusterIP, "10.96.0.10")
  lu.assertEquals(svc.metadata.labels["kubernetes.io/name"], "CoreDNS")
  lu.assertEquals(svc.metadata.annotations["prometheus.io/port"], "9153")
  lu.assertEquals(#svc.spec.ports, 3)
  local d = m["Deployment/coredns"]
  lu.assertEquals(d.spec.replicas, 2)
  local pod = d.spec.template.spec
  lu.assertEquals(pod.priorityClassName, "system-cluster-critical")
  lu.assertEquals(pod.dnsPolicy, "Default")
  lu.assertEquals(pod.tolerations[2], { key = "node-role.kubernetes.io/control-plane", effect = "NoSchedule" })
  local c = pod.containers[1]
  lu.assertEquals(c.image, "registry.k8s.io/coredns/coredns:v1.11.3")
  lu.assertEquals(c.args, { "-conf", "/etc/coredns/Corefile" })
  lu.assertEquals(c.resources, { limits = { memory = "170Mi" }, requests = { cpu = "100m", memory = "70Mi" } })
  lu.assertEquals(c.securityContext.capabilities, { add = { "NET_BIND_SERVICE" }, drop = { "ALL" } })
  local rules = m["ClusterRole/system:coredns"].rules
  lu.assertEquals(rules[2].apiGroups, { "discovery.k8s.io" })
  lu.assertEquals(m["ClusterRoleBinding/system:coredns"].subjects[1], { kind = "ServiceAccount", name = "coredns", namespace = "kube-system" })
end

function TestCoreDNS:test_corefile_follows_domain_and_version()
  local cd = require("kboot.components.coredns")
  local old = cd.corefile(ctx({ cluster = { networking = { dnsDomain = "corp.example" } } }))
  lu.assertStrContains(old, "    kubernetes corp.example in-addr.arpa ip6.arpa {\n")
  lu.assertStrContains(old, "\n    cache 30\n    loop\n")           -- v1.31: no cache exclusions yet
  local new = cd.corefile(ctx({ cluster = { kubernetesVersion = "v1.32.0" } }))
  lu.assertStrContains(new, "    cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n    }\n    loop\n")
  -- the whole Corefile is valid YAML inside the ConfigMap and survives a round trip
  local cm = cd.render(ctx()).objects[1]
  lu.assertEquals(yaml.decode(yaml.encode(cm)).data.Corefile, cm.data.Corefile)
end

function TestCoreDNS:test_image_from_version_and_config()
  local cd = require("kboot.components.coredns")
  lu.assertEquals(cd.image(ctx({ cluster = { kubernetesVersion = "v1.20.2" } })), "registry.k8s.io/coredns:1.7.0")
  lu.assertEquals(cd.image(ctx({ cluster = { dns = { imageRepository = "my.reg/dns", imageTag = "v9" } } })), "my.reg/dns/coredns:v9")
  lu.assertEquals(cd.render(ctx(), { replicas = 5 }).objects[5].spec.replicas, 5)
  -- older minors use numeric probe ports, newer ones name them
  local d20 = cd.render(ctx({ cluster = { kubernetesVersion = "v1.20.2" } })).objects[5]
  lu.assertEquals(d20.spec.template.spec.containers[1].livenessProbe.httpGet.port, 8080)
  local d32 = cd.render(ctx({ cluster = { kubernetesVersion = "v1.32.0" } })).objects[5]
  lu.assertEquals(d32.spec.template.spec.containers[1].livenessProbe.httpGet.port, "liveness-probe")
end

function TestCoreDNS:test_dns_ip_in_custom_service_subnet()
  local cd = require("kboot.components.coredns")
  lu.assertEquals(cd.dns_ip(ctx({ cluster = { networking = { serviceSubnet = "172.20.0.0/16" } } })), "172.20.0.10")
  lu.assertErrorMsgContains("serviceSubnet", function()
    cd.dns_ip(ctx({ cluster = { networking = { serviceSubnet = "bogus" } } }))
  end)
end

---------------------------------------------------------------------------------------------------
TestKubeProxy = {}

function TestKubeProxy:test_objects_as_kubeadm()
  local kp = require("kboot.components.kube_proxy")
  local a = kp.render(ctx({ cluster = { networking = { podSubnet = "10.244.0.0/16" } } }))
  local kinds = {}
  for _, o in ipairs(a.objects) do kinds[#kinds + 1] = o.kind .. "/" .. o.metadata.name end
  lu.assertEquals(kinds, { "ServiceAccount/kube-proxy", "ConfigMap/kube-proxy", "DaemonSet/kube-proxy",
                           "ClusterRoleBinding/kubeadm:node-proxier", "Role/kube-proxy", "RoleBinding/kube-proxy" })
  local m = by_kind(a.objects)
  local cm = m["ConfigMap/kube-proxy"]
  lu.assertEquals(cm.metadata.labels, { app = "kube-proxy" })
  local conf = yaml.decode(cm.data["config.conf"])
  lu.assertEquals(conf.kind, "KubeProxyConfiguration")
  lu.assertEquals(conf.clusterCIDR, "10.244.0.0/16")
  lu.assertEquals(conf.bindAddress, "0.0.0.0")
  lu.assertEquals(conf.clientConnection.kubeconfig, "/var/lib/kube-proxy/kubeconfig.conf")
  local kc = yaml.decode(cm.data["kubeconfig.conf"])
  lu.assertEquals(kc.clusters[1].cluster.server, "https://10.0.0.10:6443")
  lu.assertEquals(kc.users[1].user.tokenFile, "/var/run/secrets/kubernetes.io/serviceaccount/token")
  local ds = m["DaemonSet/kube-proxy"]
  local c = ds.spec.template.spec.containers[1]
  lu.assertEquals(c.image, "registry.k8s.io/kube-proxy:v1.31.0")
  lu.assertEquals(c.command, { "/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)" })
  lu.assertTrue(ds.spec.template.spec.hostNetwork)
  lu.assertEquals(ds.spec.template.spec.tolerations[2], { operator = "Exists" })
  lu.assertEquals(m["ClusterRoleBinding/kubeadm:node-proxier"].roleRef.name, "system:node-proxier")
  lu.assertEquals(m["RoleBinding/kube-proxy"].subjects[1].name, "system:bootstrappers:kubeadm:default-node-token")
end

function TestKubeProxy:test_server_is_configurable()
  local kp = require("kboot.components.kube_proxy")
  lu.assertEquals(kp.server(ctx({ cluster = { controlPlaneEndpoint = "lb.example:8443" } })), "https://lb.example:8443")
  local c = ctx({ cluster = { controlPlaneEndpoint = "lb.example" } })
  lu.assertEquals(kp.server(c), "https://lb.example:6443")
  c.kube_proxy_server = "https://10.1.2.3:7443"
  lu.assertStrContains(kp.render(c).objects[2].data["kubeconfig.conf"], "    server: https://10.1.2.3:7443\n")
  for _, bad in ipairs({ "http://x:1", "https://", "https://a:99999", "https://a/b", "ftp://a", "https://a:b" }) do
    local ok, err = kp.check_server(bad)
    lu.assertNil(ok, bad)
    lu.assertStrContains(err, ("%q"):format(bad))
    lu.assertTrue(err:find("https://HOST[:PORT]", 1, true) ~= nil or err:find("1..65535", 1, true) ~= nil, err)
  end
end

function TestKubeProxy:test_user_config_overlays_and_ipv6()
  local kp = require("kboot.components.kube_proxy")
  local c = ctx({ init = { localAPIEndpoint = { advertiseAddress = "fd00::10" } } })
  c.endpoint.address = "fd00::10"
  c.kubeproxy = { mode = "ipvs", ipvs = { scheduler = "rr" } }
  local conf = kp.config(c)
  lu.assertEquals(conf.bindAddress, "::")
  lu.assertEquals(conf.mode, "ipvs")
  lu.assertEquals(conf.ipvs, { scheduler = "rr" })
  lu.assertEquals(kp.server(c), "https://[fd00::10]:6443")
end

---------------------------------------------------------------------------------------------------
TestUploadConfig = {}

function TestUploadConfig:test_objects()
  local uc = require("kboot.online.upload_config")
  local c = ctx()
  c.cluster._internal = "x"
  local r = uc.render(c)
  lu.assertEquals(r.kubeadm[1].metadata, { name = "kubeadm-config", namespace = "kube-system" })
  local cc = yaml.decode(r.kubeadm[1].data.ClusterConfiguration)
  lu.assertEquals(cc.kind, "ClusterConfiguration")
  lu.assertEquals(cc.kubernetesVersion, "v1.31.0")
  lu.assertNil(cc._internal)
  lu.assertNil(cc.apiServer.extraArgs)        -- omitempty, as kubeadm marshals
  lu.assertEquals(cc.dns, { disabled = false })
  lu.assertEquals(r.kubeadm[2].rules[1], { verbs = { "get" }, apiGroups = { "" }, resources = { "configmaps" }, resourceNames = { "kubeadm-config" } })
  lu.assertEquals(r.kubeadm[3].roleRef, { apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = "kubeadm:nodes-kubeadm-config" })
  lu.assertEquals(#r.kubeadm[3].subjects, 2)
  local kl = yaml.decode(r.kubelet[1].data.kubelet)
  lu.assertEquals(kl.kind, "KubeletConfiguration")
  lu.assertEquals(kl.clusterDNS, { "10.96.0.10" })
  lu.assertEquals(r.kubelet[2].metadata.name, "kubeadm:kubelet-config")
  lu.assertEquals(r.kubelet[2].rules[1].resourceNames, { "kubelet-config" })
  local crb = uc.cluster_admins()
  lu.assertEquals(crb.roleRef.name, "cluster-admin")
  lu.assertEquals(crb.subjects[1].name, "kubeadm:cluster-admins")
end

-- The API server double (tests/lib/fake_apiserver.py): one per file, a fresh client per test.
local API = require("fake_api").start()

local function api_ctx(o)
  local c = ctx(o)
  c.kube = API:kube()
  return c
end

local function names(list)
  local out = {}
  for _, s in ipairs(list) do out[#out + 1] = s:match("[^/]+/[^/]+$") end
  return out
end

function TestUploadConfig:test_second_run_sends_nothing()
  local uc = require("kboot.online.upload_config")
  local c = api_ctx()
  c.cache.cluster_admins_ok = true
  API:forget()
  assert(uc.apply_all(c, uc.render(c).kubeadm, "t"))
  lu.assertEquals(names(API:writes()), { "configmaps/kubeadm-config", "roles/kubeadm:nodes-kubeadm-config",
                                         "rolebindings/kubeadm:nodes-kubeadm-config" })
  local rv = API:object("v1", "ConfigMap", "kube-system", "kubeadm-config").metadata.resourceVersion
  -- what the server holds (with its own fields added) is what kboot wants: nothing is written
  API:forget()
  assert(uc.apply_all(c, uc.render(c).kubeadm, "t"))
  lu.assertEquals(API:writes(), {})
  lu.assertEquals(API:object("v1", "ConfigMap", "kube-system", "kubeadm-config").metadata.resourceVersion, rv)
  -- a changed configuration is written, and only the object that changed
  c.cluster.clusterName = "renamed"
  assert(uc.apply_all(c, uc.render(c).kubeadm, "t"))
  lu.assertEquals(names(API:writes()), { "configmaps/kubeadm-config" })
  lu.assertStrContains(API:object("v1", "ConfigMap", "kube-system", "kubeadm-config").data.ClusterConfiguration,
                       "clusterName: renamed")
end

function TestUploadConfig:test_api_error_names_the_object()
  local uc = require("kboot.online.upload_config")
  local c = api_ctx()
  c.cache.cluster_admins_ok = true
  API:fail{ method = "PATCH", path = "/roles/kubeadm:kubelet-config", status = 403, message = "RBAC says no" }
  local ok, err = uc.apply_all(c, uc.render(c).kubelet, "upload-config")
  API:heal()
  lu.assertNil(ok)
  lu.assertTrue(require("kboot.error").is(err))
  lu.assertEquals(tostring(err), "cannot apply Role kube-system/kubeadm:kubelet-config: "
    .. "apply Role kube-system/kubeadm:kubelet-config: 403 Forbidden: RBAC says no")
end

function TestUploadConfig:test_cluster_admins_through_super_admin_only_when_missing()
  local uc = require("kboot.online.upload_config")
  local crb = { "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", nil, "kubeadm:cluster-admins" }
  local c = api_ctx()
  c.kube_super = API:kube()
  lu.assertNil(API:object(table.unpack(crb, 1, 4)))
  API:forget()
  assert(uc.ensure_cluster_admins(c))
  lu.assertEquals(API:writes(), { "POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings" })
  lu.assertEquals(c.kube_super:stats().requests, 1) -- the create, and nothing else, went through super-admin.conf
  lu.assertEquals(API:object(table.unpack(crb, 1, 4)).roleRef.name, "cluster-admin")
  -- there already: checked with admin.conf, super-admin.conf is not used
  local d = api_ctx()
  d.kube_super = API:kube()
  API:forget()
  assert(uc.ensure_cluster_admins(d))
  lu.assertEquals(API:writes(), {})
  lu.assertEquals(d.kube_super:stats().requests, 0)
  -- missing, and no super-admin.conf: a clear error naming both
  assert(API:kube():delete(table.unpack(crb, 1, 4)))
  local e = api_ctx()
  e.kube_super_err = "cannot read /etc/kubernetes/super-admin.conf: No such file"
  local ok, err = uc.ensure_cluster_admins(e)
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "kubeadm:cluster-admins is missing")
  lu.assertStrContains(tostring(err), "super-admin.conf: No such file")
end

---------------------------------------------------------------------------------------------------
TestCoreDNSApply = {}

function TestCoreDNSApply:tearDown()
  local k = API:kube()
  for _, o in ipairs(require("kboot.components.coredns").render(ctx()).objects) do
    k:delete(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name)
  end
end

function TestCoreDNSApply:test_corefile_and_replicas_kept()
  local cd = require("kboot.components.coredns")
  local component = require("kboot.component")
  local c = api_ctx()
  -- an admin edited the Corefile and scaled the Deployment
  local objs = cd.render(c).objects
  objs[1].data.Corefile = "edited by the admin"
  API:put(objs[1])
  objs[5].spec.replicas = 7
  API:put(objs[5])
  API:forget()
  assert(component.run(c, cd))
  lu.assertEquals(API:object("v1", "ConfigMap", "kube-system", "coredns").data.Corefile, "edited by the admin")
  lu.assertEquals(API:object("apps/v1", "Deployment", "kube-system", "coredns").spec.replicas, 7)
  lu.assertEquals(c.cache.coredns_replicas, 7)
  -- the render is pure: a fresh ctx renders kubeadm's default again
  lu.assertEquals(cd.render(ctx()).objects[5].spec.replicas, 2)
  -- and a second run writes nothing
  API:forget()
  assert(component.run(api_ctx(), cd))
  local writes = API:writes()
  lu.assertEquals(#writes, 1) -- the ConfigMap's create-or-retain POST (409: kept)
  lu.assertStrContains(writes[1], "POST /api/v1/namespaces/kube-system/configmaps")
end

function TestCoreDNSApply:test_api_error_names_the_object()
  local cd = require("kboot.components.coredns")
  local c = api_ctx()
  API:fail{ method = "PATCH", path = "/clusterroles/system:coredns", status = 403, message = "no" }
  local ok, err = require("kboot.component").run(c, cd)
  API:heal()
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "cannot apply ClusterRole system:coredns: apply ClusterRole system:coredns: 403 Forbidden: no")
  lu.assertNil(API:object("apps/v1", "Deployment", "kube-system", "coredns")) -- stopped at the failure
end

---------------------------------------------------------------------------------------------------
TestMarkControlPlane = {}

function TestMarkControlPlane:test_patch_adds_only_what_is_missing()
  local mcp = require("kboot.online.mark_control_plane")
  local c = ctx()
  local p = mcp.patch(c, { metadata = { name = "n", resourceVersion = "5", labels = { x = "y" } },
                           spec = { taints = { { key = "other", effect = "NoExecute" } } } })
  lu.assertEquals(p.metadata.labels, { ["node-role.kubernetes.io/control-plane"] = "",
                                       ["node.kubernetes.io/exclude-from-external-load-balancers"] = "" })
  lu.assertEquals(p.metadata.resourceVersion, "5")
  lu.assertEquals(p.spec.taints, { { key = "other", effect = "NoExecute" },
                                   { key = "node-role.kubernetes.io/control-plane", effect = "NoSchedule" } })
  -- already marked: nothing to send
  lu.assertNil(mcp.patch(c, { metadata = { labels = { ["node-role.kubernetes.io/control-plane"] = "",
                                                      ["node.kubernetes.io/exclude-from-external-load-balancers"] = "" } },
                              spec = { taints = { { key = "node-role.kubernetes.io/control-plane", effect = "NoSchedule" } } } }))
  -- configurable taints, none at all
  local d = ctx({ init = { nodeRegistration = { taints = { { key = "a", value = "b", effect = "PreferNoSchedule" } } } } })
  lu.assertEquals(mcp.patch(d, { metadata = {}, spec = {} }).spec.taints, { { key = "a", value = "b", effect = "PreferNoSchedule" } })
  local e = ctx()
  e.node.taints = {}
  lu.assertNil(mcp.patch(e, { metadata = { labels = { ["node-role.kubernetes.io/control-plane"] = "",
                                                      ["node.kubernetes.io/exclude-from-external-load-balancers"] = "" } }, spec = {} }))
end

function TestMarkControlPlane:tearDown()
  API:heal()
  API:kube():delete("v1", "Node", nil, "node-1")
end

function TestMarkControlPlane:test_marks_retries_on_conflict_and_rerun_sends_nothing()
  local mcp = require("kboot.online.mark_control_plane")
  local c = api_ctx()
  API:put({ apiVersion = "v1", kind = "Node", metadata = { name = "node-1", labels = { ["kubernetes.io/hostname"] = "node-1" } },
            spec = { taints = { { key = "node.kubernetes.io/not-ready", effect = "NoSchedule" } } } })
  -- the kubelet updates the Node between kboot's GET and PATCH once: the server answers 409
  API:fail{ method = "PATCH", path = "/nodes/node-1", status = 409, reason = "Conflict", times = 1 }
  API:forget()
  assert(mcp.run(c))
  lu.assertEquals(API:writes(), { "PATCH /api/v1/nodes/node-1", "PATCH /api/v1/nodes/node-1" })
  local n = API:object("v1", "Node", nil, "node-1")
  lu.assertEquals(n.metadata.labels["node-role.kubernetes.io/control-plane"], "")
  lu.assertEquals(n.metadata.labels["kubernetes.io/hostname"], "node-1")
  lu.assertEquals(n.spec.taints, { { key = "node.kubernetes.io/not-ready", effect = "NoSchedule" },
                                   { key = "node-role.kubernetes.io/control-plane", effect = "NoSchedule" } })
  API:forget()
  assert(mcp.run(c))
  lu.assertEquals(API:writes(), {})
end

function TestMarkControlPlane:test_errors_end_the_wait()
  local mcp = require("kboot.online.mark_control_plane")
  local c = api_ctx()
  -- not registered: waited for, then a clear error
  c.mark_timeout = 1
  local ok, err = mcp.run(c)
  lu.assertNil(ok)
  lu.assertTrue(require("kboot.error").is(err))
  lu.assertStrContains(tostring(err), 'waiting for node node-1: timed out after 1s waiting: node "node-1" is not registered yet (is the kubelet running?)')
  -- a 403 on the Node ends the wait at once (only 404 means "not registered yet")
  API:put({ apiVersion = "v1", kind = "Node", metadata = { name = "node-1" } })
  c.mark_timeout = 60
  API:fail{ method = "GET", path = "/nodes/node-1", status = 403, message = "no" }
  ok, err = mcp.run(c)
  lu.assertNil(ok)
  lu.assertEquals(tostring(err), "cannot get node node-1: get Node node-1: 403 Forbidden: no")
  API:heal()
  API:fail{ method = "PATCH", path = "/nodes/node-1", status = 403, message = "nope" }
  ok, err = mcp.run(c)
  lu.assertNil(ok)
  lu.assertEquals(tostring(err), "cannot mark node node-1: patch Node node-1: 403 Forbidden: nope")
  lu.assertNil(API:object("v1", "Node", nil, "node-1").metadata.labels)
end

---------------------------------------------------------------------------------------------------
TestKubeletFinalize = {}

function TestKubeletFinalize:tearDown() t.cleanup(); require("kboot.fs").set_root("/") end

function TestKubeletFinalize:test_points_kubelet_conf_at_rotated_pem()
  local root = t.tmpdir()
  local c = ctx({ root = root })
  local kc = require("kboot.kubeconfig")
  t.must("mkdir -p " .. t.q(root .. "/etc/kubernetes") .. " " .. t.q(root .. "/var/lib/kubelet/pki"))
  local ca = assert(require("kboot.pki").self_signed_ca(assert(require("kboot.pki").generate_key()), { cn = "ca" }))
  assert(kc.write("/etc/kubernetes/kubelet.conf", kc.build{ server = "https://1.2.3.4:6443", ca_pem = ca:pem(), user = "system:node:n", token = "x" }))
  local kf = require("kboot.online.kubelet_finalize")
  -- no rotated certificate yet: left alone
  local before = t.tree_hash(root)
  assert(kf.run(c))
  lu.assertEquals(t.tree_hash(root), before)
  t.write(root .. kf.PEM, "pem")
  assert(kf.run(c))
  local u = assert(kc.load("/etc/kubernetes/kubelet.conf")).users[1].user
  lu.assertEquals(u["client-certificate"], kf.PEM)
  lu.assertEquals(u["client-key"], kf.PEM)
  lu.assertNil(u["client-certificate-data"])
  -- idempotent
  local after = t.tree_hash(root)
  assert(kf.run(c))
  lu.assertEquals(t.tree_hash(root), after)
end

function TestKubeletFinalize:test_bad_kubelet_conf_is_a_clear_error()
  local root = t.tmpdir()
  local c = ctx({ root = root })
  local kf = require("kboot.online.kubelet_finalize")
  t.must("mkdir -p " .. t.q(root .. "/var/lib/kubelet/pki") .. " " .. t.q(root .. "/etc/kubernetes"))
  t.write(root .. kf.PEM, "pem")
  t.write(root .. "/etc/kubernetes/kubelet.conf", "kind: Pod\n")
  local before = t.tree_hash(root)
  local ok, err = kf.run(c)
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "cannot update " .. root .. "/etc/kubernetes/kubelet.conf")
  lu.assertStrContains(tostring(err), "not \"Config\"")
  lu.assertEquals(t.tree_hash(root), before)
end

---------------------------------------------------------------------------------------------------
-- wait-control-plane's diagnosis: fake node files, closed ports, a TLS server of another CA.
TestDiagnose = {}

local wcp = require("kboot.online.wait_control_plane")

local function write(root, path, data)
  t.must("mkdir -p " .. t.q((root .. path):match("^(.*)/")))
  t.write(root .. path, data)
end

local function tcp_row(port, state)
  return ("   0: 0100007F:%04X 00000000:0000 %s 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n"):format(port, state)
end

-- A sandbox with admin.conf pointing at 127.0.0.1:<api_port> (signed by a kboot CA) and a kubelet
-- healthz on <kubelet_port>; everything else is added per test.
local function sandbox(o)
  o = o or {}
  local root = t.tmpdir()
  local pki = require("kboot.pki")
  local kc = require("kboot.kubeconfig")
  local key = assert(pki.generate_key())
  local ca = assert(pki.self_signed_ca(key, { cn = "kubernetes" }))
  local c = ctx({ root = root })
  c.crictl = false
  c.kubelet = { healthzPort = o.kubelet_port or t.free_port() }
  c.endpoint.port = o.api_port or t.free_port()
  assert(kc.write("/etc/kubernetes/admin.conf", kc.build{ server = "https://127.0.0.1:" .. c.endpoint.port, ca_pem = ca:pem(),
                                                          cert_pem = ca:pem(), key_pem = key:pem() }))
  write(root, "/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n")
  write(root, "/proc/1/comm", "systemd\n")
  return c, root
end

local function causes(list)
  local s = {}
  for _, f in ipairs(list) do s[#s + 1] = f.cause end
  return table.concat(s, ",")
end

local function find(list, cause)
  for _, f in ipairs(list) do if f.cause == cause then return f.detail end end
end

function TestDiagnose:tearDown() t.cleanup(); require("kboot.fs").set_root("/") end

function TestDiagnose:test_url_and_timeouts_from_config()
  lu.assertEquals(wcp.kubelet_healthz_url(ctx()), "http://127.0.0.1:10248/healthz")
  local c = ctx()
  c.kubelet = { healthzPort = 1234, healthzBindAddress = "::" }
  lu.assertEquals(wcp.kubelet_healthz_url(c), "http://[::1]:1234/healthz")
  local d = ctx({ init = { timeouts = { controlPlaneComponentHealthCheck = "1m30s", kubeletHealthCheck = "10s" } } })
  lu.assertEquals({ wcp.timeout(d) }, { 90, 10 })
end

function TestDiagnose:test_kubelet_not_installed()
  local c = sandbox()
  local f = wcp.diagnose(c)
  lu.assertStrContains(find(f, "kubelet-missing"), "the kubelet is not installed")
  lu.assertStrContains(find(f, "apiserver-down"), "Couldn't connect")
  lu.assertNil(find(f, "swap"))
end

function TestDiagnose:test_kubelet_installed_not_running_swap_and_cgroup_driver()
  local c, root = sandbox()
  write(root, "/usr/bin/kubelet", "#!/bin/sh\n")
  write(root, "/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1024 0 -2\n")
  write(root, "/var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\ncgroupDriver: systemd\n")
  write(root, "/etc/containerd/config.toml", "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = false\n")
  local f = wcp.diagnose(c)
  lu.assertStrContains(find(f, "kubelet-not-running"), "installed but not running")
  lu.assertStrContains(find(f, "swap"), "swap is on")
  lu.assertStrContains(find(f, "cgroup-driver"), 'the kubelet uses "systemd"')
  lu.assertStrContains(find(f, "cgroup-driver"), '"cgroupfs" (/etc/containerd/config.toml (SystemdCgroup = false))')
  -- swap allowed and drivers equal: neither is reported
  write(root, "/var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\ncgroupDriver: cgroupfs\nfailSwapOn: false\n")
  f = wcp.diagnose(c)
  lu.assertNil(find(f, "swap"), causes(f))
  lu.assertNil(find(f, "cgroup-driver"), causes(f))
  -- CRI-O's drop-in directory counts too
  t.must("rm " .. t.q(root .. "/etc/containerd/config.toml"))
  write(root, "/etc/crio/crio.conf.d/10-cgroup.conf", '[crio.runtime]\ncgroup_manager = "systemd"\n')
  lu.assertStrContains(find(wcp.diagnose(c), "cgroup-driver"), '/etc/crio/crio.conf.d/10-cgroup.conf (cgroup_manager = "systemd")')
end

function TestDiagnose:test_port_taken_by_something_else()
  local c, root = sandbox()
  write(root, "/usr/bin/kubelet", "#!/bin/sh\n")
  write(root, "/proc/7/comm", "kubelet\n")
  write(root, "/proc/net/tcp", "  sl  local_address\n" .. tcp_row(c.endpoint.port, "0A"))
  local f = wcp.diagnose(c)
  lu.assertNil(find(f, "kubelet-not-running"))
  lu.assertStrContains(find(f, "port-taken"), ("port %d is taken"):format(c.endpoint.port))
end

-- A python server answering every GET with one status (plain HTTP), or openssl s_server with
-- another CA's certificate (TLS); returns pid, port.
local function python_server(dir, status, body, mode)
  local py = dir .. "/srv.py"
  t.write(py, ([[
import sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        b = %q.encode()
        st = %d
        if self.path == "/livez" and "%s" == "nolivez": st, b = 404, b"404 page not found"
        self.send_response(st); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
]]):format(body, status, mode or ""))
  local pf = dir .. "/port"
  local pid = t.must(("python3 %s %s >/dev/null 2>&1 </dev/null & echo $!"):format(t.q(py), t.q(pf))):match("%d+")
  for _ = 1, 100 do
    local f = io.open(pf)
    if f then local p = tonumber(f:read("a")); f:close(); if p then return pid, p end end
    os.execute("sleep 0.05")
  end
  os.execute("kill " .. pid)
  error("server did not start")
end

function TestDiagnose:test_unhealthy_kubelet_answer_is_printed()
  local dir = t.tmpdir()
  local pid, port = python_server(dir, 500, "[-]syncloop failed")
  local ok, err = pcall(function()
    local c, root = sandbox({ kubelet_port = port })
    write(root, "/usr/bin/kubelet", "#!/bin/sh\n")
    write(root, "/proc/7/comm", "kubelet\n")
    local f = wcp.diagnose(c)
    lu.assertStrContains(find(f, "kubelet-unhealthy"), "answers HTTP 500: [-]syncloop failed")
    -- and the wait itself gives up with the same answer after its timeout
    local w, werr = wcp.wait(c, { timeout = 1, interval = 0.2 })
    lu.assertNil(w)
    lu.assertTrue(require("kboot.error").is(werr))
    lu.assertEquals(werr.stage, "kubelet")
    lu.assertStrContains(werr.msg, "the kubelet is not healthy after 1s")
    lu.assertStrContains(werr.msg, "HTTP 500")
  end)
  os.execute("kill " .. pid)
  if not ok then error(err, 0) end
end

-- The wait measured a healthy kubelet, then the API server timed out: the diagnosis says nothing
-- against that measurement (no "not installed", although no kubelet binary is in the sandbox; no
-- "not running", no swap) and names what is down.
function TestDiagnose:test_a_healthy_kubelet_is_not_diagnosed_missing()
  local dir = t.tmpdir()
  local pid, port = python_server(dir, 200, "ok")
  local ok, err = pcall(function()
    local c, root = sandbox({ kubelet_port = port })
    write(root, "/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1024 0 -2\n")
    c.timeouts.controlPlaneComponentHealthCheck, c.timeouts.kubeletHealthCheck = 1, 1
    local lines = {}
    local function rec(level) return function(_, fmt, ...) lines[#lines + 1] = level .. " " .. fmt:format(...) end end
    c.log = { info = rec("info"), warn = rec("warn"), error = rec("error"), debug = rec("debug") }
    local r, rerr = wcp.run(c)
    lu.assertNil(r)
    lu.assertEquals(rerr.stage, "apiserver")
    local text = table.concat(lines, "\n")
    lu.assertStrContains(text, "info The kubelet is healthy")
    lu.assertStrContains(text, "likely cause: the API server does not answer")
    lu.assertNotStrContains(text, "not installed")
    lu.assertNotStrContains(text, "not running")
    lu.assertNotStrContains(text, "swap")
    lu.assertNotStrContains(text, "kubelet's http")
    -- the same diagnosis asked directly, with or without the stage
    for _, o in ipairs({ {}, { stage = "apiserver" } }) do
      local f = wcp.diagnose(c, o)
      lu.assertNil(find(f, "kubelet-missing"), causes(f))
      lu.assertNil(find(f, "kubelet-not-running"), causes(f))
      lu.assertNil(find(f, "swap"), causes(f))
      lu.assertNotNil(find(f, "apiserver-down"), causes(f))
    end
  end)
  os.execute("kill " .. pid)
  if not ok then error(err, 0) end
end

function TestDiagnose:test_livez_falls_back_to_healthz()
  local dir = t.tmpdir()
  local pid, port = python_server(dir, 200, "ok", "nolivez")
  local ok, err = pcall(function()
    local c = require("kboot.http").client({ server = "http://127.0.0.1:" .. port, retries = 0 })
    lu.assertTrue(wcp.livez(c))
    c:close()
  end)
  os.execute("kill " .. pid)
  if not ok then error(err, 0) end
  local pid2, port2 = python_server(t.tmpdir(), 503, "[-]etcd failed", "nolivez")
  ok, err = pcall(function()
    local c = require("kboot.http").client({ server = "http://127.0.0.1:" .. port2, retries = 0 })
    local r, why = wcp.livez(c)
    lu.assertNil(r)
    lu.assertEquals(why, "HTTP 503: [-]etcd failed")
    c:close()
  end)
  os.execute("kill " .. pid2)
  if not ok then error(err, 0) end
end

function TestDiagnose:test_apiserver_tls_error_is_printed()
  local dir = t.tmpdir()
  local certs = require("http_certs").make(dir, "other")
  local port = t.free_port()
  local pid = t.must(("openssl s_server -quiet -accept 127.0.0.1:%d -cert %s -key %s -www >/dev/null 2>&1 </dev/null & echo $!")
    :format(port, t.q(dir .. "/other-server.crt"), t.q(dir .. "/other-server.key"))):match("%d+")
  local ok, err = pcall(function()
    for _ = 1, 100 do
      if t.sh(("ss -Hltn 'sport = :%d' | grep -q ."):format(port)) then break end
      os.execute("sleep 0.05")
    end
    local c = sandbox({ api_port = port })
    local f = wcp.diagnose(c)
    lu.assertStrContains(find(f, "apiserver-tls"), "TLS")
    lu.assertStrContains(find(f, "apiserver-tls"), "check the CA")
  end)
  os.execute("kill " .. pid)
  if not ok then error(err, 0) end
  lu.assertNotNil(certs)
end

function TestDiagnose:test_missing_manifests_and_crictl_output()
  local c, root = sandbox()
  write(root, "/etc/kubernetes/manifests/etcd.yaml", "x")
  local dir = t.tmpdir()
  -- a stand-in crictl: what a node with a crash-looping API server shows
  t.write(dir .. "/crictl", [[#!/bin/sh
case "$*" in
  *" ps -a"*) printf 'CONTAINER  IMAGE  CREATED  STATE  NAME  ATTEMPT  POD ID\nabc123  img  1m  Exited  kube-apiserver  3  p1\n' ;;
  *"logs --tail 15 abc123"*) echo "Error: unknown flag: --bogus-flag" ;;
esac
]])
  t.must("chmod +x " .. t.q(dir .. "/crictl"))
  c.crictl = dir .. "/crictl"
  local f = wcp.diagnose(c)
  lu.assertStrContains(find(f, "manifest-missing"), "kube-apiserver.yaml does not exist: run 'kboot init phase control-plane'")
  t.must("rm " .. t.q(root .. "/etc/kubernetes/manifests/etcd.yaml"))
  lu.assertStrContains(find(wcp.diagnose(c), "manifest-missing"), "etcd.yaml does not exist: run 'kboot init phase etcd/local'")
  lu.assertStrContains(f[#f].detail, "kube-apiserver exited")
  lu.assertStrContains(f[#f].detail, "unknown flag: --bogus-flag")
end

os.exit(lu.LuaUnit.run("-v"))

-- Static Pod components and kubelet files: flags, volumes, probes, env as kubeadm v1.31 writes
-- them, compared with tests/data/manifests/expected.lua (written from kubeadm's source).
local lu = require("luaunit")
local fixture = require("ctx_fixture")
local mf = require("kboot.manifest")
local apiserver = require("kboot.components.kube_apiserver")
local kcm = require("kboot.components.kube_controller_manager")
local sched = require("kboot.components.kube_scheduler")
local etcd = require("kboot.components.etcd")
local kubelet = require("kboot.components.kubelet")
local expected = dofile(os.getenv("KBOOT_SRC") .. "/tests/data/manifests/expected.lua")

-- A ctx whose host has no proxy variables and whose node has no CA directories, so results are
-- deterministic.
local function ctx(o)
  o = o or {}
  o.host = o.host or fixture.host({ hostname = "node-1", proxy_env = {}, systemd_resolved = false })
  local c = fixture.new(o)
  c.cache.ca_extra_paths = {}
  c.cache.external_ca = false
  return c
end

local function flag(cmd, name)
  for _, a in ipairs(cmd) do
    local v = a:match("^%-%-" .. name:gsub("%-", "%%-") .. "=(.*)$")
    if v then return v end
  end
end

TestArgs = {}
function TestArgs:test_args_to_command_semantics()
  local base = { { name = "b", value = "1" }, { name = "a", value = "2" }, { name = "c", value = "x" } }
  local over = { { name = "c", value = "y" }, { name = "c", value = "w" }, { name = "d", value = "" } }
  lu.assertEquals(mf.args_to_command(base, over), { "--a=2", "--b=1", "--c=w", "--c=y", "--d=" })
end
function TestArgs:test_get_set_arg_last_wins()
  local args = { { name = "x", value = "1" }, { name = "x", value = "2" } }
  lu.assertEquals({ mf.get_arg(args, "x") }, { "2", 2 })
  mf.set_arg(args, "x", "3")
  lu.assertEquals(args[1].value, "1")
  lu.assertEquals(args[2].value, "3")
  mf.set_arg(args, "y", "4")
  lu.assertEquals(args[3], { name = "y", value = "4" })
  lu.assertEquals({ mf.get_arg(args, "z") }, { nil, -1 })
end
function TestArgs:test_merge_env_sorted_later_wins()
  lu.assertEquals(mf.merge_env({ { name = "B", value = "1" }, { name = "A", value = "1" } }, { { name = "B", value = "2" } }),
    { { name = "A", value = "1" }, { name = "B", value = "2" } })
end
function TestArgs:test_health_check_timeout()
  lu.assertEquals(mf.health_check_timeout(ctx()), 240)
  local c = ctx({ init = { timeouts = { controlPlaneComponentHealthCheck = "1h30m" } } })
  lu.assertEquals(mf.health_check_timeout(c), 5400)
  -- the startup probe gives up after that long: failureThreshold x periodSeconds
  local p = sched.render(c)
  local pod = require("kboot.yaml").decode(p.files[1].content)
  local sp = pod.spec.containers[1].startupProbe
  lu.assertEquals(sp.failureThreshold * sp.periodSeconds, 5400)
end

TestCommands = {}
function TestCommands:test_default_commands_match_kubeadm()
  local c = ctx()
  lu.assertEquals(apiserver.command(c), expected["kube-apiserver"].command)
  lu.assertEquals(kcm.command(c), expected["kube-controller-manager"].command)
  lu.assertEquals(sched.command(c), expected["kube-scheduler"].command)
  lu.assertEquals(etcd.command(c), expected["etcd"].command)
end

function TestCommands:test_extra_args_override_and_append()
  local c = ctx({ cluster = {
    apiServer = { extraArgs = { { name = "secure-port", value = "7443" }, { name = "audit-log-path", value = "/var/log/a.log" },
                                { name = "authorization-mode", value = "Node,Bogus,RBAC,Webhook" } } },
    scheduler = { extraArgs = { { name = "bind-address", value = "0.0.0.0" } } },
  } })
  local cmd = apiserver.command(c)
  lu.assertEquals(flag(cmd, "secure-port"), "7443")
  lu.assertEquals(flag(cmd, "audit-log-path"), "/var/log/a.log")
  -- kubeadm filters the modes into its default argument, but the user's extraArg overrides it
  lu.assertEquals(flag(cmd, "authorization-mode"), "Node,Bogus,RBAC,Webhook")
  local n = 0
  for _, a in ipairs(cmd) do if a:match("^%-%-secure%-port=") then n = n + 1 end end
  lu.assertEquals(n, 1)
  lu.assertEquals(flag(sched.command(c), "bind-address"), "0.0.0.0")
end

function TestCommands:test_authorization_config_drops_mode()
  local c = ctx({ cluster = { apiServer = { extraArgs = { { name = "authorization-config", value = "/etc/authz.yaml" } } } } })
  lu.assertNil(flag(apiserver.command(c), "authorization-mode"))
end

function TestCommands:test_pod_subnet_and_cluster_name()
  local c = ctx({ cluster = { clusterName = "prod", networking = { podSubnet = "192.168.0.0/16" } } })
  local cmd = kcm.command(c)
  lu.assertEquals(flag(cmd, "allocate-node-cidrs"), "true")
  lu.assertEquals(flag(cmd, "cluster-cidr"), "192.168.0.0/16")
  lu.assertEquals(flag(cmd, "service-cluster-ip-range"), "10.96.0.0/12")
  lu.assertEquals(flag(cmd, "cluster-name"), "prod")
end

function TestCommands:test_external_ca_empties_signing_flags()
  local c = ctx()
  c.cache.external_ca = true
  local cmd = kcm.command(c)
  lu.assertEquals(flag(cmd, "cluster-signing-cert-file"), "")
  lu.assertEquals(flag(cmd, "cluster-signing-key-file"), "")
end

function TestCommands:test_external_etcd()
  local c = ctx({ external_etcd = { endpoints = { "https://10.0.0.2:2379", "https://10.0.0.3:2379" },
    caFile = "/etc/etcd/pki/ca.crt", certFile = "/etc/etcd/pki/client.crt", keyFile = "/etc/other/client.key" } })
  local cmd = apiserver.command(c)
  lu.assertEquals(flag(cmd, "etcd-servers"), "https://10.0.0.2:2379,https://10.0.0.3:2379")
  lu.assertEquals(flag(cmd, "etcd-cafile"), "/etc/etcd/pki/ca.crt")
  lu.assertEquals(flag(cmd, "etcd-certfile"), "/etc/etcd/pki/client.crt")
  lu.assertEquals(flag(cmd, "etcd-keyfile"), "/etc/other/client.key")
  lu.assertEquals(mf.etcd_cert_dirs(c.cluster.etcd.external, c.cluster.certificatesDir), { "/etc/etcd/pki", "/etc/other" })
  -- parents absorb children; dirs under the pki dir or CA bundles need no mount
  lu.assertEquals(mf.etcd_cert_dirs({ caFile = "/etc/etcd/ca.crt", certFile = "/etc/etcd/sub/c.crt", keyFile = "/etc/kubernetes/pki/k" },
    "/etc/kubernetes/pki"), { "/etc/etcd" })
  lu.assertEquals(mf.etcd_cert_dirs({ caFile = "ca.crt", certFile = "", keyFile = "/etc/ssl/certs/k" }, "/etc/kubernetes/pki"), {})
  local ok, err = pcall(etcd.command, c)
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "external etcd")
end

function TestCommands:test_local_etcd_advertise_url_feeds_apiserver()
  local c = ctx({ cluster = { etcd = { ["local"] = { extraArgs = {
    { name = "advertise-client-urls", value = "https://10.0.0.10:12379" },
    { name = "listen-metrics-urls", value = "https://0.0.0.0:12381,http://127.0.0.1:2381" } } } } } })
  lu.assertEquals(flag(apiserver.command(c), "etcd-servers"), "https://10.0.0.10:12379")
  lu.assertEquals(flag(etcd.command(c), "advertise-client-urls"), "https://10.0.0.10:12379")
  lu.assertEquals({ etcd.probe_endpoint(c) }, { "0.0.0.0", 12381, "HTTPS" })
end

function TestCommands:test_ipv6_advertise_address()
  local c = ctx({ init = { localAPIEndpoint = { advertiseAddress = "fd00::10" } } })
  lu.assertEquals(flag(apiserver.command(c), "etcd-servers"), "https://[::1]:2379")
  local cmd = etcd.command(c)
  lu.assertEquals(flag(cmd, "listen-client-urls"), "https://[::1]:2379,https://[fd00::10]:2379")
  lu.assertEquals(flag(cmd, "listen-metrics-urls"), "http://[::1]:2381")
  lu.assertEquals(flag(cmd, "initial-cluster"), "node-1=https://[fd00::10]:2380")
end

function TestCommands:test_version_flags()
  local c = ctx({ cluster = { kubernetesVersion = "v1.34.0" } })
  local cmd = etcd.command(c)
  lu.assertEquals(flag(cmd, "feature-gates"), "InitialCorruptCheck=true")
  lu.assertEquals(flag(cmd, "watch-progress-notify-interval"), "5s")
  lu.assertNil(flag(cmd, "experimental-initial-corrupt-check"))
  c = ctx({ cluster = { kubernetesVersion = "v1.22.0" } })
  lu.assertEquals(flag(sched.command(c), "port"), "0")
end

function TestCommands:test_mounts_and_extra_volumes()
  local c = ctx({ cluster = { apiServer = { extraVolumes = {
    { name = "audit", hostPath = "/var/log/k8s", mountPath = "/var/log/k8s", readOnly = false, pathType = "DirectoryOrCreate" },
    { name = "ca-certs", hostPath = "/opt/certs", mountPath = "/etc/ssl/certs", readOnly = true } } } } })
  local m = apiserver.mounts(c)
  lu.assertEquals(m.volumes["ca-certs"].hostPath, { path = "/opt/certs", type = "" })
  lu.assertEquals(m.mounts["audit"], { name = "audit", mountPath = "/var/log/k8s" })
  local names = {}
  for _, v in ipairs(mf.volumes(m)) do names[#names + 1] = v.name end
  lu.assertEquals(names, { "audit", "ca-certs", "k8s-certs" })
  c.cache.ca_extra_paths = { "/etc/ca-certificates", "/usr/share/ca-certificates" }
  m = kcm.mounts(c)
  lu.assertEquals(m.volumes["usr-share-ca-certificates"].hostPath.path, "/usr/share/ca-certificates")
  lu.assertTrue(m.mounts["etc-ca-certificates"].readOnly)
end

TestKubelet = {}
function TestKubelet:test_flags()
  local c = ctx()
  lu.assertEquals(kubelet.flags(c), { "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
    "--pod-infra-container-image=registry.k8s.io/pause:3.10" })
  c.host.hostname = "other"
  lu.assertEquals(kubelet.flags(c)[2], "--hostname-override=node-1")
  c = ctx({ init = { nodeRegistration = { kubeletExtraArgs = { { name = "node-ip", value = "10.0.0.10" },
    { name = "container-runtime-endpoint", value = "unix:///run/crio/crio.sock" } } } } })
  lu.assertEquals(kubelet.flags(c), { "--container-runtime-endpoint=unix:///run/crio/crio.sock",
    "--node-ip=10.0.0.10", "--pod-infra-container-image=registry.k8s.io/pause:3.10" })
end

function TestKubelet:test_config_defaults_and_user_document()
  local c = ctx({ cluster = { networking = { serviceSubnet = "10.100.0.0/16", dnsDomain = "corp.local" } } })
  c.host.systemd_resolved = false
  local cfg = kubelet.config(c)
  lu.assertEquals(cfg.clusterDNS, { "10.100.0.10" })
  lu.assertEquals(cfg.clusterDomain, "corp.local")
  lu.assertEquals(cfg.cgroupDriver, "systemd")
  lu.assertEquals(cfg.authentication.x509.clientCAFile, "/etc/kubernetes/pki/ca.crt")
  lu.assertEquals(cfg.authentication.anonymous.enabled, false)
  lu.assertEquals(cfg.authentication.webhook.enabled, true)
  lu.assertEquals(cfg.authorization.mode, "Webhook")
  lu.assertEquals(cfg.healthzBindAddress, "127.0.0.1")
  lu.assertEquals(cfg.healthzPort, 10248)
  lu.assertEquals(cfg.staticPodPath, "/etc/kubernetes/manifests")
  lu.assertTrue(cfg.rotateCertificates)
  lu.assertNil(cfg.resolvConf)
  c.host.systemd_resolved = true
  lu.assertEquals(kubelet.config(c).resolvConf, "/run/systemd/resolve/resolv.conf")
  c.kubelet = { apiVersion = "kubelet.config.k8s.io/v1beta1", kind = "KubeletConfiguration",
                cgroupDriver = "cgroupfs", rotateCertificates = false, maxPods = 50,
                authentication = { webhook = { cacheTTL = "2m0s" } } }
  cfg = kubelet.config(c)
  lu.assertEquals(cfg.cgroupDriver, "cgroupfs")
  lu.assertEquals(cfg.maxPods, 50)
  lu.assertTrue(cfg.rotateCertificates)
  lu.assertEquals(cfg.authentication.webhook, { cacheTTL = "2m0s", enabled = true })
end

function TestKubelet:test_node_local_cri_socket_from_v1_34()
  local c = ctx({ cluster = { kubernetesVersion = "v1.34.0" } })
  c.host.systemd_resolved = false
  lu.assertEquals(kubelet.flags(c), { "--pod-infra-container-image=registry.k8s.io/pause:3.10.1" })
  lu.assertEquals(kubelet.config(c).containerRuntimeEndpoint, "unix:///var/run/containerd/containerd.sock")
  -- the feature gate switches it off
  c = ctx({ cluster = { kubernetesVersion = "v1.34.0", featureGates = { NodeLocalCRISocket = false } } })
  lu.assertEquals(kubelet.flags(c)[1], "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock")
  lu.assertEquals(kubelet.config(c).containerRuntimeEndpoint, "")
end

function TestKubelet:test_render_files()
  local c = ctx()
  c.host.systemd_resolved = false
  local a = kubelet.render(c)
  lu.assertEquals(a.files[1].path, "/var/lib/kubelet/kubeadm-flags.env")
  lu.assertEquals(a.files[1].mode, 420)
  lu.assertEquals(a.files[1].content, 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock '
    .. '--pod-infra-container-image=registry.k8s.io/pause:3.10"\n')
  lu.assertEquals(a.files[2].path, "/var/lib/kubelet/config.yaml")
  local cfg = require("kboot.yaml").decode(a.files[2].content)
  lu.assertEquals(cfg.kind, "KubeletConfiguration")
  lu.assertEquals(cfg.clusterDNS, { "10.96.0.10" })
  lu.assertEquals(#a.files, 2)
  c = ctx({ cluster = { kubernetesVersion = "v1.34.0" } })
  a = kubelet.render(c)
  lu.assertEquals(a.files[2].path, "/var/lib/kubelet/instance-config.yaml")
  lu.assertEquals(require("kboot.yaml").decode(a.files[2].content).containerRuntimeEndpoint, "unix:///var/run/containerd/containerd.sock")
end

function TestKubelet:test_start_never_touches_a_sandbox()
  local t = require("testlib")
  local root = t.tmpdir()
  local c = fixture.new({ root = root })
  c.log = { info = function() end, warn = function() end }
  local ok, why = kubelet.start(c)
  lu.assertFalse(ok)
  lu.assertStrContains(why, "is a sandbox")
  c.dry_run = true
  ok, why = kubelet.start(c)
  lu.assertStrContains(why, "dry run")
  require("kboot.fs").set_root("/")
  t.cleanup()
end

os.exit(lu.LuaUnit.run("-v"))

-- `kboot config`: print init-defaults equals kubeadm's own output (tests/data/config/good, written from
-- kubeadm v1.31; only the version differs), what it prints loads back, images list as kubeadm lists
-- them, validate's exit codes and lines.
local lu = require("luaunit")
local t = require("testlib")

local DATA = t.src .. "/tests/data/config"
TestConfigCmd = {}
function TestConfigCmd:tearDown() t.cleanup() end

function TestConfigCmd:test_print_init_defaults_is_kubeadms_text()
  local ok, out = t.sh(t.q(t.bin) .. " config print init-defaults 2>/dev/null")
  lu.assertTrue(ok, out)
  local v = require("kboot.versions").default_version:sub(2)
  local want = t.read(DATA .. "/good/v1beta4-init-defaults.yaml"):gsub("^#[^\n]*\n", "")
    :gsub("kubernetesVersion: 1%.31%.0", "kubernetesVersion: " .. v)
  lu.assertEquals(out, want)
  -- and it is a valid config: the placeholders load
  local d = t.tmpdir()
  t.write(d .. "/c.yaml", out)
  ok, out = t.kboot("config validate --config " .. t.q(d .. "/c.yaml"))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "ok (Kubernetes v" .. v .. ")")
end

function TestConfigCmd:test_component_configs()
  local ok, out = t.sh(t.q(t.bin) .. " config print init-defaults --component-configs KubeProxyConfiguration 2>&1")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "kind: KubeProxyConfiguration")
  ok, out = t.sh(t.q(t.bin) .. " config print init-defaults --component-configs KubeletConfiguration 2>&1")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "kind: KubeletConfiguration")
  lu.assertStrContains(out, "clusterDNS:\n- 10.96.0.10\n")
  local _, _, code = t.kboot("config print init-defaults --component-configs Nope")
  lu.assertEquals(code, 2)
end

function TestConfigCmd:test_images_list()
  -- kubeadm v1.34.0 `config images list --kubernetes-version v1.34.0`
  local ok, out = t.kboot("config images list --kubernetes-version v1.34.0 2>/dev/null")
  lu.assertTrue(ok, out)
  lu.assertEquals(out, [[
registry.k8s.io/kube-apiserver:v1.34.0
registry.k8s.io/kube-controller-manager:v1.34.0
registry.k8s.io/kube-scheduler:v1.34.0
registry.k8s.io/kube-proxy:v1.34.0
registry.k8s.io/coredns/coredns:v1.12.1
registry.k8s.io/pause:3.10.1
registry.k8s.io/etcd:3.6.4-0
]])
  ok, out = t.kboot("config images list --kubernetes-version 1.31.2 --image-repository mirror.local/k8s 2>/dev/null")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "mirror.local/k8s/kube-apiserver:v1.31.2\n")
  lu.assertStrContains(out, "mirror.local/k8s/etcd:3.5.15-0\n")
  local _, err, code = t.kboot("config images list --kubernetes-version v1.3.0")
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "unsupported Kubernetes version v1.3.0")
end

function TestConfigCmd:test_images_list_from_config()
  local d = t.tmpdir()
  t.write(d .. "/c.yaml", [[
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.30.3
imageRepository: reg.example/k8s
dns:
  imageRepository: reg.example/dns
  imageTag: v9.9.9
etcd:
  external:
    endpoints: [https://10.0.0.1:2379]
]])
  local ok, out = t.kboot("config images list --config " .. t.q(d .. "/c.yaml") .. " 2>/dev/null")
  lu.assertTrue(ok, out)
  lu.assertEquals(out, [[
reg.example/k8s/kube-apiserver:v1.30.3
reg.example/k8s/kube-controller-manager:v1.30.3
reg.example/k8s/kube-scheduler:v1.30.3
reg.example/k8s/kube-proxy:v1.30.3
reg.example/dns/coredns/coredns:v9.9.9
reg.example/k8s/pause:3.9
]])
end

function TestConfigCmd:test_validate()
  for _, f in ipairs({ "v1beta3-init-defaults", "v1beta4-init-defaults", "v1beta3-full", "v1beta4-full" }) do
    local ok, out = t.kboot("config validate --config " .. t.q(DATA .. "/good/" .. f .. ".yaml"))
    lu.assertTrue(ok, f .. ": " .. out)
  end
  local ok, out, code = t.kboot("config validate --config " .. t.q(DATA .. "/bad/11-overlap.yaml"))
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "ClusterConfiguration.networking.podSubnet: 10.96.0.0/16 overlaps the service subnet 10.96.0.0/12")
  lu.assertStrContains(out, "1 problem(s)")
  ok, out, code = t.kboot("config validate")
  lu.assertEquals(code, 2)
  ok, out, code = t.kboot("config frobnicate")
  lu.assertEquals(code, 2)
  lu.assertStrContains(out, 'unknown command "frobnicate"')
end

os.exit(lu.LuaUnit.run("-v"))

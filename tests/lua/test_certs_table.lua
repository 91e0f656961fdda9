-- The certificate table as data: names, CNs, Os, SANs and validity as kubeadm v1.31 has them.
local lu = require("luaunit")
local fixture = require("ctx_fixture")
local tbl = require("kboot.certs_table")

TestCertsTable = {}

function TestCertsTable:test_names_and_order()
  local names = {}
  for _, c in ipairs(tbl.list(fixture.new())) do names[#names + 1] = c.name end
  lu.assertEquals(names, { "ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca",
    "front-proxy-client", "etcd-ca", "etcd-server", "etcd-peer", "etcd-healthcheck-client",
    "apiserver-etcd-client" })
end

function TestCertsTable:test_external_etcd_drops_etcd_certs()
  local ctx = fixture.new({ external_etcd = { endpoints = { "https://10.0.0.2:2379" } } })
  local names = {}
  for _, c in ipairs(tbl.list(ctx)) do names[#names + 1] = c.name end
  lu.assertEquals(names, { "ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client" })
end

function TestCertsTable:test_subjects()
  local ctx = fixture.new()
  local function s(n) return tbl.spec(tbl.get(n), ctx) end
  lu.assertEquals(s("ca").cn, "kubernetes")
  lu.assertEquals(s("ca").dns, { "kubernetes" })
  lu.assertTrue(s("ca").is_ca)
  lu.assertEquals(s("ca").usages, { "digital signature", "key encipherment", "cert sign" })
  lu.assertEquals(s("apiserver").cn, "kube-apiserver")
  lu.assertEquals(s("apiserver").ext_key_usages, { "server auth" })
  lu.assertEquals(s("apiserver").usages, { "digital signature", "key encipherment" })
  lu.assertEquals(s("apiserver-kubelet-client").o, { "kubeadm:cluster-admins" })
  lu.assertEquals(s("apiserver-kubelet-client").cn, "kube-apiserver-kubelet-client")
  lu.assertEquals(s("front-proxy-client").cn, "front-proxy-client")
  lu.assertEquals(s("etcd-server").cn, "node-1")
  lu.assertEquals(s("etcd-peer").cn, "node-1")
  lu.assertEquals(s("etcd-server").ext_key_usages, { "server auth", "client auth" })
  lu.assertEquals(s("etcd-healthcheck-client").cn, "kube-etcd-healthcheck-client")
  lu.assertEquals(s("etcd-healthcheck-client").o, {})
  lu.assertEquals(s("apiserver-etcd-client").cn, "kube-apiserver-etcd-client")
  lu.assertEquals(s("apiserver-etcd-client").o, {})
end

function TestCertsTable:test_apiserver_sans()
  local ctx = fixture.new({
    cluster = { controlPlaneEndpoint = "lb.example.com:8443",
                apiServer = { certSANs = { "10.0.0.10", "extra.example.com", "*.wild.example.com",
                                           "Bad_Name", "2001:db8::1" } },
                networking = { dnsDomain = "corp.local" } },
  })
  local s = tbl.spec(tbl.get("apiserver"), ctx)
  lu.assertEquals(s.dns, { "*.wild.example.com", "extra.example.com", "kubernetes", "kubernetes.default",
    "kubernetes.default.svc", "kubernetes.default.svc.corp.local", "lb.example.com", "node-1" })
  lu.assertEquals(s.ip, { "10.96.0.1", "10.0.0.10", "2001:db8::1" })
end

function TestCertsTable:test_apiserver_sans_ip_endpoint_and_dual_stack()
  local ctx = fixture.new({ cluster = { controlPlaneEndpoint = "[fd00::5]:6443",
    networking = { serviceSubnet = "fd00:10:96::/112,10.96.0.0/12" } } })
  local s = tbl.spec(tbl.get("apiserver"), ctx)
  lu.assertEquals(s.ip, { "fd00:10:96::1", "10.0.0.10", "fd00::5" })
  ctx = fixture.new({ cluster = { controlPlaneEndpoint = "192.168.1.1" } })
  lu.assertEquals(tbl.spec(tbl.get("apiserver"), ctx).ip, { "10.96.0.1", "10.0.0.10", "192.168.1.1" })
end

function TestCertsTable:test_etcd_sans()
  local ctx = fixture.new({ cluster = { etcd = { ["local"] = {
    serverCertSANs = { "etcd.example.com", "10.1.1.1" }, peerCertSANs = { "peer.example.com" } } } } })
  local s = tbl.spec(tbl.get("etcd-server"), ctx)
  lu.assertEquals(s.dns, { "etcd.example.com", "localhost", "node-1" })
  lu.assertEquals(s.ip, { "10.0.0.10", "127.0.0.1", "::1", "10.1.1.1" })
  local p = tbl.spec(tbl.get("etcd-peer"), ctx)
  lu.assertEquals(p.dns, { "localhost", "node-1", "peer.example.com" })
  lu.assertEquals(p.ip, { "10.0.0.10", "127.0.0.1", "::1" })
end

function TestCertsTable:test_validity_backdated()
  local ctx = fixture.new({ now = 1700000000, cert_validity = 100, ca_validity = 1000 })
  local ca = tbl.spec(tbl.get("ca"), ctx)
  lu.assertEquals(ca.not_before, 1700000000 - 300)
  lu.assertEquals(ca.not_after, 1700000000 + 1000)
  local leaf = tbl.spec(tbl.get("apiserver"), ctx)
  lu.assertEquals(leaf.not_before, 1700000000 - 300)
  lu.assertEquals(leaf.not_after, 1700000000 + 100)
end

function TestCertsTable:test_bad_inputs_raise_clear_errors()
  local ctx = fixture.new({ init = { localAPIEndpoint = { advertiseAddress = "not-an-ip" } } })
  local ok, err = pcall(tbl.spec, tbl.get("apiserver"), ctx)
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "advertiseAddress")
  ctx = fixture.new({ cluster = { networking = { serviceSubnet = "bogus" } } })
  ok, err = pcall(tbl.spec, tbl.get("apiserver"), ctx)
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "serviceSubnet")
end

os.exit(lu.LuaUnit.run("-v"))

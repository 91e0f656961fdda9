-- `kboot join` (the binary) for a worker, end to end against the API server double over real TLS:
-- discovery, the cluster's kubeadm-config and kubelet-config, the CSR (approved and signed here, as
-- csrapproving and csrsigning would), and the files a joined worker has, under --root. The same
-- against a real control plane is issue 9's e2e test.
local lu = require("luaunit")
local t = require("testlib")
local yaml = require("kboot.yaml")
local crypto = require("kboot.crypto")
local pki = require("kboot.pki")
local kubeconfig = require("kboot.kubeconfig")

local CA_KEY = assert(pki.generate_key("ECDSA-P256"))
local CA = assert(pki.self_signed_ca(CA_KEY, { cn = "kubernetes", not_before = os.time() - 300, not_after = os.time() + 86400 }))
local SKEY = assert(pki.generate_key("ECDSA-P256"))
local SERVER = assert(pki.sign({ cn = "kube-apiserver", ip = { "127.0.0.1", "127.0.0.2" }, usages = { "digital signature" },
                                 ext_key_usages = { "server auth" }, not_after = os.time() + 86400 }, SKEY, CA, CA_KEY))
-- 127.0.0.2 stands for the node's own (advertised) address, 127.0.0.1 for the VIP in front of it
local API = require("fake_api").start{ tls = { cert_pem = SERVER:pem(), key_pem = SKEY:pem(), ca_pem = CA:pem() },
                                       also = { "127.0.0.2" } }
local TOKEN, ID, SECRET = "k8stst.q1w2e3r4t5y6u7i8", "k8stst", "q1w2e3r4t5y6u7i8"

local function seed(cluster_info_server)
  API:seed_join{ server = cluster_info_server, ca_pem = CA:pem(), token_id = ID, token_secret = SECRET }
  API:forget()
end

local function approve_and_sign(k)
  local n = 0
  for _, csr in ipairs(assert(k:list("certificates.k8s.io/v1", "CertificateSigningRequest"))) do
    if not (csr.status and csr.status.certificate) then
    local req = assert(pki.load_csr(crypto.unbase64(csr.spec.request)))
    local cert = assert(pki.sign_csr(req, { usages = { "digital signature", "key encipherment" },
                                            ext_key_usages = { "client auth" } }, CA, CA_KEY))
    assert(k:patch("certificates.k8s.io/v1", "CertificateSigningRequest", nil, csr.metadata.name,
      { status = { conditions = { { type = "Approved", status = "True", reason = "AutoApproved" } },
                   certificate = crypto.base64(cert:pem()) } }, "merge"))
    n = n + 1
    end
  end
  return n
end

-- runs kboot join in the background, approves its CSR when it appears, -> ok, output
local function join(root, args)
  local d = t.tmpdir()
  -- the background group's own stdout must not be popen's pipe, or reading it waits for the join
  local pid = t.must(("(%s join %s --root %s >%s/out 2>&1; echo $? >%s/rc) </dev/null >/dev/null 2>&1 & echo $!"):format(
    t.q(t.bin), args, t.q(root), d, d)):match("%d+")
  local k = API:kube()
  for _ = 1, 200 do
    if t.sh("test -e " .. d .. "/rc") then break end
    if approve_and_sign(k) > 0 then break end
    require("kboot.time").sleep(0.05)
  end
  for _ = 1, 200 do
    if t.sh("test -s " .. d .. "/rc") then break end
    require("kboot.time").sleep(0.05)
  end
  if not t.sh("test -s " .. d .. "/rc") then
    t.sh("kill " .. pid)
    return false, "kboot join did not end within 20 s:\n" .. t.read(d .. "/out")
  end
  return t.read(d .. "/rc"):match("%d+") == "0", t.read(d .. "/out")
end

TestJoinFlow = {}
function TestJoinFlow:setUp() API:reset() end
function TestJoinFlow:tearDown() t.cleanup() end

function TestJoinFlow:test_worker_join_keeps_the_endpoint_given()
  -- cluster-info names 127.0.0.2 (the "advertised" address); the admin joins through 127.0.0.1 (the VIP)
  local port = API.url:match(":(%d+)$")
  seed("https://127.0.0.2:" .. port)
  local root = t.tmpdir()
  local ok, out = join(root, ("%s --token %s --discovery-token-ca-cert-hash %s --node-name w1 --ignore-preflight-errors=all")
    :format(API.endpoint, TOKEN, CA:spki_pin()))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "cluster-info names https://127.0.0.2:" .. port)
  lu.assertNotStrContains(out, SECRET)
  local kc = assert(kubeconfig.parse(t.read(root .. "/etc/kubernetes/kubelet.conf")))
  lu.assertEquals(kc.clusters[1].cluster.server, API.url)
  lu.assertEquals(kc.users[1].user["client-certificate"], "/var/lib/kubelet/pki/kubelet-client-current.pem")
  lu.assertEquals(t.read(root .. "/etc/kubernetes/pki/ca.crt"), CA:pem())
  local link = t.must("readlink " .. t.q(root .. "/var/lib/kubelet/pki/kubelet-client-current.pem")):gsub("%s+$", "")
  lu.assertStrMatches(link, "kubelet%-client%-[%d%-]+%.pem")
  local pem = t.read(root .. "/var/lib/kubelet/pki/" .. link)
  local cert = assert(pki.load_cert(pem))
  lu.assertStrContains(t.must("openssl x509 -noout -subject -in " .. t.q(root .. "/var/lib/kubelet/pki/" .. link)), "system:node:w1")
  lu.assertTrue(cert ~= nil)
  lu.assertStrContains(t.read(root .. "/var/lib/kubelet/config.yaml"), "cgroupDriver: systemd")
  lu.assertEquals(t.must("stat -c %a " .. t.q(root .. "/var/lib/kubelet/pki/" .. link)):gsub("%s+$", ""), "600")
  -- with --use-cluster-info-endpoint, kubeadm's choice
  local root2 = t.tmpdir()
  ok, out = join(root2, ("%s --token %s --discovery-token-ca-cert-hash %s --node-name w2 --ignore-preflight-errors=all --use-cluster-info-endpoint")
    :format(API.endpoint, TOKEN, CA:spki_pin()))
  lu.assertTrue(ok, out)
  kc = assert(kubeconfig.parse(t.read(root2 .. "/etc/kubernetes/kubelet.conf")))
  lu.assertEquals(kc.clusters[1].cluster.server, "https://127.0.0.2:" .. port)
  -- a re-run keeps the certificate (no new CSR)
  local before = t.tree_hash(root)
  API:forget()
  ok, out = join(root, ("%s --token %s --discovery-token-ca-cert-hash %s --node-name w1 --ignore-preflight-errors=all")
    :format(API.endpoint, TOKEN, CA:spki_pin()))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "already holds a valid client certificate")
  lu.assertEquals(API:writes(), {})
  lu.assertEquals(t.tree_hash(root), before)
end

-- A dry run writes nothing and its log says so: no "Writing" or "Wrote" for files it does not write.
function TestJoinFlow:test_dry_run_log_says_would_write()
  seed(API.url)
  local root = t.tmpdir()
  local before = t.tree_hash(root)
  local ok, out = join(root, ("%s --token %s --discovery-token-ca-cert-hash %s --node-name w1 --ignore-preflight-errors=all --dry-run")
    :format(API.endpoint, TOKEN, CA:spki_pin()))
  lu.assertTrue(ok, out)
  lu.assertEquals(t.tree_hash(root), before)
  lu.assertStrContains(out, "[kubelet-start] dry run: would write " .. root .. "/var/lib/kubelet/config.yaml")
  lu.assertStrContains(out, "[kubelet-start] dry run: would write " .. root .. "/etc/kubernetes/kubelet.conf")
  lu.assertNotStrContains(out, "Writing")
  lu.assertNotStrContains(out, "Wrote")
end

-- A join that fails after discovery (in preflight; in kubelet-start, before it writes) leaves a
-- fresh root as it was: no /etc/kubernetes made for the lock and left empty.
function TestJoinFlow:test_failed_join_leaves_a_fresh_root_as_it_was()
  seed(API.url)
  local fresh = t.tree_hash(t.tmpdir())
  local root = t.tmpdir()
  local args = ("%s --token %s --discovery-token-ca-cert-hash %s --node-name w1"):format(API.endpoint, TOKEN, CA:spki_pin())
  local ok, out = join(root, args)
  lu.assertFalse(ok, out)
  lu.assertStrContains(out, "error execution phase preflight")
  lu.assertEquals(t.tree_hash(root), fresh)
  API:put{ apiVersion = "v1", kind = "Node", metadata = { name = "w1" },
           status = { conditions = { { type = "Ready", status = "True" } } } }
  ok, out = join(root, args .. " --ignore-preflight-errors=all")
  lu.assertFalse(ok, out)
  lu.assertStrContains(out, 'error execution phase kubelet-start: a Node named "w1" is already Ready')
  lu.assertEquals(t.tree_hash(root), fresh)
end

-- The cluster's configuration as the API answers it, malformed: one error line naming the
-- ConfigMap and what is wrong in it, nothing written (the join stops before kubelet-start).
function TestJoinFlow:test_malformed_cluster_configmaps_one_line_nothing_written()
  local fresh = t.tree_hash(t.tmpdir())
  local args = ("%s --token %s --discovery-token-ca-cert-hash %s --node-name w1 --ignore-preflight-errors=all"):format(
    API.endpoint, TOKEN, CA:spki_pin())
  local function cm(name, data)
    return { apiVersion = "v1", kind = "ConfigMap", metadata = { name = name, namespace = "kube-system" }, data = data }
  end
  local cases = {
    { cm("kubeadm-config", {}), "ConfigMap kube-system/kubeadm-config has no ClusterConfiguration" },
    { cm("kubeadm-config", { ClusterConfiguration = "kind: [" }), "kube-system/kubeadm-config: yaml: " },
    { cm("kubeadm-config", { ClusterConfiguration = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
                             .. "networking: {podSubnet: 10.244.0.0}\n" }),
      'kube-system/kubeadm-config: ClusterConfiguration.networking.podSubnet: "10.244.0.0" is not a valid CIDR' },
    { cm("kubelet-config", {}), "ConfigMap kube-system/kubelet-config has no kubelet key" },
    { cm("kubelet-config", { kubelet = "- a\n" }), "ConfigMap kube-system/kubelet-config: KubeletConfiguration: must be a mapping, got a list" },
    { cm("kubelet-config", { kubelet = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nclusterDNS: [dns]\n" }),
      'ConfigMap kube-system/kubelet-config: KubeletConfiguration.clusterDNS[0]: "dns" is not a valid IP address' },
  }
  for _, c in ipairs(cases) do
    API:reset()
    seed(API.url)
    assert(API:kube():delete("v1", "ConfigMap", "kube-system", c[1].metadata.name))
    API:put(c[1])
    local root = t.tmpdir()
    local ok, out = join(root, args)
    lu.assertFalse(ok, out)
    local errors = {}
    for line in out:gmatch("[^\n]+") do if line:find("error: ", 1, true) then errors[#errors + 1] = line end end
    lu.assertEquals(#errors, 1, out)
    lu.assertStrContains(errors[1], c[2], false, out)
    lu.assertEquals(t.tree_hash(root), fresh, c[2])
  end
end

-- kubeadm's patches on a worker: the kubeletconfiguration target patches /var/lib/kubelet/config.yaml
-- (--patches or JoinConfiguration patches.directory); the control-plane targets are not rendered on a
-- worker, so their patches are not tried; a bad kubelet patch stops the join before it writes.
function TestJoinFlow:test_worker_join_applies_kubelet_patches()
  seed(API.url)
  local d = t.tmpdir()
  t.write(d .. "/kubeletconfiguration+merge.yaml", "maxPods: 42\n")
  t.write(d .. "/kube-apiserver+json.yaml", "- {op: remove, path: /not/there}\n")
  local root = t.tmpdir()
  local args = ("%s --token %s --discovery-token-ca-cert-hash %s --node-name w1 --ignore-preflight-errors=all")
    :format(API.endpoint, TOKEN, CA:spki_pin())
  local ok, out = join(root, args .. " --patches " .. t.q(d))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, '[patches] Applied patch of type "application/merge-patch+json" to target "kubeletconfiguration"')
  lu.assertNotStrContains(out, 'to target "kube-apiserver"')
  local kc = assert(yaml.decode(t.read(root .. "/var/lib/kubelet/config.yaml")))
  lu.assertEquals(kc.maxPods, 42)
  lu.assertEquals(kc.cgroupDriver, "systemd")
  -- the same from the JoinConfiguration, in a dry run
  local cfg = t.tmpdir() .. "/join.yaml"
  t.write(cfg, ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\npatches:\n  directory: %s\n"
    .. "nodeRegistration: {name: w2, ignorePreflightErrors: [all]}\ndiscovery:\n  bootstrapToken: {token: %s, apiServerEndpoint: \"%s\", "
    .. "caCertHashes: [\"%s\"]}\n"):format(d, TOKEN, API.endpoint, CA:spki_pin()))
  local root2 = t.tmpdir()
  ok, out = join(root2, "--dry-run --config " .. t.q(cfg))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "\nmaxPods: 42\n")
  -- a kubelet patch that does not apply (it runs before the merge patch: '+json' sorts first): one
  -- line, nothing written
  t.write(d .. "/kubeletconfiguration+json.yaml", "- {op: test, path: /maxPods, value: 7}\n")
  local root3 = t.tmpdir()
  local before = t.tree_hash(root3)
  ok, out = join(root3, args .. " --patches " .. t.q(d))
  lu.assertFalse(ok, out)
  lu.assertStrContains(out, "error: " .. d .. "/kubeletconfiguration+json.yaml: cannot apply this json patch to "
    .. "kubeletconfiguration: operation 0 (test /maxPods): path /maxPods does not exist\n")
  lu.assertEquals(t.tree_hash(root3), before)
end

os.exit(lu.LuaUnit.run())

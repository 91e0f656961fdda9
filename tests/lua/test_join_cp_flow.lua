-- `kboot join --control-plane`'s control-plane-prepare phases (the binary) against the API server
-- double over real TLS. The cluster is the one of ../shared/vectors/kubeadm-certs.json: its
-- Secret, made by a real `kubeadm init phase upload-certs`, is served as is, and the CA it holds
-- (decrypted here with the vector's key) signs the double's serving certificate, so discovery
-- proves the same CA the Secret carries. etcd-join, mark-control-plane and wait-control-plane run
-- against real peers in integration/test_e2e_join_cp.lua.
local lu = require("luaunit")
local t = require("testlib")
local yaml = require("kboot.yaml")
local json = require("cjson")
local pki = require("kboot.pki")
local tokens = require("kboot.tokens")
local kubeconfig = require("kboot.kubeconfig")

local VEC = json.decode(t.read((os.getenv("KBOOT_VECTORS") or (t.src .. "/../shared/vectors")) .. "/kubeadm-certs.json"))
local KEY = VEC.certificate_key
local FILES = assert(tokens.open_certs_secret(VEC.secret, KEY))
local CA = assert(pki.load_cert(FILES["ca.crt"]))
local CA_KEY = assert(pki.load_key(FILES["ca.key"]))
local SKEY = assert(pki.generate_key("ECDSA-P256"))
local SERVER = assert(pki.sign({ cn = "kube-apiserver", ip = { "127.0.0.1" }, usages = { "digital signature" },
                                 ext_key_usages = { "server auth" }, not_after = os.time() + 86400 }, SKEY, CA, CA_KEY))
local API = require("fake_api").start{ tls = { cert_pem = SERVER:pem(), key_pem = SKEY:pem(), ca_pem = CA:pem() } }
local TOKEN, ID, SECRET = "cptest.q1w2e3r4t5y6u7i8", "cptest", "q1w2e3r4t5y6u7i8"
local PORT = 16443

-- the Secret as the real cluster had it (its owner is not in this store: nothing here collects it)
local function put_certs_secret()
  local s = json.decode(json.encode(VEC.secret))
  s.apiVersion, s.kind = "v1", "Secret"
  s.metadata = { name = s.metadata.name, namespace = s.metadata.namespace }
  API:put(s)
end

local function seed(certs_secret)
  API:seed_join{ ca_pem = CA:pem(), token_id = ID, token_secret = SECRET }
  if certs_secret then API:put(certs_secret) else put_certs_secret() end
  API:forget()
end

local function prepare(root, extra)
  return t.kboot(("join phase control-plane-prepare %s --token %s --discovery-token-ca-cert-hash %s --control-plane "
    .. "--apiserver-advertise-address 127.0.0.2 --apiserver-bind-port %d --node-name cp2 --root %s "
    .. "--ignore-preflight-errors=all %s"):format(API.endpoint, TOKEN, CA:spki_pin(), PORT, t.q(root), extra or ""))
end

local function mode(path) return (t.must("stat -c %a " .. t.q(path)):gsub("%s+$", "")) end
local function server_of(path) return assert(kubeconfig.current(assert(kubeconfig.load(path)))).server end

TestJoinControlPlane = {}
function TestJoinControlPlane:setUp() API:reset() seed() end
function TestJoinControlPlane:tearDown() t.cleanup() end

function TestJoinControlPlane:test_prepare_writes_the_clusters_cas_and_this_nodes_own_files()
  local root = t.tmpdir()
  local ok, out = prepare(root, "--certificate-key " .. KEY)
  lu.assertTrue(ok, out)
  local pki_dir = root .. "/etc/kubernetes/pki"
  -- the shared files are the cluster's, byte for byte, with kubeadm's modes
  for name, path in pairs({ ["ca.crt"] = "ca.crt", ["ca.key"] = "ca.key", ["sa.key"] = "sa.key", ["sa.pub"] = "sa.pub",
                            ["front-proxy-ca.crt"] = "front-proxy-ca.crt", ["front-proxy-ca.key"] = "front-proxy-ca.key",
                            ["etcd-ca.crt"] = "etcd/ca.crt", ["etcd-ca.key"] = "etcd/ca.key" }) do
    lu.assertEquals(t.read(pki_dir .. "/" .. path), FILES[name], path)
    lu.assertEquals(mode(pki_dir .. "/" .. path), name:match("%.key$") and "600" or "644", path)
  end
  lu.assertEquals(FILES["sa.pub"], VEC.plaintext["sa.pub"])
  -- this node's API server certificate: signed by the cluster CA, naming this node (openssl's view)
  t.must(("openssl verify -CAfile %s %s"):format(t.q(pki_dir .. "/ca.crt"), t.q(pki_dir .. "/apiserver.crt")))
  local sans = t.must(("openssl x509 -noout -ext subjectAltName -in %s"):format(t.q(pki_dir .. "/apiserver.crt")))
  lu.assertStrContains(sans, "IP Address:127.0.0.2")
  lu.assertStrContains(sans, "DNS:cp2")
  local peer = t.must(("openssl x509 -noout -ext subjectAltName -in %s"):format(t.q(pki_dir .. "/etcd/peer.crt")))
  lu.assertStrContains(peer, "IP Address:127.0.0.2")
  t.must(("openssl verify -CAfile %s %s"):format(t.q(pki_dir .. "/etcd/ca.crt"), t.q(pki_dir .. "/apiserver-etcd-client.crt")))
  -- its kubeconfigs name its own API server (the cluster has no controlPlaneEndpoint); no super-admin.conf
  for _, f in ipairs({ "admin.conf", "controller-manager.conf", "scheduler.conf" }) do
    lu.assertEquals(server_of(root .. "/etc/kubernetes/" .. f), "https://127.0.0.2:" .. PORT, f)
  end
  lu.assertFalse(t.sh("test -e " .. t.q(root .. "/etc/kubernetes/super-admin.conf")))
  local apiserver = t.read(root .. "/etc/kubernetes/manifests/kube-apiserver.yaml")
  lu.assertStrContains(apiserver, "--advertise-address=127.0.0.2")
  lu.assertStrContains(apiserver, "--secure-port=" .. PORT)
  for _, m in ipairs({ "kube-controller-manager", "kube-scheduler" }) do
    lu.assertTrue(t.sh("test -s " .. t.q(root .. "/etc/kubernetes/manifests/" .. m .. ".yaml")), m)
  end
  -- prepare only reads the cluster
  lu.assertEquals(API:writes(), {})
  -- a re-run changes nothing
  local before = t.tree_hash(root)
  ok, out = prepare(root, "--certificate-key " .. KEY)
  lu.assertTrue(ok, out)
  lu.assertEquals(t.tree_hash(root), before)
end

function TestJoinControlPlane:test_wrong_key_missing_secret_foreign_ca_each_one_line_nothing_written()
  local root = t.tmpdir()
  local before = t.tree_hash(root)
  local ok, out, code = prepare(root, "--certificate-key " .. ("0f"):rep(32))
  lu.assertFalse(ok)
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "error execution phase control-plane-prepare/download-certs")
  lu.assertStrContains(out, "is not the one the certificates were uploaded with")
  lu.assertEquals(t.tree_hash(root), before)

  API:fail{ method = "GET", path = "/secrets/kubeadm-certs", status = 404, reason = "NotFound" }
  ok, out = prepare(root, "--certificate-key " .. KEY)
  API:heal()
  lu.assertFalse(ok)
  lu.assertStrContains(out, "run 'kboot init phase upload-certs --upload-certs' on a control-plane node")
  lu.assertEquals(t.tree_hash(root), before)

  -- a Secret uploaded from another cluster's files: its CA is not the one discovery proved
  local other = assert(pki.self_signed_ca(assert(pki.generate_key("ECDSA-P256")), { cn = "other", not_after = os.time() + 3600 }))
  local foreign = {}
  for k, v in pairs(FILES) do foreign[k] = v end
  foreign["ca.crt"] = other:pem()
  API:reset() seed(tokens.certs_secret(foreign, KEY))
  ok, out = prepare(root, "--certificate-key " .. KEY)
  lu.assertFalse(ok)
  lu.assertStrContains(out, "is not the cluster CA that discovery verified (" .. CA:spki_pin() .. ")")
  lu.assertEquals(t.tree_hash(root), before)
  API:reset() seed()

  -- a Secret without one of the files this cluster shares (kubeadm's DownloadCerts refuses it too),
  -- or with data that is not what an upload makes: one line each, nothing written
  local partial = {}
  for k, v in pairs(FILES) do partial[k] = v end
  partial["front-proxy-ca.key"] = nil
  API:reset() seed(tokens.certs_secret(partial, KEY))
  ok, out, code = prepare(root, "--certificate-key " .. KEY)
  lu.assertFalse(ok)
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "Secret kube-system/kubeadm-certs does not include front-proxy-ca.key (for "
    .. root .. "/etc/kubernetes/pki/front-proxy-ca.key)")
  lu.assertEquals(t.tree_hash(root), before)
  local bad = tokens.certs_secret(FILES, KEY)
  bad.data["sa.key"] = "!!!"
  API:reset() seed(bad)
  ok, out = prepare(root, "--certificate-key " .. KEY)
  lu.assertFalse(ok)
  lu.assertStrContains(out, "Secret kube-system/kubeadm-certs: sa.key is not base64; upload it again")
  lu.assertEquals(t.tree_hash(root), before)
  -- an empty entry (a file the uploader had not, as kubeadm uploads it) is accepted and not written
  local empty = {}
  for k, v in pairs(FILES) do empty[k] = v end
  empty["front-proxy-ca.key"] = ""
  API:reset() seed(tokens.certs_secret(empty, KEY))
  local r2 = t.tmpdir()
  ok, out = prepare(r2, "--certificate-key " .. KEY .. " --skip-phases control-plane-prepare/certs,control-plane-prepare/kubeconfig,control-plane-prepare/control-plane")
  lu.assertTrue(ok, out)
  lu.assertFalse(t.sh("test -e " .. t.q(r2 .. "/etc/kubernetes/pki/front-proxy-ca.key")))
  lu.assertEquals(t.read(r2 .. "/etc/kubernetes/pki/ca.key"), FILES["ca.key"])
  API:reset() seed()

  -- a CA of another cluster already on the node is refused, not overwritten
  t.must("mkdir -p " .. t.q(root .. "/etc/kubernetes/pki"))
  t.write(root .. "/etc/kubernetes/pki/ca.crt", other:pem())
  before = t.tree_hash(root)
  ok, out = prepare(root, "--certificate-key " .. KEY)
  lu.assertFalse(ok)
  lu.assertStrContains(out, "ca.crt exists with other content than the cluster's ca.crt")
  lu.assertEquals(t.tree_hash(root), before)
end

function TestJoinControlPlane:test_without_a_certificate_key_the_cas_must_be_here()
  local root = t.tmpdir()
  local before = t.tree_hash(root)
  local ok, out = prepare(root, "")
  lu.assertFalse(ok)
  lu.assertStrContains(out, "control-plane-prepare/download-certs] skipped: no --certificate-key")
  lu.assertStrContains(out, "ca.crt")
  lu.assertStrContains(out, "missing: join with --certificate-key")
  lu.assertEquals(t.tree_hash(root), before)
  lu.assertEquals(API:writes(), {})
end

function TestJoinControlPlane:test_dry_run_prints_the_files_and_writes_nothing()
  local root = t.tmpdir()
  local before = t.tree_hash(root)
  local ok, out = prepare(root, "--certificate-key " .. KEY .. " --dry-run")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "--- /etc/kubernetes/pki/ca.crt (mode 0644")
  lu.assertStrContains(out, "--- /etc/kubernetes/manifests/kube-apiserver.yaml")
  lu.assertStrContains(out, "--- /etc/kubernetes/admin.conf")
  lu.assertNotStrContains(out, "BEGIN EC PRIVATE KEY")
  lu.assertNotStrContains(out, "BEGIN RSA PRIVATE KEY")
  lu.assertEquals(t.tree_hash(root), before)
  lu.assertEquals(API:writes(), {})
end

-- kubeadm's patches on a joining control-plane node: its static Pods are patched as init's are, and
-- a patch that does not apply to them stops the join before anything is written
function TestJoinControlPlane:test_patches_reach_the_control_plane_manifests()
  local d = t.tmpdir()
  t.write(d .. "/kube-apiserver.yaml", "spec:\n  containers:\n  - name: kube-apiserver\n    resources: {requests: {cpu: 500m}}\n")
  t.write(d .. "/kube-scheduler+json.yaml", "- {op: add, path: /metadata/annotations, value: {node: cp2}}\n")
  local root = t.tmpdir()
  local ok, out = prepare(root, "--certificate-key " .. KEY .. " --patches " .. t.q(d))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, '[patches] Applied patch of type "application/strategic-merge-patch+json" to target "kube-apiserver"')
  local pod = assert(yaml.decode(t.read(root .. "/etc/kubernetes/manifests/kube-apiserver.yaml")))
  lu.assertEquals(pod.spec.containers[1].resources.requests.cpu, "500m")
  lu.assertStrContains(table.concat(pod.spec.containers[1].command, " "), "--advertise-address=127.0.0.2")
  pod = assert(yaml.decode(t.read(root .. "/etc/kubernetes/manifests/kube-scheduler.yaml")))
  lu.assertEquals(pod.metadata.annotations, { node = "cp2" })
  t.write(d .. "/kube-controller-manager+json.yaml", "- {op: remove, path: /spec/containers/1}\n")
  local fresh = t.tmpdir()
  local before = t.tree_hash(fresh)
  ok, out = prepare(fresh, "--certificate-key " .. KEY .. " --patches " .. t.q(d))
  lu.assertFalse(ok, out)
  lu.assertStrContains(out, "error: " .. d .. "/kube-controller-manager+json.yaml: cannot apply this json patch to "
    .. "kube-controller-manager: operation 0 (remove /spec/containers/1): path /spec/containers/1 does not exist\n")
  lu.assertEquals(t.tree_hash(fresh), before)
  lu.assertEquals(API:writes(), {})
end

os.exit(lu.LuaUnit.run())

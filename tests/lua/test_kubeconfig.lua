-- kboot.kubeconfig: kubeadm's exact layout, kubectl reading our files and us reading kubectl's,
-- writes through kboot.fs (mode, atomicity, dry run), load errors, and a client for the current
-- context against a real TLS server (openssl s_server, client certificate required).
local lu = require("luaunit")
local t = require("testlib")
local fs = require("kboot.fs")
local crypto = require("kboot.crypto")
local json = require("cjson")
local certs = require("http_certs")

local kc = require("kboot.kubeconfig")

local dir = t.tmpdir()
local A = certs.make(dir, "kc", "kubernetes-admin")
local server_pid, server_url

local KUBEADM_ADMIN = [[
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: %s
    server: https://10.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
]]

local function admin()
  return kc.build({ server = "https://10.0.0.1:6443", ca_pem = A.ca, cert_pem = A.client_crt, key_pem = A.client_key })
end

local function kubectl(args) return t.must("kubectl " .. args) end

TestKubeconfig = {}
function TestKubeconfig:tearDown()
  fs.set_root("/")
  fs.set_dry_run(false)
end

function TestKubeconfig:test_build_is_kubeadms_layout()
  local text = kc.encode(admin())
  lu.assertEquals(text, KUBEADM_ADMIN:format(crypto.base64(A.ca), crypto.base64(A.client_crt), crypto.base64(A.client_key)))
end

function TestKubeconfig:test_build_token_and_names()
  local tk = kc.build({ cluster_name = "c1", server = "https://h:6443", ca_pem = A.ca, user = "tls-bootstrap-token-user",
                        token = "abcdef.0123456789abcdef" })
  lu.assertEquals(tk["current-context"], "tls-bootstrap-token-user@c1")
  lu.assertEquals(tk.users, { { name = "tls-bootstrap-token-user", user = { token = "abcdef.0123456789abcdef" } } })
  lu.assertStrContains(kc.encode(tk), "  user:\n    token: abcdef.0123456789abcdef\n")
  local ctx = kc.build({ server = "https://h:6443", ca_pem = A.ca, token = "x", context = "mine" })
  lu.assertEquals(ctx.contexts[1].name, "mine")
  local files = kc.build({ server = "https://h:6443", ca_pem = A.ca, user = "system:node:n1",
                           cert_file = "/var/lib/kubelet/pki/kubelet-client-current.pem",
                           key_file = "/var/lib/kubelet/pki/kubelet-client-current.pem" })
  lu.assertEquals(files.users[1].user["client-certificate"], "/var/lib/kubelet/pki/kubelet-client-current.pem")
end

function TestKubeconfig:test_build_misuse()
  lu.assertErrorMsgContains("'server'", kc.build, { ca_pem = A.ca, token = "x" })
  lu.assertErrorMsgContains("'ca_pem'", kc.build, { server = "https://h", token = "x" })
  lu.assertErrorMsgContains("exactly one", kc.build, { server = "https://h", ca_pem = A.ca })
  lu.assertErrorMsgContains("exactly one", kc.build, { server = "https://h", ca_pem = A.ca, token = "x",
                                                       cert_pem = "c", key_pem = "k" })
  lu.assertErrorMsgContains("go together", kc.build, { server = "https://h", ca_pem = A.ca, cert_pem = "c" })
end

function TestKubeconfig:test_kubectl_reads_what_we_write()
  local path = dir .. "/admin.conf"
  assert(kc.write(path, admin()))
  local v = json.decode(kubectl("config view --raw -o json --kubeconfig " .. t.q(path)))
  lu.assertEquals(v["current-context"], "kubernetes-admin@kubernetes")
  lu.assertEquals(v.clusters[1].cluster.server, "https://10.0.0.1:6443")
  lu.assertEquals(crypto.unbase64(v.clusters[1].cluster["certificate-authority-data"]), A.ca)
  lu.assertEquals(crypto.unbase64(v.users[1].user["client-key-data"]), A.client_key)
  -- kubectl's own rendering of the file is byte for byte ours
  lu.assertEquals(kubectl("config view --raw --kubeconfig " .. t.q(path)), t.read(path))
end

function TestKubeconfig:test_we_read_what_kubectl_writes()
  local path = dir .. "/kubectl.conf"
  local k = " --kubeconfig " .. t.q(path)
  kubectl("config set-cluster c1 --server=https://127.0.0.1:6443 --embed-certs=true --certificate-authority=" .. t.q(A.paths.ca) .. k)
  kubectl("config set-credentials u1 --embed-certs=true --client-certificate=" .. t.q(A.paths.client_crt) ..
          " --client-key=" .. t.q(A.paths.client_key) .. k)
  kubectl("config set-context ctx1 --cluster=c1 --user=u1" .. k)
  kubectl("config set-cluster other --server=https://10.9.9.9" .. k)
  kubectl("config use-context ctx1" .. k)
  local cur = assert(kc.current(assert(kc.load(path))))
  lu.assertEquals(cur.server, "https://127.0.0.1:6443")
  lu.assertEquals(cur.ca_pem, A.ca)
  lu.assertEquals(cur.cert_pem, A.client_crt)
  lu.assertEquals(cur.key_pem, A.client_key)
  lu.assertEquals(cur.cluster_name, "c1")
  lu.assertEquals(cur.user, "u1")
  lu.assertEquals(cur.context, "ctx1")
  lu.assertNil(cur.token)
  -- file references, as kubectl writes them without --embed-certs
  kubectl("config set-credentials u1 --embed-certs=false --client-certificate=" .. t.q(A.paths.client_crt) ..
          " --client-key=" .. t.q(A.paths.client_key) .. k)
  cur = assert(kc.current(assert(kc.load(path))))
  lu.assertEquals(cur.cert_pem, A.client_crt)
  lu.assertEquals(cur.key_pem, A.client_key)
end

function TestKubeconfig:test_write_mode_root_and_dry_run()
  local root = t.tmpdir()
  assert(fs.set_root(root))
  local ok, how = kc.write("/etc/kubernetes/admin.conf", admin())
  lu.assertTrue(ok)
  lu.assertEquals(how, "written")
  lu.assertEquals(t.must("stat -c %a " .. t.q(root .. "/etc/kubernetes/admin.conf")), "600\n")
  lu.assertEquals(select(2, kc.write("/etc/kubernetes/admin.conf", admin())), "unchanged")
  -- loading through the same root finds it again
  local back = assert(kc.load("/etc/kubernetes/admin.conf"))
  lu.assertEquals(kc.encode(back), kc.encode(admin()))
  -- dry run: nothing on disk changes
  local before = t.tree_hash(root)
  fs.set_dry_run(true)
  assert(kc.write("/etc/kubernetes/super-admin.conf", admin()))
  assert(kc.write("/etc/kubernetes/admin.conf", kc.build({ server = "https://x:1", ca_pem = A.ca, token = "t" })))
  fs.set_dry_run(false)
  lu.assertEquals(t.tree_hash(root), before)
  -- a failed write leaves nothing behind either: the parent is a file
  t.write(root .. "/etc/kubernetes/blocker", "x")
  before = t.tree_hash(root)
  local wok, err = kc.write("/etc/kubernetes/blocker/x.conf", admin())
  lu.assertNil(wok)
  lu.assertStrContains(tostring(err), "blocker")
  lu.assertEquals(t.tree_hash(root), before)
end

local function load_err(text, name)
  local p = dir .. "/" .. (name or "bad.conf")
  t.write(p, text)
  local v, err = kc.load(p)
  if v then v, err = kc.current(v) end
  lu.assertNil(v)
  lu.assertEquals(err.op, "kubeconfig")
  return err.msg, p
end

function TestKubeconfig:test_load_errors_name_what_is_wrong()
  local good = kc.encode(admin())
  local msg, p = load_err(good:gsub("current%-context: kubernetes%-admin@kubernetes", "current-context: x"))
  lu.assertEquals(msg, "kubeconfig " .. p .. ': context "x" not found')
  msg = load_err(good:gsub("    server: [^\n]+\n", ""))
  lu.assertStrContains(msg, 'cluster "kubernetes": missing server')
  msg = load_err(good:gsub("    cluster: kubernetes\n", "    cluster: nope\n"))
  lu.assertStrContains(msg, 'cluster "nope" (of context "kubernetes-admin@kubernetes") not found')
  msg = load_err(good:gsub("    user: kubernetes%-admin\n", "    user: ghost\n"))
  lu.assertStrContains(msg, 'user "ghost" (of context "kubernetes-admin@kubernetes") not found')
  msg = load_err(good:gsub("kind: Config", "kind: Pod"))
  lu.assertStrContains(msg, 'kind is "Pod"')
  msg = load_err(good:gsub("client%-key%-data: [^\n]+", "client-key-data: '***'"))
  lu.assertStrContains(msg, 'user "kubernetes-admin".client-key-data: ')
  msg = load_err(good:gsub("    client%-key%-data: [^\n]+\n", ""))
  lu.assertStrContains(msg, "needs its key")
  msg = load_err("apiVersion: v1\nclusters: [\n")
  lu.assertStrMatches(msg, "kubeconfig .*bad%.conf: .*line.*")
  msg = load_err("- just\n- a list\n")
  lu.assertStrContains(msg, "not a YAML mapping")
  msg = load_err("")
  lu.assertStrContains(msg, "not a YAML mapping")
  msg = load_err(good:gsub("current%-context: [^\n]+\n", ""))
  lu.assertStrContains(msg, "no current-context")
  msg = load_err(good:gsub("  name: kubernetes\n", "", 1))
  lu.assertStrContains(msg, "clusters[1]: missing name")
  local v, err = kc.load(dir .. "/does-not-exist.conf")
  lu.assertNil(v)
  lu.assertEquals(err.msg, "kubeconfig " .. dir .. "/does-not-exist.conf: cannot read it: No such file or directory")
  -- paths kboot.fs refuses are an error too, not a raise
  v, err = kc.load("/etc/../../x.conf")
  lu.assertNil(v)
  lu.assertStrContains(err.msg, "kubeconfig /etc/../../x.conf: ")
  v, err = kc.load("relative.conf")
  lu.assertNil(v)
  lu.assertStrContains(err.msg, "kubeconfig relative.conf: ")
  -- a parsed (not loaded) kubeconfig keeps the name it was given for its messages
  local t_ = assert(kc.parse(good:gsub("current%-context: [^\n]+\n", ""), "https://example.com/discovery.conf"))
  local _, cerr = kc.current(t_)
  lu.assertEquals(cerr.msg, "kubeconfig https://example.com/discovery.conf: no current-context")
end

-- cluster-info's kubeconfig as clientcmd writes it (tokens.cluster_info_kubeconfig): one cluster
-- named "", contexts and users null
function TestKubeconfig:test_cluster_info_shape_parses()
  local text = require("kboot.tokens").cluster_info_kubeconfig("https://10.0.0.1:6443", A.ca)
  lu.assertStrContains(text, "users: null")
  local t_ = assert(kc.parse(text, "cluster-info"))
  lu.assertEquals(t_.clusters[1].name, "")
  lu.assertEquals(t_.clusters[1].cluster.server, "https://10.0.0.1:6443")
  lu.assertNil(t_.users)
  lu.assertNil(t_.contexts)
end

function TestKubeconfig:test_relative_refs_and_token_file()
  local d = t.tmpdir()
  t.must(("cp %s %s/ca.crt && mkdir %s/u && cp %s %s/u/c.crt && cp %s %s/u/c.key"):format(
    t.q(A.paths.ca), t.q(d), t.q(d), t.q(A.paths.client_crt), t.q(d), t.q(A.paths.client_key), t.q(d)))
  local text = ([[
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1", certificate-authority: ca.crt}
users:
- name: u
  user: {client-certificate: u/c.crt, client-key: %s/u/c.key}
- name: tok
  user: {tokenFile: tok.txt}
contexts:
- {name: a, context: {cluster: c, user: u}}
- {name: b, context: {cluster: c, user: tok}}
current-context: a
]]):format(d)
  t.write(d .. "/config", text)
  t.write(d .. "/tok.txt", "  abcdef.0123456789abcdef\n")
  local cfg = assert(kc.load(d .. "/config"))
  local cur = assert(kc.current(cfg))
  lu.assertEquals(cur.ca_pem, A.ca)
  lu.assertEquals(cur.cert_pem, A.client_crt)
  lu.assertEquals(cur.key_pem, A.client_key)
  cfg["current-context"] = "b"
  cur = assert(kc.current(cfg))
  lu.assertEquals(cur.token, "abcdef.0123456789abcdef")
  -- parsed from text there is no directory to resolve against
  local _, err = kc.current(assert(kc.parse(text)))
  lu.assertStrContains(err.msg, 'relative path "ca.crt" needs the kubeconfig\'s location')
  -- a missing referenced file names the field
  os.remove(d .. "/ca.crt")
  _, err = kc.current(assert(kc.load(d .. "/config")))
  lu.assertStrContains(err.msg, 'cluster "c".certificate-authority: ')
end

function TestKubeconfig:test_client_for_current_context_mtls()
  local c = assert(kc.client(kc.build({ server = server_url, ca_pem = A.ca, cert_pem = A.client_crt,
                                        key_pem = A.client_key }), { retries = 0 }))
  local r = assert(c:request("GET", "/"))
  lu.assertEquals(r.status, 200)
  lu.assertStrContains(r.body, "kubernetes-admin") -- s_server shows our client certificate's CN
  local path = dir .. "/mtls.conf"
  assert(kc.write(path, kc.build({ server = server_url, ca_pem = A.ca, cert_pem = A.client_crt, key_pem = A.client_key })))
  c = assert(kc.client(path))
  lu.assertEquals(assert(c:request("GET", "/")).status, 200)
  -- errors: a missing file, a bad server URL, bad PEM data
  local _, err = kc.client(dir .. "/none.conf")
  lu.assertStrContains(err.msg, "none.conf")
  _, err = kc.client(kc.build({ server = "ftp://x", ca_pem = A.ca, token = "t" }))
  lu.assertStrContains(err.msg, 'kubeconfig: cluster "kubernetes": server "ftp://x"')
  _, err = kc.client(kc.build({ server = server_url, ca_pem = "not pem", token = "t" }))
  lu.assertStrContains(err.msg, "ca_pem: no PEM certificate found")
end

function TestKubeconfig:test_insecure_with_a_ca_and_plain_http_credentials_refused()
  local k = kc.build({ server = server_url, ca_pem = A.ca, cert_pem = A.client_crt, key_pem = A.client_key })
  k.clusters[1].cluster["insecure-skip-tls-verify"] = true
  local want = 'cluster "kubernetes": insecure-skip-tls-verify: true together with certificate-authority-data is refused '
    .. "(as client-go refuses it): remove one of them"
  local cur, err = kc.current(k)
  lu.assertNil(cur)
  lu.assertStrContains(err.msg, want)
  local c
  c, err = kc.client(k)
  lu.assertNil(c)
  lu.assertStrContains(err.msg, want)
  k.clusters[1].cluster["certificate-authority-data"] = nil -- insecure alone: the discovery case
  lu.assertTrue(kc.current(k).insecure)
  -- a token over plain http:// only when asked for
  k = kc.build({ server = "http://127.0.0.1:1", ca_pem = A.ca, token = "abc.def" })
  c, err = kc.client(k)
  lu.assertNil(c)
  lu.assertStrContains(err.msg, 'cluster "kubernetes": server http://127.0.0.1:1 is plain http://: the bearer token')
  assert(kc.client(k, { plain_http = true })):close()
end

local function start_server()
  local port = t.free_port()
  server_url = "https://127.0.0.1:" .. port
  server_pid = certs.spawn(("openssl s_server -quiet -www -accept 127.0.0.1:%d -cert %s -key %s -Verify 1 " ..
    "-verify_return_error -CAfile %s"):format(port, t.q(A.paths.server_crt), t.q(A.paths.server_key), t.q(A.paths.ca)),
    dir .. "/s_server.log")
  certs.wait_listen(port, server_pid, "openssl s_server")
end

local ok, err = pcall(start_server)
if not ok then
  certs.kill(server_pid)
  error(err)
end
local rc = lu.LuaUnit.run("-v")
certs.kill(server_pid)
t.cleanup()
os.exit(rc)

-- kboot repl as a cluster debugging console, against the real v1.20.2 control plane (tests/lib/
-- controlplane.lua: kboot's offline init, then etcd, kube-apiserver, controller-manager and scheduler
-- run from its manifests on loopback). What the helpers return is asserted from Lua (kboot.console
-- in this process, the node's files under --root), checked against what the peers say themselves
-- (kubectl, etcdctl, openssl); then the same helpers through `kboot repl` with piped input and -e,
-- and in a real terminal (tmux). Faults are real: a wrong CA, a foreign client certificate, a wrong
-- port, a deleted token, a killed scheduler, a stopped API server.
local lu = require("luaunit")
local t = require("testlib")
local tty = require("tty")
local controlplane = require("controlplane")
local fs = require("kboot.fs")
local pki = require("kboot.pki")
local kubeconfig = require("kboot.kubeconfig")
local cjson = require("cjson")

local skip = controlplane.missing()
local cp, root, start_err
if not skip then
  root = t.tmpdir()
  local plan = controlplane.plan{ root = root }
  cp, start_err = controlplane.init_offline_and_start(plan)
end
local SUPER = root and (root .. "/etc/kubernetes/super-admin.conf")
local BIN = t.q(t.bin)
local dir = t.tmpdir()

local console = require("kboot.console")
if SUPER then console.set_kubeconfig(SUPER) end

-- fn(...) with this process looking at the node (--root): the console reads the node's files
-- under the sandbox root; everything else here (controlplane.lua, kubectl) reads host paths.
local function on_node(fn, ...)
  assert(fs.set_root(root))
  local r = table.pack(pcall(fn, ...))
  assert(fs.set_root("/"))
  if not r[1] then error(r[2], 2) end
  return table.unpack(r, 2, r.n)
end

local function kubectl(args) return t.must(cp.kubectl_super .. " " .. args) end

local function need()
  lu.skipIf(skip ~= nil, skip)
  if not cp then error("control plane did not start: " .. tostring(start_err)) end
end

local function by(list, key, value)
  for _, r in ipairs(list) do if r[key] == value then return r end end
end

-- A kubeconfig like super-admin.conf with some parts replaced, written to dir/NAME.conf.
local function variant(name, o)
  local cur = assert(kubeconfig.current(assert(kubeconfig.load(SUPER))))
  local b = { server = o.server or cur.server, ca_pem = o.ca or cur.ca_pem }
  if o.token then b.token = o.token else b.cert_pem, b.key_pem = o.cert or cur.cert_pem, o.key or cur.key_pem end
  local path = dir .. "/" .. name .. ".conf"
  t.write(path, kubeconfig.encode(kubeconfig.build(b)))
  return path
end

-- A CA named like the cluster's ("kubernetes") with another key: what a regenerated PKI looks like.
local other_key = pki.generate_key("ECDSA-P256")
local other_ca = pki.self_signed_ca(other_key, { cn = "kubernetes", not_after = os.time() + 86400 })

-- A repeated check (the API server's caches take a moment to see a new or deleted Secret).
local function eventually(what, fn, timeout)
  local deadline, last = os.time() + (timeout or 30), nil
  repeat
    local ok, why = fn()
    if ok then return ok end
    last = why
    os.execute("sleep 0.3")
  until os.time() > deadline
  error(("timed out waiting for %s: %s"):format(what, tostring(last)), 2)
end

---------------------------------------------------------------------------------------------------
-- The data

-- The scheduler and the controller-manager hold their Leases (their leader election is done).
local leases_held = false
local function wait_leases()
  if leases_held then return end
  eventually("the scheduler and the controller-manager to hold their Leases", function()
    local ok, out = t.sh(cp.kubectl_super .. " get leases -n kube-system -o name")
    return ok and out:find("lease.coordination.k8s.io/kube-scheduler", 1, true)
      and out:find("lease.coordination.k8s.io/kube-controller-manager", 1, true), out
  end, 60)
  leases_held = true
end

TestA_Data = {}
function TestA_Data:setUp() need() wait_leases() end

function TestA_Data:test_connect()
  local info = assert(on_node(console.connect))
  lu.assertEquals(info.server, cp.server)
  lu.assertEquals(info.kubeconfig, SUPER)
  lu.assertEquals(info.user, "kubernetes-super-admin")
  lu.assertEquals(info.groups, { "system:masters" })
  lu.assertEquals(info.auth, "client certificate")
  lu.assertEquals(info.version, cjson.decode(kubectl("version -o json")).serverVersion.gitVersion)
  lu.assertEquals(info.version, "v1.20.2")
  local crt = pki.load_cert(kubeconfig.current(kubeconfig.load(SUPER)).cert_pem)
  lu.assertEquals(info.cert_expires, crt:info().not_after)
  lu.assertStrContains(info.access, "list nodes: yes")
  -- this node's admin.conf (under --root, the default): kubeadm:cluster-admins, which an offline
  -- init has not bound to anything yet
  local admin = assert(on_node(console.connect, "admin"))
  lu.assertEquals(admin.kubeconfig, root .. "/etc/kubernetes/admin.conf")
  lu.assertEquals(admin.user, "kubernetes-admin")
  lu.assertEquals(admin.groups, { "kubeadm:cluster-admins" })
  lu.assertStrContains(admin.access, "may not list nodes")
  assert(on_node(console.connect))
end

function TestA_Data:test_nodes()
  local list = assert(on_node(console.nodes))
  local want = cjson.decode(kubectl("get nodes -o json")).items
  lu.assertEquals(#list, #want)
  local n = assert(by(list, "name", cp.node_name))
  local obj = want[1]
  lu.assertEquals(n.name, obj.metadata.name)
  -- no kubelet posts a status here: no Ready condition
  lu.assertNil(n.ready)
  lu.assertEquals(n.status, "Unknown")
  lu.assertNotNil(n.reason)
  lu.assertTrue(n.age >= 0 and n.age < 3600)
  -- the kubelet's client certificate is on this node: its expiry
  local kcur = kubeconfig.current(kubeconfig.load(root .. "/etc/kubernetes/kubelet.conf"))
  lu.assertEquals(n.kubelet_cert, pki.load_cert(kcur.cert_pem):info().not_after)
  -- taints as kubectl sees them
  local taints = {}
  for _, x in ipairs(obj.spec.taints or {}) do taints[#taints + 1] = x.key .. (x.value and ("=" .. x.value) or "") .. ":" .. x.effect end
  lu.assertEquals(n.taints, taints)
end

function TestA_Data:test_pods()
  local list = assert(on_node(console.pods, "kube-system"))
  local names = {}
  for _, p in ipairs(list) do names[#names + 1] = p.name end
  local want = {}
  for l in kubectl("get pods -n kube-system -o name"):gmatch("pod/([^\n]+)") do want[#want + 1] = l end
  table.sort(want)
  lu.assertEquals(names, want)
  local etcd = assert(by(list, "name", "etcd-" .. cp.node_name))
  lu.assertEquals(etcd.namespace, "kube-system")
  lu.assertEquals(etcd.node, cp.node_name)
  lu.assertEquals(etcd.ready, "0/1")     -- mirror Pods without a kubelet: no container statuses
  lu.assertEquals(etcd.restarts, 0)
  lu.assertEquals(etcd.status, "Pending")
  -- every namespace
  local all = assert(on_node(console.pods))
  lu.assertTrue(#all >= #list)
end

function TestA_Data:test_events_most_recent_first()
  local list = assert(on_node(console.events))
  lu.assertTrue(#list > 0)
  for i = 2, #list do lu.assertTrue(list[i - 1].time >= list[i].time) end
  -- the scheduler and the controller-manager each became leader (their Lease objects)
  local leader = 0
  for _, e in ipairs(list) do if e.reason == "LeaderElection" then leader = leader + 1 end end
  lu.assertTrue(leader >= 2, require("kboot.pretty").format(list))
  local ks = assert(on_node(console.events, "kube-system"))
  for _, e in ipairs(ks) do lu.assertEquals(e.namespace, "kube-system") end
  -- a Warning is marked for the printer
  local mt = getmetatable(list)
  lu.assertEquals(mt.level({ type = "Warning" }), "warn")
  lu.assertNil(mt.level({ type = "Normal" }))
end

function TestA_Data:test_components_all_healthy()
  local list = assert(on_node(console.components))
  local names = {}
  for _, r in ipairs(list) do names[#names + 1] = r.name; lu.assertEquals(r.status, "ok", r.name .. ": " .. tostring(r.detail)) end
  lu.assertEquals(names, { "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd" })
  -- the ports they really listen on (the harness moved them), found from the running processes
  lu.assertEquals(by(list, "name", "kube-scheduler").endpoint, ("https://127.0.0.1:%d/healthz"):format(cp.ports[10259]))
  lu.assertEquals(by(list, "name", "kube-controller-manager").endpoint, ("https://127.0.0.1:%d/healthz"):format(cp.ports[10257]))
  lu.assertEquals(by(list, "name", "etcd").endpoint, ("https://127.0.0.1:%d"):format(cp.etcd_port))
  lu.assertEquals(by(list, "name", "kube-apiserver").endpoint, cp.server)
  lu.assertStrContains(by(list, "name", "kube-scheduler").detail, "leader ")
  lu.assertStrContains(by(list, "name", "etcd").detail, "leader " .. cp.node_name)
end

function TestA_Data:test_certs_of_the_node()
  local list = assert(on_node(console.certs))
  local names = {}
  for _, r in ipairs(list) do names[#names + 1] = r.name end
  -- kboot certs check-expiration's rows, in its order
  lu.assertEquals(names, { "admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client",
    "controller-manager.conf", "etcd-healthcheck-client", "etcd-peer", "etcd-server", "front-proxy-client",
    "scheduler.conf", "super-admin.conf", "ca", "etcd-ca", "front-proxy-ca" })
  local text = t.must(("%s certs check-expiration --root %s"):format(BIN, t.q(root)))
  for _, r in ipairs(list) do
    lu.assertNotNil(text:find("\n" .. r.name:gsub("%-", "%%-") .. " +%u%l%l %d%d, %d%d%d%d %d%d:%d%d UTC +" .. r.expiry:gsub("^in ", "")), r.name)
  end
  for _, r in ipairs(list) do
    lu.assertEquals(r.status, "ok", r.name .. ": " .. table.concat(r.problems, "; "))
    lu.assertEquals(r.problems, {})
  end
  -- the expiry is openssl's
  local api = by(list, "name", "apiserver")
  local end_date = t.must("openssl x509 -noout -enddate -in " .. t.q(root .. "/etc/kubernetes/pki/apiserver.crt"))
  lu.assertEquals(os.date("!%b %e %H:%M:%S %Y GMT", api.not_after), end_date:match("notAfter=(.-)\n"))
  lu.assertEquals(api.expiry, "in 364d")
  lu.assertEquals(api.ca, "ca")
  lu.assertEquals(api.kind, "certificate")
  lu.assertEquals(by(list, "name", "ca").expiry, "in 9y")
  lu.assertEquals(by(list, "name", "admin.conf").kind, "kubeconfig")
  lu.assertEquals(by(list, "name", "apiserver-etcd-client").ca, "etcd-ca")
end

-- A copy of the node's PKI with what certs() must flag: a key that is not the certificate's, a
-- certificate of another CA, an API server certificate without the advertise address, an expired
-- one, a missing one.
function TestA_Data:test_certs_problems_flagged()
  local bad = t.tmpdir()
  t.must(("cp -a %s/etc %s/"):format(t.q(root), t.q(bad)))
  local p = bad .. "/etc/kubernetes/pki/"
  local function pem(path) return t.read(path) end
  local ca = assert(pki.load_cert(pem(p .. "ca.crt")))
  local ca_key = assert(pki.load_key(pem(p .. "ca.key")))
  t.write(p .. "apiserver-kubelet-client.key", pki.generate_key("ECDSA-P256"):pem())
  local k = pki.generate_key("ECDSA-P256")
  t.write(p .. "front-proxy-client.crt", pki.sign({ cn = "front-proxy-client", ext_key_usages = { "client auth" } }, k, other_ca, other_key):pem())
  t.write(p .. "front-proxy-client.key", k:pem())
  k = pki.generate_key("ECDSA-P256")
  t.write(p .. "apiserver.crt", pki.sign({ cn = "kube-apiserver", dns = { "kubernetes" }, ip = { "10.96.0.1" },
    ext_key_usages = { "server auth" } }, k, ca, ca_key):pem())
  t.write(p .. "apiserver.key", k:pem())
  k = pki.generate_key("ECDSA-P256")
  local now = os.time()
  t.write(p .. "etcd/healthcheck-client.crt", pki.sign({ cn = "kube-etcd-healthcheck-client", ext_key_usages = { "client auth" },
    not_before = now - 10 * 86400, not_after = now - 3 * 86400 - 60 }, k, assert(pki.load_cert(pem(p .. "etcd/ca.crt"))),
    assert(pki.load_key(pem(p .. "etcd/ca.key")))):pem())
  t.write(p .. "etcd/healthcheck-client.key", k:pem())
  os.remove(p .. "apiserver-etcd-client.crt")
  assert(fs.set_root(bad))
  local ok, list = pcall(console.certs)
  assert(fs.set_root("/"))
  assert(ok, list)
  local function row(n) return assert(by(list, "name", n), n) end
  lu.assertEquals(row("apiserver-kubelet-client").status, "problem")
  lu.assertStrContains(row("apiserver-kubelet-client").problems[1], "apiserver-kubelet-client.key does not match it")
  lu.assertEquals(row("front-proxy-client").status, "problem")
  lu.assertStrContains(row("front-proxy-client").problems[1], 'not signed by the "front-proxy-ca" CA')
  lu.assertEquals(row("apiserver").status, "problem")
  lu.assertEquals(row("apiserver").problems, { "its SANs miss the advertise address 127.0.0.1" })
  lu.assertEquals(row("etcd-healthcheck-client").status, "expired")
  lu.assertEquals(row("etcd-healthcheck-client").expiry, "EXPIRED 3d ago")
  lu.assertEquals(row("apiserver-etcd-client").status, "missing")
  lu.assertEquals(row("etcd-server").status, "ok")
  local mt = getmetatable(list)
  lu.assertEquals(mt.level(row("apiserver")), "error")
  lu.assertNil(mt.level(row("etcd-server")))
end

local ETCDCTL = "/usr/bin/etcdctl"
local function etcdctl(args)
  local p = root .. "/etc/kubernetes/pki/etcd/"
  return t.must(("ETCDCTL_API=3 %s --endpoints=https://127.0.0.1:%d --cacert=%s --cert=%s --key=%s %s"):format(ETCDCTL,
    cp.etcd_port, t.q(p .. "ca.crt"), t.q(p .. "healthcheck-client.crt"), t.q(p .. "healthcheck-client.key"), args))
end

function TestA_Data:test_etcd_members_health_status()
  local members = assert(on_node(console.etcd.members))
  lu.assertEquals(#members, 1)
  local m = members[1]
  lu.assertEquals(m.name, cp.node_name)
  lu.assertEquals(m.client_urls, { ("https://127.0.0.1:%d"):format(cp.etcd_port) })
  lu.assertFalse(m.learner)
  if t.sh("test -x " .. ETCDCTL) then
    -- etcdctl's own view: "id, started, name, peer urls, client urls, learner"
    local line = etcdctl("member list -w simple")
    lu.assertEquals(line:match("^(%x+),"), m.id)
  end
  local h = assert(on_node(console.etcd.health))
  lu.assertEquals(#h, 1)
  lu.assertTrue(h[1].healthy, tostring(h[1].error))
  lu.assertTrue(h[1].took > 0)
  local st = assert(on_node(console.etcd.status))
  local s = st[1]
  lu.assertEquals(s.id, m.id)
  lu.assertEquals(s.leader, m.id)
  lu.assertTrue(s.is_leader)
  lu.assertEquals(s.leader_name, cp.node_name)
  lu.assertTrue(s.db_size > 0 and s.raft_index > 0 and s.raft_term >= 1)
  lu.assertEquals(s.version, t.must("/usr/bin/etcd --version"):match("etcd Version: (%S+)"))
  if t.sh("test -x " .. ETCDCTL) then
    local js = cjson.decode(etcdctl("endpoint status -w json"))[1].Status
    lu.assertEquals(s.db_size > 0 and js.dbSize > 0, true)
    lu.assertTrue(s.raft_index <= js.raftIndex)
  end
end

function TestA_Data:test_diagnose()
  local list = assert(on_node(console.diagnose))
  local checks = {}
  for _, r in ipairs(list) do checks[r.check] = checks[r.check] or r end
  -- the control plane is healthy; this machine has no kubelet binary, but the harness plays its
  -- healthz, and a kubelet that answers is not diagnosed missing (what was measured wins)
  lu.assertEquals(checks.apiserver.status, "ok")
  lu.assertEquals(checks["kubelet-healthz"].status, "ok")
  lu.assertEquals(checks.manifests.status, "ok")
  lu.assertEquals(checks.kubelet.status, "ok")
  lu.assertNil(checks.kubelet.cause)
end

function TestA_Data:test_probe()
  local r = assert(on_node(console.probe, cp.server .. "/healthz"))
  lu.assertEquals(r.status, 200)
  lu.assertEquals(r.body, "ok")
  lu.assertStrMatches(r.protocol, "TLSv1%.[23]")
  lu.assertNotNil(r.cipher)
  lu.assertEquals(r.alpn, "h2")
  lu.assertEquals(r.verify, "ok: signed by the session's kubeconfig's CA")
  lu.assertEquals(r.hostname, "ok: the certificate names 127.0.0.1")
  lu.assertEquals(r.chain[1].subject, "CN=kube-apiserver")
  lu.assertEquals(r.chain[1].issuer, "CN=kubernetes")
  lu.assertTrue(r.timing.total >= r.timing.tls and r.timing.tls > 0)
  -- the chain is openssl's
  local sc = t.must(("openssl s_client -connect 127.0.0.1:%d -showcerts </dev/null 2>/dev/null"):format(cp.api_port))
  local leaf = assert(pki.load_cert(sc))
  lu.assertEquals(leaf:info().not_after, r.chain[1].not_after)
  -- a CA that did not sign it
  r = assert(on_node(console.probe, cp.server .. "/healthz", { ca = other_ca:pem() }))
  lu.assertStrContains(r.verify, "FAILED against the CA given: ")
  -- this node's CAs, without a session
  console.disconnect()
  r = assert(on_node(console.probe, cp.server .. "/healthz"))
  lu.assertEquals(r.verify, "ok: signed by " .. root .. "/etc/kubernetes/pki/ca.crt")
  -- the scheduler's self-signed serving certificate is no CA of this node's
  r = assert(on_node(console.probe, ("https://127.0.0.1:%d/healthz"):format(cp.ports[10259])))
  lu.assertStrContains(r.verify, "FAILED: its issuer CN=localhost-ca@")
  -- etcd wants a client certificate; with the healthcheck client's it answers
  local _, err = on_node(console.probe, ("https://127.0.0.1:%d/health"):format(cp.etcd_port))
  lu.assertEquals(err.step, "tls", err.msg)
  lu.assertStrContains(err.msg, "it wants a client certificate")
  r = assert(on_node(console.probe, ("https://127.0.0.1:%d/health"):format(cp.etcd_port),
    { cert = "/etc/kubernetes/pki/etcd/healthcheck-client.crt", key = "/etc/kubernetes/pki/etcd/healthcheck-client.key" }))
  lu.assertEquals(r.verify, "ok: signed by " .. root .. "/etc/kubernetes/pki/etcd/ca.crt")
  lu.assertStrContains(r.body, '"health":"true"')
end

function TestA_Data:test_inspect()
  local r = assert(on_node(console.inspect, "/etc/kubernetes/pki/apiserver.crt"))
  local text = t.must("openssl x509 -noout -subject -serial -in " .. t.q(root .. "/etc/kubernetes/pki/apiserver.crt"))
  lu.assertEquals(r.type, "certificate")
  lu.assertEquals(r.subject, "CN=kube-apiserver")
  lu.assertEquals(r.serial:upper(), text:match("serial=(%x+)"))
  lu.assertEquals(r.signed_by, "ca (/etc/kubernetes/pki/ca.crt)")
  lu.assertEquals(r.expiry, "in 364d")
  local k = assert(on_node(console.inspect, "/etc/kubernetes/pki/ca.key"))
  lu.assertEquals(k.type, "private key")
  lu.assertEquals(k.pem, "<private key>")
  lu.assertEquals(k.spki_pin, pki.load_cert(t.read(root .. "/etc/kubernetes/pki/ca.crt")):spki_pin())
  local kc = assert(on_node(console.inspect, "/etc/kubernetes/admin.conf"))
  lu.assertEquals(kc.type, "kubeconfig")
  lu.assertEquals(kc.server, cp.server)
  lu.assertEquals(kc.client_key, "<private key>")
  lu.assertStrContains(kc.client_certificate, "CN=kubernetes-admin,O=kubeadm:cluster-admins")
  -- a host path, and PEM text: a bundle gives rows
  local bundle = t.read(root .. "/etc/kubernetes/pki/ca.crt") .. t.read(root .. "/etc/kubernetes/pki/front-proxy-ca.crt")
  local rows = assert(console.inspect(bundle))
  lu.assertEquals(#rows, 2)
  lu.assertEquals(rows[2].subject, "CN=front-proxy-ca")
  -- a pretty-printed kubeconfig hides its key
  local shown = require("kboot.pretty").format(assert(kubeconfig.load(root .. "/etc/kubernetes/admin.conf")))
  lu.assertStrContains(shown, '["client-key-data"] = <private key>')
  lu.assertNotStrContains(shown, t.read(root .. "/etc/kubernetes/admin.conf"):match("client%-key%-data: (%S+)"))
end

---------------------------------------------------------------------------------------------------
-- connect() naming the step that failed

TestB_Failures = {}
function TestB_Failures:setUp() need() end

function TestB_Failures:test_server_certificate_not_of_the_ca()
  local info, err = on_node(console.connect, variant("wrongca", { ca = other_ca:pem() }))
  lu.assertNil(info)
  lu.assertEquals(err.step, "tls")
  lu.assertStrContains(err.msg, "connect " .. cp.server .. ": TLS: the server's certificate does not verify: ")
  lu.assertStrContains(err.msg, "it is not signed by the kubeconfig's CA (CN=kubernetes): a CA of the same name but another key")
  -- what the server really presents
  lu.assertStrContains(err.msg, "the server presents subject CN=kube-apiserver, SANs [" .. cp.node_name .. " kubernetes ")
  lu.assertStrContains(err.msg, " 10.96.0.1 127.0.0.1], issuer CN=kubernetes, expires in 364d")
  lu.assertNil(err.msg:find("\n"))
  lu.assertEquals(err.server_cert.subject, "CN=kube-apiserver")
end

function TestB_Failures:test_foreign_client_certificate()
  local k = pki.generate_key("ECDSA-P256")
  local crt = pki.sign({ cn = "intruder", o = { "system:masters" }, ext_key_usages = { "client auth" } }, k, other_ca, other_key)
  local _, err = on_node(console.connect, variant("wrongcert", { cert = crt:pem(), key = k:pem() }))
  lu.assertEquals(err.step, "auth")
  lu.assertEquals(err.status, 401)
  lu.assertEquals(err.msg, "connect " .. cp.server .. ": auth: 401 Unauthorized as intruder: the client certificate (subject "
    .. "CN=intruder,O=system:masters, issuer CN=kubernetes) is not signed by the cluster's CA (the kubeconfig's): a foreign or regenerated CA")
end

function TestB_Failures:test_wrong_port_and_unknown_host()
  local port = t.free_port()
  local _, err = on_node(console.connect, variant("wrongport", { server = "https://127.0.0.1:" .. port }))
  lu.assertEquals(err.step, "tcp")
  lu.assertEquals(err.msg, ("connect https://127.0.0.1:%d: TCP: cannot connect: nothing accepts connections on 127.0.0.1 port %d (is the server running? is the port right?)"):format(port, port))
  _, err = on_node(console.connect, variant("nodns", { server = "https://no-such-host.invalid:6443" }))
  lu.assertEquals(err.step, "dns")
  lu.assertStrContains(err.msg, "connect https://no-such-host.invalid:6443: DNS: cannot resolve no-such-host.invalid")
  _, err = on_node(console.connect, dir .. "/missing.conf")
  lu.assertEquals(err.step, "kubeconfig")
end

-- No credentials at all: /version is public, /api is not for system:anonymous.
function TestB_Failures:test_anonymous_is_forbidden()
  local cur = assert(kubeconfig.current(assert(kubeconfig.load(SUPER))))
  local path = dir .. "/anonymous.conf"
  t.write(path, ("apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: %s\n    certificate-authority-data: %s\n"
    .. "contexts:\n- name: a\n  context:\n    cluster: k\ncurrent-context: a\n"):format(cur.server, require("kboot.crypto").base64(cur.ca_pem)))
  local _, err = on_node(console.connect, path)
  lu.assertEquals(err.step, "auth")
  lu.assertEquals(err.status, 403)
  lu.assertStrContains(err.msg, "connect " .. cp.server .. ': auth: 403 Forbidden as system:anonymous: forbidden: User "system:anonymous" cannot get path "/api"')
end

function TestB_Failures:test_deleted_token()
  local id, secret = "kbcon1", "0123456789abcdef"
  local obj = { apiVersion = "v1", kind = "Secret", type = "bootstrap.kubernetes.io/token",
                metadata = { name = "bootstrap-token-" .. id, namespace = "kube-system" },
                stringData = { ["token-id"] = id, ["token-secret"] = secret, ["usage-bootstrap-authentication"] = "true" } }
  t.write(dir .. "/token.json", cjson.encode(obj))
  kubectl("apply -f " .. t.q(dir .. "/token.json"))
  local conf = variant("token", { token = id .. "." .. secret })
  local info = eventually("the token to authenticate", function() return on_node(console.connect, conf) end)
  lu.assertEquals(info.user, "system:bootstrap:" .. id)
  lu.assertEquals(info.auth, "bootstrap token " .. id)
  lu.assertStrContains(info.access, "may not list nodes")
  kubectl("delete secret -n kube-system bootstrap-token-" .. id)
  local err = eventually("the token to be refused", function()
    local i, e = on_node(console.connect, conf)
    if i then return nil, "still accepted" end
    return e
  end)
  lu.assertEquals(err.step, "auth")
  lu.assertEquals(err.msg, ("connect %s: auth: 401 Unauthorized as system:bootstrap:%s: the token is unknown to the server (deleted, expired or mistyped)")
    :format(cp.server, id))
  assert(on_node(console.connect))
end

-- etcd gone: the API server still answers, and its /livez and /readyz name the failing check.
function TestB_Failures:test_etcd_killed_failing_checks_named()
  cp:kill("etcd")
  local ok, err = pcall(function()
    local list = eventually("the API server to notice", function()
      local l = on_node(console.components)
      local a = by(l, "name", "kube-apiserver")
      return a.status == "unhealthy" and l, a.status .. ": " .. tostring(a.detail)
    end, 60)
    local a = by(list, "name", "kube-apiserver")
    lu.assertStrContains(a.detail, "/readyz 500: etcd failed")
    lu.assertEquals(getmetatable(list).level(a), "error")
    local e = by(list, "name", "etcd")
    lu.assertEquals(e.status, "down")
    lu.assertStrContains(e.detail, "Couldn't connect to server")
    lu.assertStrContains(e.detail, "no etcd process runs from this node's files (/etc/kubernetes/manifests/etcd.yaml)")
    local h = assert(on_node(console.etcd.health))
    lu.assertFalse(h[1].healthy)
    lu.assertStrContains(h[1].error, "Couldn't connect")
  end)
  cp:restart("etcd")
  -- the controller-manager and the scheduler may lose their Leases meanwhile and exit
  eventually("the API server to be ready again", function()
    local a = by(on_node(console.components), "name", "kube-apiserver")
    return a.status == "ok", a.detail
  end, 90)
  local lost = assert(on_node(console.components))
  for _, name in ipairs({ "kube-controller-manager", "kube-scheduler" }) do
    if by(lost, "name", name).status ~= "ok" then cp:kill(name) cp:restart(name) end
  end
  assert(ok, err)
  eventually("every component to be healthy again", function()
    for _, r in ipairs(on_node(console.components)) do
      if r.status ~= "ok" then return nil, r.name .. ": " .. tostring(r.detail) end
    end
    return true
  end, 90)
end

function TestB_Failures:test_scheduler_killed()
  cp:kill("kube-scheduler")
  local ok, err = pcall(function()
    local list = assert(on_node(console.components))
    local s = by(list, "name", "kube-scheduler")
    lu.assertEquals(s.status, "down")
    lu.assertStrContains(s.detail, "connection refused; no kube-scheduler process runs from this node's files")
    lu.assertEquals(by(list, "name", "kube-apiserver").status, "ok")
    lu.assertEquals(by(list, "name", "kube-controller-manager").status, "ok")
    lu.assertEquals(getmetatable(list).level(s), "error")
  end)
  cp:restart("kube-scheduler")
  assert(ok, err)
  eventually("the scheduler to answer again", function()
    local list = on_node(console.components)
    local s = by(list, "name", "kube-scheduler")
    return s.status == "ok", s.detail
  end, 60)
end

function TestB_Failures:test_api_server_stopped()
  cp:kill("kube-apiserver")
  local ok, err = pcall(function()
    local _, e = on_node(console.connect)
    lu.assertEquals(e.step, "tcp", e.msg)
    lu.assertStrContains(e.msg, ("nothing accepts connections on 127.0.0.1 port %d"):format(cp.api_port))
    local list = assert(on_node(console.components))
    local a = by(list, "name", "kube-apiserver")
    lu.assertEquals(a.status, "down")
    lu.assertStrContains(a.detail, "TCP: cannot connect")
    local d = assert(on_node(console.diagnose))
    local api = by(d, "check", "apiserver")
    lu.assertEquals(api.status, "fail")
    lu.assertEquals(api.cause, "apiserver-down")
  end)
  assert(cp:restart("kube-apiserver"))
  -- the controller-manager and the scheduler lose their leader election with the API server and
  -- exit, as they do on a real node (where the kubelet restarts them)
  local lost = assert(on_node(console.components))
  for _, name in ipairs({ "kube-controller-manager", "kube-scheduler" }) do
    if by(lost, "name", name).status ~= "ok" then cp:kill(name) cp:restart(name) end
  end
  assert(ok, err)
  assert(on_node(console.connect))
  eventually("every component to be healthy again", function()
    for _, r in ipairs(on_node(console.components)) do
      if r.status ~= "ok" then return nil, r.name .. ": " .. tostring(r.detail) end
    end
    return true
  end, 90)
end

---------------------------------------------------------------------------------------------------
-- `kboot repl` with piped input and -e

-- repl(input, args) -> stdout, stderr, exit code
local function repl(input, args)
  local d = t.tmpdir()
  t.write(d .. "/in", input or "")
  local _, _, code = t.sh(("cd %s && HOME=%s %s repl --root %s --kubeconfig %s %s < in > out 2> err"):format(t.q(d), t.q(d),
    BIN, t.q(root), t.q(SUPER), args or ""))
  return t.read(d .. "/out"), t.read(d .. "/err"), code
end

TestC_Pipe = {}
function TestC_Pipe:setUp() need() end

function TestC_Pipe:test_tables_and_exit_status()
  local out, err, code = repl("nodes()\ncomponents()\n")
  lu.assertEquals(code, 0, err)
  lu.assertEquals(err, "")
  lu.assertStrMatches(out, "^NAME +STATUS +ROLES +VERSION +AGE +TAINTS +INTERNAL%-IP +KUBELET%-CERT +REASON\n" .. cp.node_name .. " +Unknown .*")
  lu.assertStrContains(out, "\nkube-scheduler           ok ")
  lu.assertNil(out:find("\27", 1, true)) -- no colour into a pipe
  -- a line that fails: its message on stderr, the next line still runs, exit 1
  out, err, code = repl(("connect(%q)\n1+1\n"):format(variant("wrongport2", { server = "https://127.0.0.1:" .. t.free_port() })))
  lu.assertEquals(code, 1)
  lu.assertEquals(out, "2\n")
  lu.assertStrContains(err, ": TCP: cannot connect: nothing accepts connections on 127.0.0.1 port ")
end

function TestC_Pipe:test_eval()
  local out, err, code = repl(nil, "-e " .. t.q("etcd.members()"))
  lu.assertEquals(code, 0, err)
  lu.assertStrMatches(out, "^ID +NAME +PEER%-URLS +CLIENT%-URLS +LEARNER\n%x+ +" .. cp.node_name .. " .*")
  _, err, code = repl(nil, "-e " .. t.q("connect(" .. ("%q"):format(dir .. "/wrongca.conf") .. ")"))
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, ": TLS: ")
end

---------------------------------------------------------------------------------------------------
-- A real terminal

TestD_Terminal = {}
function TestD_Terminal:setUp()
  need()
  lu.skipIf(not tty.available(), "tmux is not installed: tools/install-deps.sh must add the Debian package tmux")
end

local function session(extra_env)
  local d = t.tmpdir()
  return tty.start({ cmd = ("HOME=%s KBOOT_HISTORY=%s %s %s repl --root %s --kubeconfig %s"):format(t.q(d), t.q(d .. "/hist"),
    extra_env or "", BIN, t.q(root), t.q(SUPER)), width = 200, height = 60 })
end

function TestD_Terminal:test_debugging_session()
  local s = session()
  local ok, err = pcall(function()
    s:wait_prompt()
    s:type("connect()"); s:keys("Enter")
    s:wait_text("user          kubernetes-super-admin\n")
    s:wait_text("version       v1.20.2")
    s:type("nodes()"); s:keys("Enter")
    s:wait_for("the node table", function(x) return x:find("\n" .. cp.node_name .. "  Unknown", 1, true) ~= nil end)
    s:type('pods("kube-system")'); s:keys("Enter")
    s:wait_text("kube-scheduler-" .. cp.node_name)
    s:type("components()"); s:keys("Enter")
    local screen = s:wait_text("\netcd                     ok")
    lu.assertStrContains(screen, "\nkube-scheduler           ok      https://127.0.0.1:" .. cp.ports[10259] .. "/healthz")
    s:type("certs()"); s:keys("Enter")
    s:wait_text("\nfront-proxy-ca")
    lu.assertStrMatches(s:screen(), ".*\napiserver +%u%l%l %d%d, %d+ %d%d:%d%d UTC +in 364d +ca +no +ok.*")
    s:type("etcd.members()"); s:keys("Enter")
    s:wait_for("the member table", function(x) return x:find("\n%x+  " .. cp.node_name .. "  https://127.0.0.1:") ~= nil end)
    s:type("help()"); s:keys("Enter")
    s:wait_text("Console helpers (kboot.console")
    s:wait_text("  nodes()")
    s:wait_text("  kube  ")
    s:type('help("kube.get")'); s:keys("Enter")
    s:wait_text("k:get(api_version, kind, ns_or_nil, name)\n  object, or nil, err")
    -- Tab completion of the kboot table
    s:keys("C-l")
    s:type("kboot.kubec"); s:keys("Tab Tab")
    s:wait_for("the candidates", function(x) return x:find("\nkboot%.kubeconfig +kboot%.kubeconfigs\n") ~= nil end)
    s:keys("C-u")
    s:type("kboot.etcd_m"); s:keys("Tab")
    s:wait_for("kboot.etcd_members", function(x) return tty.last_line(x) == "> kboot.etcd_members" end)
    s:keys("C-u")
    s:wait_prompt()
    -- Ctrl-C during a blocking watch: back at the prompt within a second, no traceback
    s:type('watch("nodes")'); s:keys("Enter")
    s:wait_text("ADDED Node " .. cp.node_name)
    local t0 = require("kboot.time").now()
    s:keys("C-c")
    screen = s:wait_for("the prompt after Ctrl-C", function(x) return x:find("interrupted\n>$") ~= nil end)
    lu.assertTrue(require("kboot.time").now() - t0 < 1, "Ctrl-C took more than a second")
    lu.assertNotStrContains(screen, "repl.lua")
    lu.assertNotStrContains(screen, "traceback")
    s:type("1+1"); s:keys("Enter")
    s:wait_text("> 1+1\n2\n>")
    s:keys("C-d")
    lu.assertEquals(s:exit_status(), 0)
  end)
  s:stop()
  assert(ok, err)
end

-- A narrow terminal: every line of a table fits it (capture-pane -J joins the lines tmux wrapped).
function TestD_Terminal:test_tables_fit_a_narrow_terminal()
  local d = t.tmpdir()
  local s = tty.start({ cmd = ("HOME=%s %s repl --no-history --root %s --kubeconfig %s"):format(t.q(d), BIN, t.q(root), t.q(SUPER)),
                        width = 90, height = 50 })
  local ok, err = pcall(function()
    s:wait_prompt()
    s:type("components()"); s:keys("Enter")
    s:wait_text("\netcd ")
    s:type("certs()"); s:keys("Enter")
    s:wait_text("\nfront-proxy-ca ")
    local joined = s:tmux("capture-pane -p -J -t s")
    local n = 0
    for line in joined:gmatch("[^\n]+") do
      n = n + 1
      lu.assertTrue(utf8.len((line:gsub("%s+$", ""))) <= 90, line)
    end
    lu.assertTrue(n > 20)
    lu.assertStrContains(joined, "…") -- the components' details were cut
  end)
  s:stop()
  assert(ok, err)
end

-- The scheduler killed: components() shows it down and why, in red on a terminal (not with NO_COLOR).
function TestD_Terminal:test_scheduler_down_in_colour()
  cp:kill("kube-scheduler")
  local ok, err = pcall(function()
    for _, env in ipairs({ "", "NO_COLOR=1" }) do
      local s = session(env)
      local good, why = pcall(function()
        s:wait_prompt()
        s:type("components()"); s:keys("Enter")
        local screen = s:wait_text("no kube-scheduler process runs from this node's files")
        lu.assertStrMatches(screen, ".*\nkube%-scheduler +down +https://127%.0%.0%.1:%d+/healthz +connection refused; no kube%-scheduler process.*")
        local esc = s:screen(true)
        if env == "" then
          -- red from the start of the scheduler's line (or of a red line above it) to its end
          lu.assertNotNil(esc:find("\n\27%[31mkube%-scheduler +down "), esc)
        else
          lu.assertNil(esc:find("\27[31m", 1, true))
        end
        s:keys("C-d")
        lu.assertEquals(s:exit_status(), 0)
      end)
      s:stop()
      assert(good, why)
    end
  end)
  cp:restart("kube-scheduler")
  assert(ok, err)
end

local rc = lu.LuaUnit.run("-v")
if cp then cp:stop() end
t.cleanup()
os.exit(rc)

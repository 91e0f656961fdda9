-- `kboot join` for workers against a real v1.20.2 control plane (tests/lib/controlplane.lua, in
-- sandbox A, on 127.0.0.1). init's online phases upload-config and bootstrap-token run first; the
-- first join starts as soon as bootstrap-token returns, so its discovery waits for the real
-- bootstrapsigner's signature (or kboot's own, whichever comes). No kubelet runs: kboot mints
-- kubelet.conf through a CSR that the real csrapproving controller approves and the real signer
-- signs; the node's credentials are then checked by the Node authorizer and NodeRestriction.
-- A VIP is a TCP forwarder on 127.0.0.3 (tests/lib/tcp_forward.py) that counts connections.
-- The CA pin is computed by openssl from A's ca.crt, not by kboot.
local lu = require("luaunit")
local t = require("testlib")
local json = require("cjson")
local controlplane = require("controlplane")

local skip = controlplane.missing()
local TOKEN_ID, TOKEN_SECRET = "jne2e0", "q7w8e9r0t1y2u3i4"
local TOKEN = TOKEN_ID .. "." .. TOKEN_SECRET
local VIP = "127.0.0.3"

local A, cp, start_err, PIN, KUBECTL
local fwd -- { pid, port, log }

local function sh_timeout(secs, cmd) return t.sh(("timeout %d %s"):format(secs, cmd)) end
local function kubectl(args) return t.must(cp.kubectl .. " " .. args) end
local function kjson(args) return json.decode(kubectl(args .. " -o json")) end

-- kboot join ENDPOINT ARGS --root ROOT (preflight errors ignored: a sandbox has no kubelet) -> ok, out, code
local function join(endpoint, root, args)
  return sh_timeout(180, ("%s join %s %s --root %s --ignore-preflight-errors=all"):format(t.q(t.bin), endpoint, args, t.q(root)))
end
local function token_args(token, node, pin)
  return ("--token %s --discovery-token-ca-cert-hash %s --node-name %s"):format(token, pin or PIN, node)
end

local function server_of(conf) return (t.read(conf):match("\n%s*server: (%S+)")) end

local function csrs()
  local by = {}
  for _, c in ipairs(kjson("get csr").items) do by[c.metadata.name] = c end
  return by
end
local function count(tbl) local n = 0 for _ in pairs(tbl) do n = n + 1 end return n end

local function start_forwarder(addr)
  addr = addr or VIP
  local d = t.tmpdir()
  local port = t.free_port()
  local logf = d .. "/fwd.log"
  local pid = t.must(("/usr/bin/python3 %s %s %d 127.0.0.1 %d %s %s >%s/err 2>&1 </dev/null & echo $!"):format(
    t.q(t.src .. "/tests/lib/tcp_forward.py"), addr, port, cp.api_port, t.q(logf), t.pid(), d)):match("%d+")
  for _ = 1, 100 do
    local f = io.open(logf)
    if f then
      local s = f:read("a")
      f:close()
      if s:find("listening") then return { pid = pid, port = port, log = logf } end
    end
    os.execute("sleep 0.05")
  end
  error("tcp_forward.py did not start: " .. select(2, t.sh("cat " .. d .. "/err")))
end
local function connections() return select(2, t.read(fwd.log):gsub("\nconn %d+", "")) end

if not skip then
  A = t.tmpdir()
  local plan = controlplane.plan{ root = A, token = TOKEN, cert_sans = { VIP } }
  cp, start_err = controlplane.init_offline_and_start(plan)
  if cp then
    KUBECTL = controlplane.bin_dir() .. "/kubectl"
    -- the online phases a join needs: kubeadm-config and kubelet-config, then the token, its RBAC
    -- and cluster-info (not signed yet: the first join's discovery waits for the signature)
    for _, phase in ipairs({ "upload-config", "bootstrap-token" }) do
      local ok, out = t.kboot("init phase " .. phase .. " " .. plan.init_args)
      if not ok then start_err = ("init phase %s failed:\n%s"):format(phase, out) break end
    end
    PIN = "sha256:" .. t.must("openssl x509 -in " .. t.q(A .. "/etc/kubernetes/pki/ca.crt")
      .. " -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum"):match("^(%x+)")
  end
end

TestE2EJoin = {}
function TestE2EJoin:setUp()
  if skip then lu.skip(skip) end
  if start_err then error(start_err .. (cp and ("\n" .. cp:tail(10)) or "")) end
end

function TestE2EJoin:test_1_worker_join()
  -- NodeRestriction is on, as kubeadm sets it (kboot's manifest, run as it is by controlplane.lua)
  lu.assertStrContains(controlplane.flag(cp.commands["kube-apiserver"].args, "enable-admission-plugins") or "", "NodeRestriction")
  local B = t.tmpdir()
  local before = csrs()
  local ok, out, code = join("127.0.0.1:" .. cp.api_port, B, token_args(TOKEN, "w1"))
  lu.assertTrue(ok, ("exit %s:\n%s\n%s"):format(tostring(code), out, cp:tail(10)))
  lu.assertStrContains(out, "cluster-info from 127.0.0.1:" .. cp.api_port .. " verified (token " .. TOKEN_ID .. ", CA " .. PIN)
  lu.assertStrContains(out, "This node has joined the cluster as w1 (worker)")
  lu.assertNotStrContains(out, TOKEN_SECRET)

  -- the CSR: exactly one new, from the bootstrap token, approved by csrapproving and signed
  local name = out:match("CertificateSigningRequest (node%-csr%-[%w_%-]+)")
  lu.assertNotNil(name, out)
  local now = csrs()
  lu.assertEquals(count(now), count(before) + 1)
  local csr = now[name]
  lu.assertEquals(csr.spec.username, "system:bootstrap:" .. TOKEN_ID)
  lu.assertEquals(csr.spec.signerName, "kubernetes.io/kube-apiserver-client-kubelet")
  local approved
  for _, c in ipairs(csr.status.conditions or {}) do
    if c.type == "Approved" then approved = c end
  end
  lu.assertNotNil(approved, "not approved: " .. json.encode(csr.status))
  lu.assertEquals(approved.status, "True")
  lu.assertEquals(approved.reason, "AutoApproved")
  lu.assertStrContains(approved.message, "Auto approving kubelet client certificate")
  lu.assertTrue(type(csr.status.certificate) == "string" and #csr.status.certificate > 0)

  -- the files, their modes, and the certificate as openssl reads it
  local pki_dir = B .. "/var/lib/kubelet/pki"
  local pem = t.must("ls " .. t.q(pki_dir) .. " | grep -E '^kubelet-client-[0-9-]+\\.pem$'"):gsub("%s+$", "")
  lu.assertStrMatches(pem, "kubelet%-client%-%d%d%d%d%-%d%d%-%d%d%-%d%d%-%d%d%-%d%d%.pem")
  lu.assertEquals(t.must("stat -c %a " .. t.q(pki_dir .. "/" .. pem)), "600\n")
  lu.assertEquals(t.must("readlink " .. t.q(pki_dir .. "/kubelet-client-current.pem")), pem .. "\n")
  lu.assertEquals(t.must("stat -c %a " .. t.q(B .. "/etc/kubernetes/kubelet.conf")), "600\n")
  lu.assertEquals(t.read(B .. "/etc/kubernetes/pki/ca.crt"), t.read(A .. "/etc/kubernetes/pki/ca.crt"))
  local subj = t.must("openssl x509 -in " .. t.q(pki_dir .. "/" .. pem) .. " -noout -subject -nameopt RFC2253")
  lu.assertStrContains(subj, "CN=system:node:w1")
  lu.assertStrContains(subj, "O=system:nodes")
  lu.assertStrContains(t.must("openssl verify -CAfile " .. t.q(A .. "/etc/kubernetes/pki/ca.crt") .. " "
    .. t.q(pki_dir .. "/" .. pem)), ": OK")
  t.must("openssl pkey -in " .. t.q(pki_dir .. "/" .. pem) .. " -noout")   -- the key is in the same file
  lu.assertEquals(server_of(B .. "/etc/kubernetes/kubelet.conf"), cp.server)
  lu.assertEquals(t.read(B .. "/var/lib/kubelet/config.yaml"),
                  kjson("-n kube-system get configmap kubelet-config").data.kubelet)
  lu.assertStrContains(t.read(B .. "/var/lib/kubelet/kubeadm-flags.env"), "KUBELET_KUBEADM_ARGS=")

  -- kubelet.conf names /var/lib/kubelet/... (the real node's paths): a copy re-rooted under B
  local kc = t.tmpdir() .. "/kubelet.conf"
  t.write(kc, (t.read(B .. "/etc/kubernetes/kubelet.conf"):gsub(" /var/lib/kubelet/", " " .. B .. "/var/lib/kubelet/")))
  local node = ("%s --kubeconfig %s "):format(t.q(KUBECTL), t.q(kc))
  local function node_obj(n) return ("echo '{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\"}}' | "):format(n) end
  -- as system:node:w1: its own Node is its to create and read
  lu.assertStrContains(t.must(node_obj("w1") .. node .. "create -f -"), "node/w1 created")
  lu.assertStrContains(t.must(node .. "get node w1 -o name"), "node/w1")
  -- another node's is not (NodeRestriction), nor is the control-plane node's
  local ok2, out2 = t.sh(node_obj("w2") .. node .. "create -f -")
  lu.assertFalse(ok2)
  lu.assertStrContains(out2, "Forbidden")
  lu.assertStrContains(out2, 'node "w1" is not allowed to modify node "w2"')
  local ok3, out3 = t.sh(node .. "label node " .. cp.node_name .. " e2e=x")
  lu.assertFalse(ok3)
  lu.assertStrContains(out3, "Forbidden")
  -- and it is no admin
  local ok4, out4 = t.sh(node .. "-n kube-system get secrets")
  lu.assertFalse(ok4)
  lu.assertStrContains(out4, "Forbidden")
  lu.assertStrContains(out4, "system:node:w1")
  TestE2EJoin.w1_root = B
end

-- a VIP in front of the API server: the endpoint given stays in the kubeconfigs; the forwarder
-- carried the join's traffic; --use-cluster-info-endpoint takes cluster-info's server instead
function TestE2EJoin:test_2_vip()
  fwd = start_forwarder()
  local ep = ("%s:%d"):format(VIP, fwd.port)
  local vip = "https://" .. ep
  lu.assertEquals(server_of(A .. "/etc/kubernetes/admin.conf"), cp.server)

  local B2, c0 = t.tmpdir(), connections()
  local ok, out, code = join(ep, B2, token_args(TOKEN, "w2"))
  lu.assertTrue(ok, ("exit %s:\n%s"):format(tostring(code), out))
  lu.assertStrContains(out, ("Joining through %s; cluster-info names %s"):format(vip, cp.server))
  lu.assertEquals(server_of(B2 .. "/etc/kubernetes/kubelet.conf"), vip)
  local c_w2 = connections() - c0
  -- the unverified and the verified cluster-info fetch, then the bootstrap client: 3 or more
  lu.assertTrue(c_w2 >= 3, "connections through the forwarder for w2: " .. c_w2)

  local B3, c1 = t.tmpdir(), connections()
  ok, out, code = join(ep, B3, token_args(TOKEN, "w3") .. " --use-cluster-info-endpoint")
  lu.assertTrue(ok, ("exit %s:\n%s"):format(tostring(code), out))
  lu.assertStrContains(out, ("Using cluster-info's server %s (--use-cluster-info-endpoint), not %s"):format(cp.server, vip))
  lu.assertEquals(server_of(B3 .. "/etc/kubernetes/kubelet.conf"), cp.server)
  local c_w3 = connections() - c1
  -- discovery went through the forwarder, the rest did not
  lu.assertTrue(c_w3 >= 2 and c_w3 < c_w2, ("connections: w2 %d, w3 %d"):format(c_w2, c_w3))

  -- --kubelet-bootstrap: bootstrap-kubelet.conf names the VIP, and its token works through it
  local B4 = t.tmpdir()
  ok, out, code = join(ep, B4, token_args(TOKEN, "w4") .. " --kubelet-bootstrap --skip-phases kubelet-wait-bootstrap")
  lu.assertTrue(ok, ("exit %s:\n%s"):format(tostring(code), out))
  local bconf = B4 .. "/etc/kubernetes/bootstrap-kubelet.conf"
  lu.assertEquals(server_of(bconf), vip)
  lu.assertFalse(t.sh("test -e " .. t.q(B4 .. "/etc/kubernetes/kubelet.conf")))
  local c2 = connections()
  lu.assertStrMatches(t.must(("%s --kubeconfig %s auth can-i create certificatesigningrequests.certificates.k8s.io"):format(
    t.q(KUBECTL), t.q(bconf))), ".*\nyes\n")
  lu.assertTrue(connections() > c2)

  -- a load balancer whose address the API server certificate does not name: the verified
  -- re-read of cluster-info fails, naming the address; nothing written
  local lb = start_forwarder("127.0.0.4")
  local E = t.tmpdir()
  ok, out, code = join("127.0.0.4:" .. lb.port, E, token_args(TOKEN, "w9"))
  os.execute("kill " .. lb.pid)
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, "error: error execution phase discovery: cluster-info from 127.0.0.4:" .. lb.port
    .. " over TLS verified against its CA")
  lu.assertStrContains(out, "no alternative certificate subject name matches target host name '127.0.0.4'")
  lu.assertEquals(t.must("ls -A " .. t.q(E)), "", out)
end

-- a second join of w1 over the same root: nothing changes, no new CSR
function TestE2EJoin:test_3_rerun_keeps_everything()
  local B = TestE2EJoin.w1_root
  lu.assertNotNil(B, "test_1 did not leave w1's root")
  local hash, before = t.tree_hash(B), csrs()
  local ok, out, code = join("127.0.0.1:" .. cp.api_port, B, token_args(TOKEN, "w1"))
  lu.assertTrue(ok, ("exit %s:\n%s"):format(tostring(code), out))
  lu.assertStrContains(out, "already holds a valid client certificate for this node; kept")
  lu.assertNotStrContains(out, "Requesting the kubelet's client certificate")
  lu.assertEquals(t.tree_hash(B), hash)
  lu.assertEquals(count(csrs()), count(before))
end

-- Each bad path: the exit code, one "error:" line naming the cause, nothing under the root.
local function bad(endpoint, args, want_code, words, max_secs)
  local E = t.tmpdir()
  local t0 = os.time()
  local ok, out, code = join(endpoint, E, args)
  lu.assertFalse(ok, out)
  lu.assertEquals(code, want_code, out)
  local errs = {}
  for line in out:gmatch("[^\n]+") do
    if line:find("^error:") then errs[#errs + 1] = line end
  end
  lu.assertEquals(#errs, 1, out)
  for _, w in ipairs(words) do lu.assertStrContains(errs[1], w) end
  lu.assertNotStrContains(out, TOKEN_SECRET)
  lu.assertEquals(t.must("ls -A " .. t.q(E)), "", "something was written under the root:\n" .. out)
  if max_secs then lu.assertTrue(os.time() - t0 <= max_secs, ("took %d s: %s"):format(os.time() - t0, out)) end
  return errs[1], out
end

local function short_config()
  local f = t.tmpdir() .. "/join.yaml"
  t.write(f, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ntimeouts:\n  discovery: 2s\n")
  return f
end

local function wait_signed(id, secs)
  for _ = 1, secs * 2 do
    if kjson("-n kube-public get configmap cluster-info").data["jws-kubeconfig-" .. id] then return true end
    os.execute("sleep 0.5")
  end
  return false
end

function TestE2EJoin:test_4_bad_paths()
  local ep = "127.0.0.1:" .. cp.api_port
  local cfg = short_config()
  -- the secret is not the one cluster-info was signed with
  bad(ep, token_args(TOKEN_ID .. ".q7w8e9r0t1y2u3i5", "w9"), 1,
      { "jws-kubeconfig-" .. TOKEN_ID, "does not verify", "wrong token secret" }, 30)
  -- no such token: no signature ever appears; the discovery timeout of the config bounds the wait
  bad(ep, "--config " .. t.q(cfg) .. " " .. token_args("zzzzzz." .. TOKEN_SECRET, "w9"), 1,
      { "no jws-kubeconfig-zzzzzz in cluster-info after 2s", "does not exist, has expired" }, 20)
  -- a wrong pin: the line gives the CA's real pin
  local wrong = "sha256:" .. ("ab"):rep(32)
  bad(ep, token_args(TOKEN, "w9", wrong), 1, { "matches none of the 1 given CA pin", "its pin is " .. PIN }, 30)
  -- an expired token: the bootstrapsigner does not sign it (the token cleaner removes it)
  kubectl("-n kube-system create secret generic bootstrap-token-exp000 --type bootstrap.kubernetes.io/token "
    .. "--from-literal=token-id=exp000 --from-literal=token-secret=" .. TOKEN_SECRET
    .. " --from-literal=expiration=2020-01-01T00:00:00Z --from-literal=usage-bootstrap-authentication=true "
    .. "--from-literal=usage-bootstrap-signing=true --from-literal=auth-extra-groups=system:bootstrappers:kubeadm:default-node-token")
  bad(ep, "--config " .. t.q(cfg) .. " " .. token_args("exp000." .. TOKEN_SECRET, "w9"), 1,
      { "no jws-kubeconfig-exp000", "has expired" }, 20)
  lu.assertNil(kjson("-n kube-public get configmap cluster-info").data["jws-kubeconfig-exp000"])
  -- a token that signs but does not authenticate (as one that expired after it was signed): 401
  kubectl("-n kube-system create secret generic bootstrap-token-sig000 --type bootstrap.kubernetes.io/token "
    .. "--from-literal=token-id=sig000 --from-literal=token-secret=" .. TOKEN_SECRET .. " --from-literal=usage-bootstrap-signing=true")
  lu.assertTrue(wait_signed("sig000", 60), "the bootstrapsigner did not sign for sig000 within 60 s")
  bad(ep, token_args("sig000." .. TOKEN_SECRET, "w9"), 1,
      { "refused this node's bootstrap credentials (401 Unauthorized)", "expired", "usage-bootstrap-authentication" }, 30)
  -- nothing listens there
  local dead = "127.0.0.1:" .. t.free_port()
  bad(dead, "--config " .. t.q(cfg) .. " " .. token_args(TOKEN, "w9"), 1,
      { "cannot fetch cluster-info from " .. dead .. " within 2s", "unreachable" }, 20)
  -- a Ready Node of that name is another machine's: refused in kubelet-start, after the lock was
  -- taken (so /etc/kubernetes may exist), but no file is written
  t.must([[echo '{"apiVersion":"v1","kind":"Node","metadata":{"name":"w7"}}' | ]] .. cp.kubectl .. " create -f -")
  local n = kjson("get node w7")
  n.status = { conditions = { { type = "Ready", status = "True", reason = "KubeletReady", message = "e2e",
    lastHeartbeatTime = os.date("!%Y-%m-%dT%H:%M:%SZ"), lastTransitionTime = os.date("!%Y-%m-%dT%H:%M:%SZ") } } }
  local nf = t.tmpdir() .. "/w7.json"
  t.write(nf, json.encode(n))
  kubectl("replace --raw /api/v1/nodes/w7/status -f " .. t.q(nf))
  local E = t.tmpdir()
  local ok, out, code = join(ep, E, token_args(TOKEN, "w7"))
  lu.assertFalse(ok)
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, 'error: error execution phase kubelet-start: a Node named "w7" is already Ready in the cluster')
  lu.assertEquals(select(2, out:gsub("\nerror:", "")), 1, out)
  lu.assertEquals(t.must("cd " .. t.q(E) .. " && find . ! -type d"), "", out)
  lu.assertFalse(t.sh("test -e " .. t.q(E .. "/etc/kubernetes/.kboot.lock")))
  -- bad input: exit 2, before anything is sent
  local _, out = bad(ep, token_args("nope", "w9"), 2, { "invalid configuration", "nothing was written" }, 10)
  lu.assertStrContains(out, "JoinConfiguration.discovery.bootstrapToken.token: invalid bootstrap token")
  _, out = bad(ep, ("--token %s --node-name w9"):format(TOKEN), 2, { "invalid configuration" }, 10)
  lu.assertStrContains(out, "JoinConfiguration.discovery.bootstrapToken.caCertHashes: give at least one CA pin")
  _, out = bad(ep, token_args(TOKEN, "w9", "sha256:abc"), 2, { "invalid configuration" }, 10)
  lu.assertStrContains(out, "JoinConfiguration.discovery.bootstrapToken.caCertHashes")
end

-- discovery polls until the signature is there: a token the signer does not sign yet (no
-- usage-bootstrap-signing), the join started, then the usage added; the join finishes on its own
function TestE2EJoin:test_5_discovery_waits_for_signature()
  local id = "wait00"
  kubectl("-n kube-system create secret generic bootstrap-token-" .. id .. " --type bootstrap.kubernetes.io/token "
    .. "--from-literal=token-id=" .. id .. " --from-literal=token-secret=" .. TOKEN_SECRET
    .. " --from-literal=usage-bootstrap-authentication=true --from-literal=auth-extra-groups=system:bootstrappers:kubeadm:default-node-token")
  local B, d = t.tmpdir(), t.tmpdir()
  t.must(("(timeout 180 %s join 127.0.0.1:%d %s -v --root %s --ignore-preflight-errors=all >%s/out 2>&1; echo $? >%s/rc) "
    .. "</dev/null >/dev/null 2>&1 &"):format(t.q(t.bin), cp.api_port, token_args(id .. "." .. TOKEN_SECRET, "w5"), t.q(B), d, d))
  local waiting = false
  for _ = 1, 100 do
    local f = io.open(d .. "/out")
    local s = f and f:read("a") or ""
    if f then f:close() end
    if s:find("has no jws%-kubeconfig%-" .. id .. " yet; retrying") then waiting = true break end
    os.execute("sleep 0.1")
  end
  lu.assertTrue(waiting, "the join did not wait for the signature: " .. select(2, t.sh("cat " .. d .. "/out")))
  lu.assertEquals(t.must("ls -A " .. t.q(B)), "", "written before discovery finished")
  kubectl(("-n kube-system patch secret bootstrap-token-%s -p '{\"stringData\":{\"usage-bootstrap-signing\":\"true\"}}'"):format(id))
  local rc
  for _ = 1, 600 do
    local f = io.open(d .. "/rc")
    if f then rc = tonumber(f:read("l") or "") f:close() end
    if rc then break end
    os.execute("sleep 0.1")
  end
  local out = t.read(d .. "/out")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "cluster-info from 127.0.0.1:" .. cp.api_port .. " verified (token " .. id)
  lu.assertStrContains(out, "This node has joined the cluster as w5 (worker)")
  lu.assertEquals(server_of(B .. "/etc/kubernetes/kubelet.conf"), cp.server)
end

-- --discovery-file with cluster-info's own kubeconfig (kubeadm accepts it: the unnamed cluster,
-- no user) and the TLS bootstrap token; without a token it is refused before anything is written.
-- A dry run sends no CSR and writes nothing.
function TestE2EJoin:test_6_discovery_file_and_dry_run()
  local f = t.tmpdir() .. "/discovery.conf"
  t.write(f, kjson("-n kube-public get configmap cluster-info").data.kubeconfig)
  local B = t.tmpdir()
  local ok, out, code = join("", B, ("--discovery-file %s --tls-bootstrap-token %s --node-name f1"):format(t.q(f), TOKEN))
  lu.assertTrue(ok, ("exit %s:\n%s"):format(tostring(code), out))
  lu.assertStrContains(out, "This node has joined the cluster as f1 (worker)")
  lu.assertEquals(server_of(B .. "/etc/kubernetes/kubelet.conf"), cp.server)
  lu.assertStrContains(t.must("openssl x509 -noout -subject -nameopt RFC2253 -in " .. t.q(B .. "/var/lib/kubelet/pki/kubelet-client-current.pem")),
    "CN=system:node:f1")
  bad("", ("--discovery-file %s --node-name f2"):format(t.q(f)), 1, { "discovery file", "no credentials", "--tls-bootstrap-token" }, 20)

  local before = csrs()
  local E = t.tmpdir()
  ok, out, code = join("127.0.0.1:" .. cp.api_port, E, token_args(TOKEN, "d1") .. " --dry-run")
  lu.assertTrue(ok, ("exit %s:\n%s"):format(tostring(code), out))
  lu.assertStrContains(out, "Would create CertificateSigningRequest node-csr-")
  lu.assertEquals(count(csrs()), count(before))
  lu.assertEquals(t.must("ls -A " .. t.q(E)), "", out)
end

-- a cluster kubeadm before 1.24 made: ConfigMap kubelet-config-1.20 and a Role that names only it
-- (so the bootstrap token gets 403, not 404, for kubelet-config). Last: it changes the cluster
-- (and puts it back).
function TestE2EJoin:test_7_kubeadm_before_1_24_kubelet_config()
  local ns = "-n kube-system "
  local cm = kjson(ns .. "get configmap kubelet-config")
  local old = { apiVersion = "v1", kind = "ConfigMap", data = cm.data,
                metadata = { name = "kubelet-config-1.20", namespace = "kube-system" } }
  local f = t.tmpdir() .. "/cm.json"
  t.write(f, json.encode(old))
  kubectl("create -f " .. t.q(f))
  kubectl(ns .. "create role kubeadm:kubelet-config-1.20 --verb=get --resource=configmaps --resource-name=kubelet-config-1.20")
  kubectl(ns .. "create rolebinding kubeadm:kubelet-config-1.20 --role=kubeadm:kubelet-config-1.20 "
    .. "--group=system:nodes --group=system:bootstrappers:kubeadm:default-node-token")
  local saved = t.tmpdir() .. "/saved.json"
  t.write(saved, kubectl(ns .. "get configmap/kubelet-config role/kubeadm:kubelet-config rolebinding/kubeadm:kubelet-config -o json"))
  kubectl(ns .. "delete configmap/kubelet-config rolebinding/kubeadm:kubelet-config role/kubeadm:kubelet-config")
  local B = t.tmpdir()
  local ok, out, code = join("127.0.0.1:" .. cp.api_port, B, token_args(TOKEN, "o1"))
  -- put the cluster back before asserting
  local items = json.decode(t.read(saved)).items
  for _, o in ipairs(items) do
    o.metadata = { name = o.metadata.name, namespace = o.metadata.namespace, labels = o.metadata.labels }
  end
  t.write(saved, json.encode({ apiVersion = "v1", kind = "List", items = items }))
  kubectl("create -f " .. t.q(saved))
  lu.assertTrue(ok, ("exit %s:\n%s"):format(tostring(code), out))
  lu.assertEquals(t.read(B .. "/var/lib/kubelet/config.yaml"), cm.data.kubelet)
end

-- the CSR not approved: without ClusterRoleBinding kubeadm:node-autoapprove-bootstrap it stays
-- Pending; denied by an admin, the join says so at once; past timeouts.tlsBootstrap it names the
-- likely causes; once init phase bootstrap-token put the binding back, a re-run over the same root
-- finishes. Changes the cluster (and puts it back).
function TestE2EJoin:test_8_csr_denied_or_pending()
  kubectl("delete clusterrolebinding kubeadm:node-autoapprove-bootstrap")
  local ep = "127.0.0.1:" .. cp.api_port
  local cfg = t.tmpdir() .. "/join.yaml"
  local function timeout_cfg(s)
    t.write(cfg, ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ntimeouts:\n  tlsBootstrap: %s\n"):format(s))
  end
  -- denied while the join waits
  timeout_cfg("60s")
  local B, d = t.tmpdir(), t.tmpdir()
  local before = csrs()
  t.must(("(timeout 120 %s join %s --config %s %s --root %s --ignore-preflight-errors=all >%s/out 2>&1; echo $? >%s/rc) "
    .. "</dev/null >/dev/null 2>&1 &"):format(t.q(t.bin), ep, t.q(cfg), token_args(TOKEN, "p1"), t.q(B), d, d))
  local name
  for _ = 1, 200 do
    for n in pairs(csrs()) do if not before[n] then name = n end end
    if name then break end
    os.execute("sleep 0.1")
  end
  lu.assertNotNil(name, "no CSR appeared: " .. select(2, t.sh("cat " .. d .. "/out")))
  kubectl("certificate deny " .. name)
  local rc
  for _ = 1, 300 do
    local f = io.open(d .. "/rc")
    if f then rc = tonumber(f:read("l") or "") f:close() end
    if rc then break end
    os.execute("sleep 0.1")
  end
  local out = t.read(d .. "/out")
  lu.assertEquals(rc, 1, out)
  lu.assertStrContains(out, ("error: error execution phase kubelet-start: CertificateSigningRequest %s was denied"):format(name))
  -- the certificate comes before the kubelet's files: a denied request leaves the node as it was
  lu.assertEquals(t.must("ls -A " .. t.q(B)), "")
  -- pending past the timeout
  timeout_cfg("3s")
  local B2 = t.tmpdir()
  local ok, code
  ok, out, code = join(ep, B2, "--config " .. t.q(cfg) .. " " .. token_args(TOKEN, "p2"))
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, "is still pending after 3s: not approved")
  lu.assertStrContains(out, "ClusterRoleBinding kubeadm:node-autoapprove-bootstrap is missing")
  lu.assertEquals(t.must("ls -A " .. t.q(B2)), "")
  -- the binding back (kboot's own phase), then the same join again finishes
  t.must(t.q(t.bin) .. " init phase bootstrap-token --root " .. t.q(A) .. " --config " .. t.q(A .. "/kubeadm.yaml"))
  ok, out, code = join(ep, B2, "--config " .. t.q(cfg) .. " " .. token_args(TOKEN, "p2"))
  lu.assertTrue(ok, ("exit %s:\n%s"):format(tostring(code), out))
  lu.assertStrContains(out, "This node has joined the cluster as p2 (worker)")
end

-- the API server down when the join starts (a control-plane restart): discovery keeps polling and
-- the join finishes once it is back. Last: the control plane is restarted.
function TestE2EJoin:test_9_api_server_restart_during_discovery()
  cp:kill("kube-apiserver")
  local B, d = t.tmpdir(), t.tmpdir()
  t.must(("(timeout 240 %s join 127.0.0.1:%d %s -v --root %s --ignore-preflight-errors=all >%s/out 2>&1; echo $? >%s/rc) "
    .. "</dev/null >/dev/null 2>&1 &"):format(t.q(t.bin), cp.api_port, token_args(TOKEN, "r1"), t.q(B), d, d))
  os.execute("sleep 2")
  lu.assertFalse(t.sh("test -e " .. d .. "/rc"), "the join did not wait: " .. t.read(d .. "/out"))
  lu.assertEquals(t.must("ls -A " .. t.q(B)), "")
  assert(cp:restart("kube-apiserver"))
  -- the controller-manager and scheduler may lose their leases while it was down and exit, also
  -- a while after it is back (seen in CI under load): a kubelet would restart them, and so does
  -- this loop, while the join (whose CSR the controller-manager approves) goes on
  local function keep_alive()
    for _, n in ipairs({ "kube-controller-manager", "kube-scheduler" }) do
      if not t.sh(("kill -0 %s 2>/dev/null && ! grep -q '^State:.*Z' /proc/%s/status"):format(cp.pids[n], cp.pids[n])) then
        assert(cp:restart(n))
      end
    end
  end
  local rc
  for i = 1, 1800 do
    local f = io.open(d .. "/rc")
    if f then rc = tonumber(f:read("l") or "") f:close() end
    if rc then break end
    if i % 10 == 1 then keep_alive() end
    os.execute("sleep 0.1")
  end
  local out = t.read(d .. "/out")
  lu.assertEquals(rc, 0, out .. "\n" .. cp:tail(10))
  lu.assertStrContains(out, "; retrying")
  lu.assertStrContains(out, "This node has joined the cluster as r1 (worker)")
end

local rc = lu.LuaUnit.run("-v")
if fwd then os.execute("kill " .. fwd.pid .. " 2>/dev/null") end
if cp then cp:stop() end
t.cleanup()
os.exit(rc)

-- `kboot join --control-plane` against a real v1.20.2 control plane (tests/lib/controlplane.lua).
-- Node A (kboot init, offline, then upload-config, upload-certs and bootstrap-token) runs on
-- 127.0.0.1. Node cp2 joins in sandbox B on 127.0.0.2 while B's harness plays its kubelet: it
-- waits for the four manifests the join writes, runs them (its etcd really at https://127.0.0.2:2380
-- and :2379, the URLs registered in etcd; another loopback address if something holds those ports
-- there), registers Node cp2 and posts the mirror Pods. Every effect is checked with the real
-- tools: etcdctl against A's etcd, kubectl, openssl, the bytes and modes of the files. A join of
-- cp3 (127.0.0.4) SIGKILLed at a random moment is run again to the end.
local lu = require("luaunit")
local t = require("testlib")
local json = require("cjson")
local controlplane = require("controlplane")

local skip = controlplane.missing()
local TOKEN = "cpe2e0.m3n4b5v6c7x8z9a1"
local KEY = "5f1d3c0a9e8b7f6a5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e"
local WRONG_KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
local ETCDCTL = "/usr/bin/etcdctl"

local A, B, cpA, cpB, start_err, PIN, B_PORT, B_ADDR
local join_out, join_rc, join_secs
local others = {} -- harnesses started by the tests (cp3)

-- A joining node's etcd listens on ADDR:2379 and :2380, fixed ports: the address asked for, or,
-- when something else (another test, a bench) holds one of them there, another loopback address.
local function free_address(want)
  local function taken(a)
    return t.sh(("ss -Htan '( sport = :2379 or sport = :2380 )' | grep -qF ' %s:'"):format(a))
  end
  if not taken(want) then return want end
  for _ = 1, 50 do
    local a = ("127.0.%d.%d"):format(math.random(1, 254), math.random(2, 254))
    if not taken(a) then return a end
  end
  error("no loopback address with 2379 and 2380 free")
end

-- kboot join ... --control-plane for NODE on ADDR into ROOT, as a shell command (no redirections)
local function join_cmd(root, node, addr, port, key)
  return ("%s join 127.0.0.1:%d --token %s --discovery-token-ca-cert-hash %s --control-plane --certificate-key %s "
    .. "--apiserver-advertise-address %s --apiserver-bind-port %d --node-name %s --root %s --ignore-preflight-errors=all")
    :format(t.q(t.bin), cpA.api_port, TOKEN, PIN, key or KEY, addr, port, node, t.q(root))
end

-- the join in the background, its output and exit code in files of d; nothing inherits popen's pipe
local function start_join(d, cmd, secs)
  t.must(("(timeout %d %s >%s/out 2>&1; echo $? >%s/rc) </dev/null >/dev/null 2>&1 &"):format(secs or 300, cmd, d, d))
end
local function read_rc(d)
  local f = io.open(d .. "/rc")
  if not f then return nil end
  local rc = tonumber(f:read("l") or "")
  f:close()
  return rc
end
local function wait_rc(d, secs)
  for _ = 1, secs * 5 do
    local rc = read_rc(d)
    if rc then return rc end
    os.execute("sleep 0.2")
  end
end
local function file(p) local f = io.open(p, "rb") if not f then return "" end local s = f:read("a") f:close() return s end

-- the harness of a joining node, once the join has written etcd's manifest (or has exited)
local function start_node(root, d, addr, node)
  for _ = 1, 600 do
    if read_rc(d) or t.sh("test -s " .. t.q(root .. "/etc/kubernetes/manifests/etcd.yaml")) then break end
    os.execute("sleep 0.2")
  end
  if read_rc(d) and read_rc(d) ~= 0 then return nil, ("the join exited %d:\n%s"):format(read_rc(d), file(d .. "/out")) end
  local ok, cp = pcall(controlplane.start, { root = root, address = addr, wait_manifests = 60, kubelet_healthz = false,
                                              node_name = node, timeout = 180 })
  if not ok then return nil, tostring(cp) .. "\njoin output:\n" .. file(d .. "/out") end
  return cp
end

if not skip then
  A, B = t.tmpdir(), t.tmpdir()
  local plan = controlplane.plan{ root = A, token = TOKEN, certificate_key = KEY }
  cpA, start_err = controlplane.init_offline_and_start(plan)
  if cpA then
    -- the online phases a control-plane join needs: kubeadm-config and kubelet-config, the
    -- encrypted certificates (certificateKey is in plan.config), the token and cluster-info
    for _, phase in ipairs({ "upload-config", "upload-certs --upload-certs", "bootstrap-token" }) do
      local ok, out = t.kboot("init phase " .. phase .. " " .. plan.init_args)
      if not ok then start_err = ("init phase %s failed:\n%s"):format(phase, out) break end
    end
    PIN = "sha256:" .. t.must("openssl x509 -in " .. t.q(A .. "/etc/kubernetes/pki/ca.crt")
      .. " -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum"):match("^(%x+)")
  end
  if not start_err then
    B_PORT, B_ADDR = t.free_port(), free_address("127.0.0.2")
    local d = t.tmpdir()
    local t0 = os.time()
    start_join(d, join_cmd(B, "cp2", B_ADDR, B_PORT) .. " -v")
    cpB, start_err = start_node(B, d, B_ADDR, "cp2")
    join_rc = wait_rc(d, 300)
    join_secs = os.time() - t0
    join_out = file(d .. "/out")
  end
end

local function kubectl(args) return t.must(cpA.kubectl .. " " .. args) end
local function kjson(args) return json.decode(kubectl(args .. " -o json")) end
local function server_of(conf) return (t.read(conf):match("\n%s*server: (%S+)")) end
local function mode(p) return (t.must("stat -c %a " .. t.q(p)):gsub("%s+$", "")) end

-- `etcdctl member list` against A's etcd, with A's etcd CA and healthcheck-client certificate
local function members()
  local pki = A .. "/etc/kubernetes/pki/etcd/"
  local out = t.must(("ETCDCTL_API=3 %s --endpoints=https://127.0.0.1:%d --cacert=%s --cert=%s --key=%s "
    .. "--dial-timeout=5s --command-timeout=15s member list -w json"):format(ETCDCTL, cpA.etcd_port, t.q(pki .. "ca.crt"),
    t.q(pki .. "healthcheck-client.crt"), t.q(pki .. "healthcheck-client.key")))
  return json.decode(out).members, out
end
local function by_peer(list, url)
  local found = {}
  for _, m in ipairs(list) do
    for _, p in ipairs(m.peerURLs or {}) do if p == url then found[#found + 1] = m end end
  end
  return found
end

TestE2EJoinCP = {}
function TestE2EJoinCP:setUp()
  if skip then lu.skip(skip) end
  if start_err then error(start_err .. (cpA and ("\n" .. cpA:tail(10)) or "")) end
end

function TestE2EJoinCP:test_1_join_exits_0()
  lu.assertEquals(join_rc, 0, ("join output:\n%s\n%s"):format(join_out, cpB:tail(10)))
  lu.assertStrContains(join_out, "This node has joined the cluster as cp2 (control-plane)")
  lu.assertNotStrContains(join_out, TOKEN:match("%.(.*)$"))
  print(("\n  control-plane join of cp2: %d s"):format(join_secs))
end

-- two voting members, both started; cp2's URLs are 127.0.0.2's
function TestE2EJoinCP:test_2_etcd_members()
  local list, raw = members()
  lu.assertEquals(#list, 2, raw)
  for _, m in ipairs(list) do
    lu.assertTrue(type(m.name) == "string" and m.name ~= "", "a member has not started: " .. raw)
    lu.assertNotEquals(m.isLearner, true, "a learner: " .. raw)
  end
  local cp2 = by_peer(list, "https://" .. B_ADDR .. ":2380")
  lu.assertEquals(#cp2, 1, raw)
  lu.assertEquals(cp2[1].name, "cp2")
  lu.assertEquals(cp2[1].clientURLs, { "https://" .. B_ADDR .. ":2379" })
  lu.assertEquals(#by_peer(list, ("https://127.0.0.1:%d"):format(cpA.ports[2380])), 1, raw)
end

-- B's kubeconfigs name B's own API server (no controlPlaneEndpoint), which answers
function TestE2EJoinCP:test_3_kubeconfigs_name_own_api_server()
  local own = ("https://%s:%d"):format(B_ADDR, B_PORT)
  for _, n in ipairs({ "admin", "controller-manager", "scheduler", "kubelet" }) do
    lu.assertEquals(server_of(B .. "/etc/kubernetes/" .. n .. ".conf"), own, n .. ".conf")
    lu.assertEquals(mode(B .. "/etc/kubernetes/" .. n .. ".conf"), "600", n .. ".conf")
  end
  local out = t.must(("%s --kubeconfig %s get nodes -o name"):format(t.q(controlplane.bin_dir() .. "/kubectl"),
    t.q(B .. "/etc/kubernetes/admin.conf")))
  lu.assertStrContains(out, "node/cp2")
  lu.assertStrContains(out, "node/" .. cpA.node_name)
  -- the second API server is a real one: --bind-address and --advertise-address are B's address
  lu.assertEquals(controlplane.flag(cpB.commands["kube-apiserver"].args, "bind-address"), B_ADDR)
  lu.assertEquals(controlplane.flag(cpB.commands["kube-apiserver"].args, "advertise-address"), B_ADDR)
end

local SHARED = { "ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key" }
local LEAVES = { "apiserver", "apiserver-kubelet-client", "apiserver-etcd-client", "front-proxy-client", "etcd/server",
                 "etcd/peer", "etcd/healthcheck-client" }

function TestE2EJoinCP:test_4_certificates()
  local pa, pb = A .. "/etc/kubernetes/pki/", B .. "/etc/kubernetes/pki/"
  local san = t.must("openssl x509 -noout -ext subjectAltName -in " .. t.q(pb .. "apiserver.crt"))
  lu.assertStrContains(san, "IP Address:" .. B_ADDR)
  lu.assertStrContains(san, "DNS:cp2")
  lu.assertNotStrContains(san, "DNS:" .. cpA.node_name .. ",")
  local esan = t.must("openssl x509 -noout -ext subjectAltName -in " .. t.q(pb .. "etcd/server.crt"))
  lu.assertStrContains(esan, "IP Address:" .. B_ADDR)
  lu.assertStrContains(esan, "DNS:cp2")
  -- the cluster's CAs and service-account keys, as download-certs wrote them: kubeadm's
  -- writeCertOrKey (since v1.22, kubernetes#103313) writes private keys 0600, certificates and
  -- the public sa.pub 0644
  for _, f in ipairs(SHARED) do
    lu.assertEquals(t.read(pb .. f), t.read(pa .. f), f .. " differs from A's")
    lu.assertEquals(mode(pb .. f), f:match("%.key$") and "600" or "644", f)
  end
  -- this node's own leaves: signed by the same CAs, not copies of A's
  for _, l in ipairs(LEAVES) do
    lu.assertNotEquals(t.read(pb .. l .. ".crt"), t.read(pa .. l .. ".crt"), l .. ".crt is A's")
    lu.assertNotEquals(t.read(pb .. l .. ".key"), t.read(pa .. l .. ".key"), l .. ".key is A's")
    local ca = (l:match("^etcd/") or l == "apiserver-etcd-client") and "etcd/ca.crt"
      or (l == "front-proxy-client" and "front-proxy-ca.crt" or "ca.crt")
    lu.assertStrContains(t.must(("openssl verify -CAfile %s %s"):format(t.q(pa .. ca), t.q(pb .. l .. ".crt"))), ": OK")
    lu.assertEquals(mode(pb .. l .. ".crt"), "644", l)
    lu.assertEquals(mode(pb .. l .. ".key"), "600", l)
  end
end

function TestE2EJoinCP:test_5_node_marked_control_plane()
  local n = kjson("get node cp2")
  lu.assertNotNil((n.metadata.labels or {})["node-role.kubernetes.io/control-plane"], json.encode(n.metadata.labels))
  local found = false
  for _, taint in ipairs(n.spec.taints or {}) do
    if taint.key == "node-role.kubernetes.io/control-plane" and taint.effect == "NoSchedule" then found = true end
  end
  lu.assertTrue(found, "taints: " .. json.encode(n.spec.taints or {}))
  -- the mirror Pods of both nodes, through which the join found etcd
  local pods = {}
  for _, p in ipairs(kjson("-n kube-system get pods -l component=etcd").items) do pods[p.metadata.name] = p end
  lu.assertNotNil(pods["etcd-cp2"])
  lu.assertEquals(pods["etcd-cp2"].metadata.annotations["kubeadm.kubernetes.io/etcd.advertise-client-urls"], "https://" .. B_ADDR .. ":2379")
end

-- the same join again: exit 0, no new member, no file changed
function TestE2EJoinCP:test_6_rerun_changes_nothing()
  lu.assertEquals(join_rc, 0, "the first join failed")
  local hash = t.tree_hash(B .. "/etc/kubernetes") .. t.tree_hash(B .. "/var/lib/kubelet")
  local ok, out, code = t.sh("timeout 240 " .. join_cmd(B, "cp2", B_ADDR, B_PORT) .. " </dev/null")
  lu.assertTrue(ok, ("exit %s:\n%s\n%s"):format(tostring(code), out, cpB:tail(10)))
  lu.assertStrContains(out, "This node has joined the cluster as cp2 (control-plane)")
  local list, raw = members()
  lu.assertEquals(#list, 2, raw)
  lu.assertEquals(t.tree_hash(B .. "/etc/kubernetes") .. t.tree_hash(B .. "/var/lib/kubelet"), hash, out)
end

-- a join that fails on a fresh root: exit != 0, one error line with all of words, nothing written
local function bad(key, words)
  local C = t.tmpdir()
  local before = t.tree_hash(C)
  local ok, out, code = t.sh("timeout 120 " .. join_cmd(C, "cp9", "127.0.0.5", t.free_port(), key) .. " </dev/null")
  lu.assertFalse(ok, out)
  lu.assertNotEquals(code, 0, out)
  local errs = {}
  for line in out:gmatch("[^\n]+") do
    if line:find("^error:") then errs[#errs + 1] = line end
  end
  lu.assertEquals(#errs, 1, out)
  for _, w in ipairs(words) do
    if type(w) == "table" then
      local any = false
      for _, alt in ipairs(w) do if errs[1]:find(alt, 1, true) then any = true end end
      lu.assertTrue(any, ("the error line names none of %s:\n%s"):format(table.concat(w, " / "), out))
    else
      lu.assertStrContains(errs[1], w)
    end
  end
  lu.assertEquals(t.must("cd " .. t.q(C) .. " && find . ! -type d"), "", "files written:\n" .. out)
  lu.assertEquals(t.tree_hash(C), before, "something was created under the root:\n" .. out)
  return errs[1]
end

function TestE2EJoinCP:test_7_wrong_certificate_key()
  bad(WRONG_KEY, { "--certificate-key", { "not the one", "wrong", "decrypt" } })
end

-- SIGKILL during a control-plane join of cp3 (127.0.0.4), at a random moment up to the wait for
-- its etcd member (which cannot start: no harness runs for cp3 yet); then the same join again, and
-- cp3's harness. A member added for cp3's peer URL before the kill is reused, not added again.
local CP3 -- { root =, addr = } of the node test_8 joins, for the reset test
function TestE2EJoinCP:test_8_sigkill_then_rerun()
  lu.assertEquals(join_rc, 0, "the first join failed")
  local C3, d1, d2 = t.tmpdir(), t.tmpdir(), t.tmpdir()
  local addr = free_address("127.0.0.4")
  CP3 = { root = C3, addr = addr }
  local port, peer = t.free_port(), "https://" .. addr .. ":2380"
  t.must(("(sh -c 'echo $$ >%s/pid; exec %s' >%s/out 2>&1; echo $? >%s/rc) </dev/null >/dev/null 2>&1 &"):format(
    d1, join_cmd(C3, "cp3", addr, port):gsub("'", "'\\''"), d1, d1))
  local pid
  for _ = 1, 50 do
    pid = file(d1 .. "/pid"):match("%d+")
    if pid then break end
    os.execute("sleep 0.1")
  end
  lu.assertNotNil(pid, "no pid")
  -- up to about the time the join takes to reach the wait for its member (2-3 s here); later is
  -- the same moment. KBOOT_E2E_KILL_DELAY picks one (to reproduce a failure).
  local delay = tonumber(os.getenv("KBOOT_E2E_KILL_DELAY") or "") or math.random() * 4
  local waited = 0
  while waited < delay do
    if file(d1 .. "/out"):find("Waiting for etcd member", 1, true) then break end
    if read_rc(d1) then break end
    os.execute("sleep 0.1")
    waited = waited + 0.1
  end
  os.execute("kill -9 " .. pid .. " 2>/dev/null")
  lu.assertNotNil(wait_rc(d1, 10), "the killed join did not exit")
  local first = file(d1 .. "/out")
  lu.assertNotEquals(read_rc(d1), 0, "the join finished before it was killed (no etcd runs for cp3):\n" .. first)
  local last = "(none)"
  for line in first:gmatch("[^\n]+") do if line:find("^%[") then last = line end end
  local added = #by_peer((members()), peer)
  print(("\n  cp3's join killed after %.1f s (delay %.2f), %d member for its peer URL; its last line: %s"):format(
    waited, delay, added, last))
  lu.assertTrue(added <= 1, "two members for " .. peer)

  start_join(d2, join_cmd(C3, "cp3", addr, port) .. " -v")
  local cp3, err = start_node(C3, d2, addr, "cp3")
  if cp3 then others[#others + 1] = cp3 end
  lu.assertNotNil(cp3, err)
  local rc = wait_rc(d2, 300)
  local out = file(d2 .. "/out")
  lu.assertEquals(rc, 0, out .. "\n" .. cp3:tail(10))
  if added == 1 then lu.assertStrContains(out, "This node is already etcd member") end
  local list, raw = members()
  lu.assertEquals(#list, 3, raw)
  local mine = by_peer(list, peer)
  lu.assertEquals(#mine, 1, raw)
  lu.assertEquals(mine[1].name, "cp3", raw)
  lu.assertNotEquals(mine[1].isLearner, true, raw)
end

-- Last: the certificates' Secret deleted, the join names the command that uploads them again
function TestE2EJoinCP:test_9_no_kubeadm_certs_secret()
  kubectl("-n kube-system delete secret kubeadm-certs")
  bad(KEY, { "kboot init phase upload-certs --upload-certs" })
end

-- After the rest: `kboot reset` on the joined nodes, one after the other, removes each one's etcd
-- member through its own etcd (3 members, then 2, then 1: init's node), and the cluster still serves
function TestE2EJoinCP:test_9z_reset_joined_nodes()
  lu.assertEquals(join_rc, 0, "the first join failed")
  lu.assertNotNil(CP3, "test_8 did not run")
  local list, raw = members()
  lu.assertEquals(#list, 3, raw)
  for i, n in ipairs({ { root = CP3.root, addr = CP3.addr, name = "cp3" }, { root = B, addr = B_ADDR, name = "cp2" } }) do
    local ok, out, code = t.kboot(("reset --force --root %s"):format(t.q(n.root)))
    lu.assertTrue(ok, ("reset of %s exited %s:\n%s"):format(n.name, tostring(code), out))
    list, raw = members()
    lu.assertEquals(#list, 3 - i, raw)
    lu.assertEquals(#by_peer(list, "https://" .. n.addr .. ":2380"), 0, raw)
    lu.assertEquals(t.must("ls -A " .. t.q(n.root .. "/etc/kubernetes/pki")), "", n.name .. "'s certificates are left")
    lu.assertFalse(t.sh("test -e " .. t.q(n.root .. "/etc/kubernetes/admin.conf")), n.name)
    lu.assertStrContains(out, "kubectl delete node " .. n.name)
  end
  lu.assertEquals(list[1].name, cpA.node_name, raw)
  lu.assertStrContains(kubectl("get nodes"), cpA.node_name)
end

local rc = lu.LuaUnit.run("-v")
for i = #others, 1, -1 do others[i]:stop() end
if cpB then cpB:stop() end
if cpA then cpA:stop() end
t.cleanup()
os.exit(rc)

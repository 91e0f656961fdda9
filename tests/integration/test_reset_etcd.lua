-- `kboot reset`'s remove-etcd-member against real etcd 3.4 (Debian's /usr/bin/etcd): a sandbox node
-- made by `kboot init --offline` whose etcd member is a real process started from its manifest's
-- URLs and data directory with its kboot-made certificates, beside a first member "one". Every
-- effect is checked with the real etcdctl: the member removed (one member left), the only member
-- kept, and, with this node's etcd down, the exact `etcdctl member remove <hex>` the report prints
-- (the id read from the member's WAL) removing it, while the rest of the cleanup still ran.
local lu = require("luaunit")
local t = require("testlib")
local certs = require("http_certs")

local ETCD, ETCDCTL = "/usr/bin/etcd", "/usr/bin/etcdctl"
local have_etcd = t.sh("test -x " .. ETCD .. " && test -x " .. ETCDCTL)

local D, R, C     -- the test dir, the node's root, copies of its etcd certificates
local one, mine   -- the first member, this node's: { pid, url, peer }
local ports = {}

local function port()
  while true do
    local p = t.free_port()
    if not ports[p] then ports[p] = true return p end
  end
end

local function config(dir, cport, pport)
  local f = dir .. "/kubeadm.yaml"
  t.write(f, ([[
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
nodeRegistration:
  name: node-b
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
encryptionAlgorithm: ECDSA-P256
etcd:
  local:
    extraArgs:
    - { name: listen-client-urls, value: "https://127.0.0.1:%d" }
    - { name: advertise-client-urls, value: "https://127.0.0.1:%d" }
    - { name: listen-peer-urls, value: "https://127.0.0.1:%d" }
    - { name: initial-advertise-peer-urls, value: "https://127.0.0.1:%d" }
]]):format(cport, cport, pport, pport))
  return f
end

local function etcdctl(endpoint, args)
  return t.must(("%s --endpoints=%s --cacert=%s --cert=%s --key=%s --dial-timeout=5s --command-timeout=15s %s"):format(
    ETCDCTL, t.q(endpoint), t.q(C .. "/ca.crt"), t.q(C .. "/healthcheck-client.crt"), t.q(C .. "/healthcheck-client.key"), args))
end

-- { { hex=, name=, peers=, learner= }, ... } from `etcdctl member list`
local function members(endpoint)
  local out = {}
  for line in etcdctl(endpoint or one.url, "member list -w simple"):gmatch("[^\n]+") do
    local f = {}
    for x in (line .. ","):gmatch("%s*([^,]*),") do f[#f + 1] = x end
    out[#out + 1] = { hex = f[1], status = f[2], name = f[3], peers = f[4], learner = f[6] == "true" }
  end
  return out
end

local function spawn(name, url, peer, data, initial, state)
  local pid = certs.spawn(table.concat({
    ETCD, "--name=" .. name, "--data-dir=" .. t.q(data),
    "--listen-client-urls=" .. url, "--advertise-client-urls=" .. url,
    "--listen-peer-urls=" .. peer, "--initial-advertise-peer-urls=" .. peer,
    "--initial-cluster=" .. t.q(initial), state and ("--initial-cluster-state=" .. state) or "",
    "--cert-file=" .. t.q(C .. "/server.crt"), "--key-file=" .. t.q(C .. "/server.key"),
    "--client-cert-auth=true", "--trusted-ca-file=" .. t.q(C .. "/ca.crt"),
    "--peer-cert-file=" .. t.q(C .. "/peer.crt"), "--peer-key-file=" .. t.q(C .. "/peer.key"),
    "--peer-client-cert-auth=true", "--peer-trusted-ca-file=" .. t.q(C .. "/ca.crt"),
  }, " "), D .. "/" .. name .. ".log")
  return { pid = pid, url = url, peer = peer, name = name }
end

local function wait_healthy(m)
  for _ = 1, 200 do
    if t.sh(("%s --endpoints=%s --cacert=%s --cert=%s --key=%s endpoint health"):format(ETCDCTL, m.url,
        t.q(C .. "/ca.crt"), t.q(C .. "/healthcheck-client.crt"), t.q(C .. "/healthcheck-client.key"))) then return end
    if not certs.alive(m.pid) then break end
    os.execute("sleep 0.1")
  end
  error(m.name .. " did not become healthy:\n" .. t.read(D .. "/" .. m.name .. ".log"))
end

-- This node (sandbox R, its etcd on the manifest's URLs with the manifest's data directory), and
-- with two = true a first member "one" it joined as a learner, then was promoted in (unless
-- learner = true: a join that stopped before its promotion).
local function node(two, learner)
  D = t.tmpdir()
  R, C = D .. "/root", D .. "/certs"
  t.must(("mkdir -p %s %s"):format(t.q(R), t.q(C)))
  local cport, pport = port(), port()
  local ok, out = t.kboot(("init --root %s --config %s --skip-phases=preflight --offline 2>&1"):format(t.q(R), t.q(config(D, cport, pport))))
  lu.assertTrue(ok, out)
  -- etcd reloads its certificate files on every handshake, and reset empties the node's: copies
  t.must(("cp %s/etc/kubernetes/pki/etcd/*.crt %s/etc/kubernetes/pki/etcd/*.key %s/"):format(t.q(R), t.q(R), t.q(C)))
  local url, peer = ("https://127.0.0.1:%d"):format(cport), ("https://127.0.0.1:%d"):format(pport)
  local data = R .. "/var/lib/etcd"
  if not two then
    mine = spawn("node-b", url, peer, data, "node-b=" .. peer)
    wait_healthy(mine)
    return
  end
  local c1, p1 = port(), port()
  one = spawn("one", ("https://127.0.0.1:%d"):format(c1), ("https://127.0.0.1:%d"):format(p1), D .. "/one.data",
    ("one=https://127.0.0.1:%d"):format(p1))
  wait_healthy(one)
  etcdctl(one.url, "member add node-b --learner --peer-urls=" .. peer)
  mine = spawn("node-b", url, peer, data, ("one=%s,node-b=%s"):format(one.peer, peer), "existing")
  local hex
  for _, m in ipairs(members()) do if m.peers == peer then hex = m.hex end end
  if learner then
    -- a learner answers no health check: started is when the others know its name
    for _ = 1, 200 do
      for _, m in ipairs(members()) do if m.hex == hex and m.name == "node-b" then return hex end end
      os.execute("sleep 0.1")
    end
    error("the learner node-b did not start:\n" .. t.read(D .. "/node-b.log"))
  end
  for _ = 1, 100 do
    if t.sh(("%s --endpoints=%s --cacert=%s --cert=%s --key=%s member promote %s"):format(ETCDCTL, one.url,
        t.q(C .. "/ca.crt"), t.q(C .. "/healthcheck-client.crt"), t.q(C .. "/healthcheck-client.key"), hex)) then break end
    os.execute("sleep 0.2")
  end
  local list = members()
  lu.assertEquals(#list, 2)
  for _, m in ipairs(list) do lu.assertFalse(m.learner, m.name .. " is still a learner") end
  wait_healthy(mine)
  return hex
end

local function reset(args)
  return t.kboot(("reset --root %s -f %s </dev/null 2>&1"):format(t.q(R), args or ""))
end

-- the node's files are gone, whatever the etcd part did
local function assert_cleaned()
  for _, d in ipairs({ "/etc/kubernetes/pki", "/etc/kubernetes/manifests", "/var/lib/etcd", "/var/lib/kubelet" }) do
    lu.assertEquals(t.must("ls -A " .. t.q(R .. d)), "", d .. " is not empty")
  end
  lu.assertFalse(t.sh("test -e " .. t.q(R .. "/etc/kubernetes/admin.conf")))
end

TestResetEtcd = {}
function TestResetEtcd:setUp()
  if not have_etcd then lu.skip("no etcd/etcdctl") end
  one, mine = nil, nil
end
function TestResetEtcd:tearDown()
  if mine then certs.kill(mine.pid) end
  if one then certs.kill(one.pid) end
  t.cleanup()
end

function TestResetEtcd:test_removes_this_nodes_member_of_two()
  local hex = node(true)
  local ok, out = reset()
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, ("Removing etcd member node-b (%s"):format(hex))
  local list = members()
  lu.assertEquals(#list, 1, out)
  lu.assertEquals(list[1].name, "one")
  assert_cleaned()
  -- a removed member stops itself
  for _ = 1, 100 do
    if not certs.alive(mine.pid) then break end
    os.execute("sleep 0.1")
  end
  lu.assertFalse(certs.alive(mine.pid), "node-b's etcd still runs after its removal")
end

function TestResetEtcd:test_the_only_member_is_kept()
  node(false)
  local ok, out = reset()
  lu.assertTrue(ok, out)
  lu.assertStrMatches(out, ".*%[remove%-etcd%-member%] skipped: this node's member node%-b %(%x+%) is the only one.*")
  lu.assertNotStrContains(out, "member remove")
  assert_cleaned()
end

-- This node's etcd is down. (A learner: two voters with one down have no quorum, and etcd then
-- removes nothing for anyone.)
function TestResetEtcd:test_unreachable_etcd_reported_with_the_exact_command_the_rest_done()
  local hex = node(true, true)
  certs.kill(mine.pid)
  local ok, out, code = reset()
  lu.assertFalse(ok, out)
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, "error execution phase remove-etcd-member: cannot remove this node's etcd member (peer URL " .. mine.peer)
  local cmd = out:match("\n%s*(etcdctl [^\n]* member remove %x+)\n")
  lu.assertNotNil(cmd, out)
  lu.assertStrContains(cmd, "member remove " .. hex) -- the id from the WAL: the one etcd gave node-b
  lu.assertStrContains(cmd, "--cert=" .. R .. "/etc/kubernetes/pki/etcd/healthcheck-client.crt")
  lu.assertStrContains(cmd, "--endpoints=https://127.0.0.1:2379")
  assert_cleaned()
  lu.assertEquals(#members(), 2)
  -- what the admin does on another control-plane node: the same command, its own endpoint and certificates
  cmd = cmd:gsub("%-%-endpoints=%S+", "--endpoints=" .. one.url):gsub("%-%-cacert=%S+", "--cacert=" .. C .. "/ca.crt")
    :gsub("%-%-cert=%S+", "--cert=" .. C .. "/healthcheck-client.crt"):gsub("%-%-key=%S+", "--key=" .. C .. "/healthcheck-client.key")
  t.must(cmd:gsub("^etcdctl", ETCDCTL))
  local list = members()
  lu.assertEquals(#list, 1)
  lu.assertEquals(list[1].name, "one")
end

os.exit(lu.LuaUnit.run("-v"))

-- kboot.etcd_members against real etcd 3.4 (Debian's /usr/bin/etcd) with mutual TLS: a control-plane
-- join's etcd steps as kubeadm does them (add as learner, start the member with the initial cluster,
-- promote when in sync) and reset's remove. Every effect is checked with the real etcdctl, not
-- with what etcd_members says about itself.
local lu = require("luaunit")
local t = require("testlib")
local certs = require("http_certs")
local em = require("kboot.etcd_members")
local time = require("kboot.time")

local ETCD, ETCDCTL = "/usr/bin/etcd", "/usr/bin/etcdctl"

local dir = t.tmpdir()
local E, O
local one = {}   -- the first member: { pid, url, peer }
local two = {}   -- the joining member

local function ports()
  local c, p = t.free_port(), t.free_port()
  while p == c do p = t.free_port() end
  return c, p
end

local function spawn_etcd(name, host, cport, pport, initial_cluster, state)
  local url, peer = ("https://%s:%d"):format(host, cport), ("https://%s:%d"):format(host, pport)
  local p = E.paths
  local pid = certs.spawn(table.concat({
    ETCD, "--name=" .. name, "--data-dir=" .. t.q(dir .. "/" .. name .. ".data"),
    "--listen-client-urls=" .. url, "--advertise-client-urls=" .. url,
    "--listen-peer-urls=" .. peer, "--initial-advertise-peer-urls=" .. peer,
    "--initial-cluster=" .. t.q(initial_cluster), state and ("--initial-cluster-state=" .. state) or "",
    "--cert-file=" .. t.q(p.server_crt), "--key-file=" .. t.q(p.server_key),
    "--client-cert-auth=true", "--trusted-ca-file=" .. t.q(p.ca),
    "--peer-cert-file=" .. t.q(p.server_crt), "--peer-key-file=" .. t.q(p.server_key),
    "--peer-client-cert-auth=true", "--peer-trusted-ca-file=" .. t.q(p.ca),
    "--snapshot-count=10000",
  }, " "), dir .. "/" .. name .. ".log")
  return { pid = pid, url = url, peer = peer, name = name }
end

-- etcdctl with the client certificate; returns its output or fails the test.
local function etcdctl(endpoint, args)
  return t.must(("ETCDCTL_API=3 %s --endpoints=%s --cacert=%s --cert=%s --key=%s --dial-timeout=5s --command-timeout=15s %s")
    :format(ETCDCTL, t.q(endpoint), t.q(E.paths.ca), t.q(E.paths.client_crt), t.q(E.paths.client_key), args))
end

-- `etcdctl member list` (simple format: id, status, name, peer urls, client urls, is learner) as
-- a list in etcd's order of { hex=, status=, name=, peers=, learner=bool }.
local function ctl_members(endpoint)
  local out = {}
  for line in etcdctl(endpoint or one.url, "member list -w simple"):gmatch("[^\n]+") do
    local f = {}
    for x in (line .. ","):gmatch("%s*([^,]*),") do f[#f + 1] = x end
    lu.assertEquals(#f, 6, "etcdctl line: " .. line)
    out[#out + 1] = { hex = f[1], status = f[2], name = f[3], peers = f[4], learner = f[6] == "true" }
  end
  return out
end

local function ctl_by_hex(list, hex)
  for _, m in ipairs(list) do if m.hex == hex then return m end end
end

local function client(extra)
  local o = { urls = { one.url }, ca_pem = E.ca, cert_pem = E.client_crt, key_pem = E.client_key }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(em.client(o))
end

local function start()
  E = certs.make_kboot(dir, "etcd", "kube-apiserver-etcd-client", { "127.0.0.1", "127.0.0.2" })
  O = certs.make_kboot(dir, "other", "intruder", { "127.0.0.1", "127.0.0.2" })
  local cport, pport = ports()
  one = spawn_etcd("one", "127.0.0.1", cport, pport, ("one=https://127.0.0.1:%d"):format(pport))
  for _ = 1, 150 do
    if t.sh(("ETCDCTL_API=3 %s --endpoints=%s --cacert=%s --cert=%s --key=%s endpoint health"):format(ETCDCTL,
        one.url, t.q(E.paths.ca), t.q(E.paths.client_crt), t.q(E.paths.client_key))) then return end
    if not certs.alive(one.pid) then break end
    os.execute("sleep 0.2")
  end
  error("etcd did not become healthy:\n" .. t.read(dir .. "/one.log"))
end

local started, start_err = pcall(start)

TestEtcdMembers = {}
function TestEtcdMembers:setUp()
  if not t.sh("test -x " .. ETCD .. " && test -x " .. ETCDCTL) then lu.skip("no etcd/etcdctl") end
  if not started then error(start_err) end
end

-- Back to the one-member cluster, whatever a test left: the others removed first (a voter that
-- was killed first would take the quorum with it), with etcdctl; etcd refuses to remove a voter
-- connected for less than 5 s, so that is retried.
function TestEtcdMembers:tearDown()
  if started then
    for _, m in ipairs(ctl_members()) do
      for _ = 1, 40 do
        if m.name == "one" or t.sh(("ETCDCTL_API=3 %s --endpoints=%s --cacert=%s --cert=%s --key=%s member remove %s"):format(
            ETCDCTL, one.url, t.q(E.paths.ca), t.q(E.paths.client_crt), t.q(E.paths.client_key), m.hex)) then break end
        os.execute("sleep 0.5")
      end
    end
  end
  if two.pid then certs.kill(two.pid); two = {} end
end

function TestEtcdMembers:test_list_matches_etcdctl()
  local c = client()
  local list = assert(em.list(c))
  local ctl = ctl_members()
  lu.assertEquals(#list, 1)
  lu.assertEquals(#ctl, 1)
  lu.assertEquals(em.hex_id(list[1].id), ctl[1].hex)
  lu.assertStrMatches(list[1].id, "%d+")
  lu.assertEquals(list[1].name, "one")
  lu.assertEquals(list[1].peer_urls, { one.peer })
  lu.assertEquals(list[1].client_urls, { one.url })
  lu.assertFalse(list[1].learner)
  c:close()
end

function TestEtcdMembers:test_join_as_learner_promote_remove()
  local c = client()
  local cport, pport = ports()
  local peer2 = ("https://127.0.0.2:%d"):format(pport)

  -- add: a learner that has not started, with no name yet
  local m, list, existed = em.add_learner(c, "two", peer2)
  lu.assertNotNil(m, list)
  lu.assertFalse(existed)
  lu.assertStrMatches(m.id, "%d+")
  lu.assertTrue(m.learner)
  lu.assertEquals(m.peer_urls, { peer2 })
  lu.assertEquals(#list, 2)
  local ctl = ctl_members()
  lu.assertEquals(#ctl, 2)
  local row = ctl_by_hex(ctl, em.hex_id(m.id))
  lu.assertNotNil(row, "etcdctl does not show the added member " .. em.hex_id(m.id))
  lu.assertEquals(row.status, "unstarted")
  lu.assertEquals(row.peers, peer2)
  lu.assertTrue(row.learner)

  -- a re-run (after a kill): the same member, nothing added
  local again, list2, existed2 = em.add_learner(c, "two", peer2)
  lu.assertNotNil(again, list2)
  lu.assertTrue(existed2)
  lu.assertEquals(again.id, m.id)
  lu.assertEquals(#ctl_members(), 2)

  -- --initial-cluster in etcd's member order (etcdctl's), the new member under the name given
  local ic = assert(em.initial_cluster(list2, "two", peer2))
  local want = {}
  for _, r in ipairs(ctl_members()) do
    want[#want + 1] = r.name == "one" and ("one=" .. one.peer) or ("two=" .. peer2)
  end
  lu.assertEquals(ic, table.concat(want, ","))
  lu.assertEquals(ic, assert(em.initial_cluster(list, "two", peer2)))

  -- the second etcd joins the existing cluster with it
  two = spawn_etcd("two", "127.0.0.2", cport, pport, ic, "existing")
  local t0 = time.now()
  local ok, already = em.promote(c, m.id, 60)
  lu.assertTrue(ok, tostring(already))
  lu.assertFalse(already)
  lu.assertTrue(time.now() - t0 < 60)
  ctl = ctl_members()
  lu.assertEquals(#ctl, 2)
  for _, r in ipairs(ctl) do
    lu.assertEquals(r.status, "started", r.name)
    lu.assertFalse(r.learner, r.name .. " is still a learner")
  end
  lu.assertEquals(ctl_by_hex(ctl, em.hex_id(m.id)).name, "two")
  -- a voter takes writes (a learner refuses them), and the other member sees them
  etcdctl(two.url, "put /kboot/joined yes")
  lu.assertEquals(etcdctl(one.url, "get --print-value-only /kboot/joined"), "yes\n")

  -- promote again: success, already done
  ok, already = em.promote(c, m.id, 5)
  lu.assertTrue(ok, tostring(already))
  lu.assertTrue(already)

  -- either endpoint serves the list, the new one first
  local both = client({ urls = { two.url, one.url } })
  list = assert(em.list(both))
  lu.assertEquals(#list, 2)
  for _, x in ipairs(list) do lu.assertFalse(x.learner) end
  -- and a re-run of add_learner now finds the voter and adds nothing
  local _, _, existed3 = em.add_learner(both, "two", peer2)
  lu.assertTrue(existed3)
  lu.assertEquals(#ctl_members(), 2)
  both:close()

  -- reset: remove, then remove again
  local rok, removed = em.remove(c, m.id)
  lu.assertTrue(rok, tostring(removed))
  lu.assertTrue(removed)
  ctl = ctl_members()
  lu.assertEquals(#ctl, 1)
  lu.assertEquals(ctl[1].name, "one")
  rok, removed = em.remove(c, m.id)
  lu.assertTrue(rok, tostring(removed))
  lu.assertFalse(removed)
  lu.assertEquals(#ctl_members(), 1)
  c:close()
end

function TestEtcdMembers:test_promote_times_out_for_a_learner_that_never_starts()
  local c = client()
  local _, pport = ports()
  local m = assert(em.add_learner(c, "never", ("https://127.0.0.2:%d"):format(pport)))
  local t0 = time.now()
  local ok, err = em.promote(c, m.id, 1.5)
  local took = time.now() - t0
  lu.assertNil(ok)
  lu.assertEquals(err.op, "etcd")
  lu.assertTrue(err.timeout)
  lu.assertEquals(tostring(err), ("etcd learner %s was not promoted within 1.5s: last error: " ..
    "etcdserver: can only promote a learner member which is in sync with leader"):format(em.hex_id(m.id)))
  lu.assertTrue(took >= 1.5 and took < 6, "took " .. took)
  -- still a learner for etcdctl: nothing was promoted
  local row = ctl_by_hex(ctl_members(), em.hex_id(m.id))
  lu.assertTrue(row.learner)
  assert(em.remove(c, m.id))
  lu.assertEquals(#ctl_members(), 1)
end

function TestEtcdMembers:test_promote_unknown_id_is_an_error()
  local c = client()
  local ok, err = em.promote(c, "12345", 5)
  lu.assertNil(ok)
  lu.assertEquals(tostring(err), "etcd member 3039 not found; cannot promote it")
  lu.assertEquals(#ctl_members(), 1)
  -- and remove of it is nothing to do
  local rok, removed = em.remove(c, "12345")
  lu.assertTrue(rok)
  lu.assertFalse(removed)
  -- a promote of the voter itself: already a voter
  local list = assert(em.list(c))
  local pok, already = em.promote(c, list[1].id, 5)
  lu.assertTrue(pok)
  lu.assertTrue(already)
end

local function one_line(err)
  lu.assertEquals(err.op, "etcd")
  lu.assertNotStrContains(tostring(err), "\n")
end

function TestEtcdMembers:test_wrong_ca_is_one_clear_line()
  local c = client({ ca_pem = O.ca })
  local list, err = em.list(c)
  lu.assertNil(list)
  one_line(err)
  lu.assertStrContains(tostring(err), "etcd member list: POST " .. one.url .. "/v3/cluster/member/list: ")
  lu.assertStrContains(tostring(err), "TLS verification failed")
  lu.assertStrContains(tostring(err), "check the CA")
  -- nothing added through a client that cannot talk to etcd, and no waiting for a CA to change
  local t0 = time.now()
  local m, aerr = em.add_learner(c, "x", "https://127.0.0.2:2380")
  lu.assertNil(m)
  one_line(aerr)
  lu.assertStrContains(tostring(aerr), "check the CA")
  lu.assertTrue(time.now() - t0 < 10, "a TLS failure was retried")
  lu.assertEquals(#ctl_members(), 1)
end

function TestEtcdMembers:test_client_cert_of_other_ca_is_one_clear_line()
  local c = client({ cert_pem = O.client_crt, key_pem = O.client_key })
  local list, err = em.list(c)
  lu.assertNil(list)
  one_line(err)
  lu.assertStrContains(tostring(err), "etcd member list: POST " .. one.url .. "/v3/cluster/member/list: ")
  lu.assertStrContains(tostring(err), "client certificate")
  local t0 = time.now()
  local ok, perr = em.promote(c, "12345")
  lu.assertNil(ok)
  one_line(perr)
  lu.assertStrContains(tostring(perr), "client certificate")
  lu.assertTrue(time.now() - t0 < 10, "a refused client certificate was retried")
end

function TestEtcdMembers:test_unreachable_endpoint_is_one_clear_line_and_skipped()
  local dead = "https://127.0.0.1:" .. t.free_port()
  local c = client({ urls = { dead }, retries = 1, retry_deadline = 2, connect_timeout = 2 })
  local list, err = em.list(c)
  lu.assertNil(list)
  one_line(err)
  lu.assertStrContains(tostring(err), "etcd member list: POST " .. dead .. "/v3/cluster/member/list: ")
  lu.assertTrue(err.code ~= nil and err.code ~= 0)
  local ok, perr = em.promote(c, "12345", 1)
  lu.assertNil(ok)
  one_line(perr)
  lu.assertStrContains(tostring(perr), "was not promoted within 1s: last error: etcd member list: POST " .. dead)
  -- two endpoints, the first dead: the second answers
  local c2 = client({ urls = { dead, one.url }, retries = 0 })
  lu.assertEquals(#assert(em.list(c2)), 1)
  -- both dead: one line that says so
  local c3 = client({ urls = { dead, dead }, retries = 0 })
  local _, err3 = em.list(c3)
  one_line(err3)
  lu.assertStrContains(tostring(err3), "(no answer from any of 2 endpoints)")
end

local rc = lu.LuaUnit.run("-v")
if two.pid then certs.kill(two.pid) end
certs.kill(one.pid)
t.cleanup()
os.exit(rc)

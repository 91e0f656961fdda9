-- kboot.etcd_members without etcd: kubeadm's --initial-cluster for a joining member (util/etcd
-- addMember: etcd's member order kept, the joining member found by its peer URL and given the
-- joining node's name, an unnamed member named by its hex id, the first peer URL of each), the
-- uint64 ids, argument misuse; and the etcd component's command for join vs init.
local lu = require("luaunit")
local t = require("testlib")
local fixture = require("ctx_fixture")
local em = require("kboot.etcd_members")
local etcd = require("kboot.components.etcd")
local expected = dofile(os.getenv("KBOOT_SRC") .. "/tests/data/manifests/expected.lua")

local function m(id, name, peers, learner)
  return { id = id, name = name, peer_urls = peers, client_urls = {}, learner = learner or false }
end

TestInitialCluster = {}

function TestInitialCluster:test_etcd_order_kept_self_named()
  -- as etcd 3.4 answers a member add: sorted by id, the new learner without a name yet
  local list = {
    m("1988065562951357135", "", { "https://10.0.0.12:2380" }, true),
    m("6558560081272768184", "cp-a", { "https://10.0.0.10:2380" }),
    m("9000000000000000000", "cp-b", { "https://10.0.0.11:2380" }),
  }
  lu.assertEquals(em.initial_cluster(list, "cp-c", "https://10.0.0.12:2380"),
    "cp-c=https://10.0.0.12:2380,cp-a=https://10.0.0.10:2380,cp-b=https://10.0.0.11:2380")
  -- not sorted by name: the order given is the order written
  lu.assertEquals(em.initial_cluster({ list[3], list[1], list[2] }, "cp-c", "https://10.0.0.12:2380"),
    "cp-b=https://10.0.0.11:2380,cp-c=https://10.0.0.12:2380,cp-a=https://10.0.0.10:2380")
end

function TestInitialCluster:test_self_name_wins_over_etcd_name()
  -- a re-run after the member started: etcd knows a name, kubeadm still writes the one passed in
  local list = { m("5", "old-name", { "https://10.0.0.12:2380" }), m("6", "cp-a", { "https://10.0.0.10:2380" }) }
  lu.assertEquals(em.initial_cluster(list, "cp-c", "https://10.0.0.12:2380"),
    "cp-c=https://10.0.0.12:2380,cp-a=https://10.0.0.10:2380")
end

function TestInitialCluster:test_unnamed_other_member_is_named_by_hex_id()
  -- concurrent joins: another learner that has not started has no name: strconv.FormatUint(id, 16)
  local list = {
    m("18446744073709551615", "", { "https://10.0.0.13:2380" }, true),
    m("1988065562951357135", "", { "https://10.0.0.12:2380" }, true),
    m("255", "cp-a", { "https://10.0.0.10:2380", "https://10.1.0.10:2380" }),
  }
  lu.assertEquals(em.initial_cluster(list, "cp-c", "https://10.0.0.12:2380"),
    "ffffffffffffffff=https://10.0.0.13:2380,cp-c=https://10.0.0.12:2380,cp-a=https://10.0.0.10:2380")
end

function TestInitialCluster:test_self_missing_is_an_error()
  local s, err = em.initial_cluster({ m("6", "cp-a", { "https://10.0.0.10:2380" }) }, "cp-c", "https://10.0.0.12:2380")
  lu.assertNil(s)
  lu.assertEquals(err.op, "etcd")
  lu.assertStrContains(tostring(err), "no member with peer URL https://10.0.0.12:2380")
end

function TestInitialCluster:test_misuse_raises()
  lu.assertErrorMsgContains("self name expected", em.initial_cluster, {}, "", "https://x:2380")
  lu.assertErrorMsgContains("member list expected", em.initial_cluster, nil, "a", "https://x:2380")
end

TestIds = {}
function TestIds:test_hex_id_full_uint64()
  -- ids from a real etcd 3.4 member list; hex as Python's hex() gives it
  lu.assertEquals(em.hex_id("1988065562951357135"), "1b970718a5e712cf")
  lu.assertEquals(em.hex_id("6558560081272768184"), "5b04afa52a5206b8")
  lu.assertEquals(em.hex_id("18446744073709551615"), "ffffffffffffffff")
  lu.assertEquals(em.hex_id("9223372036854775808"), "8000000000000000")
  lu.assertEquals(em.hex_id("0"), "0")
  lu.assertEquals(em.hex_id(255), "ff")
end
function TestIds:test_bad_ids_raise()
  for _, bad in ipairs({ "18446744073709551616", "-1", "0x10", "", 1.5, {} }) do
    lu.assertErrorMsgContains("member id (decimal string) expected", em.hex_id, bad)
  end
  lu.assertErrorMsgContains("member id (decimal string) expected", em.remove, {}, "abc")
  lu.assertErrorMsgContains("member id (decimal string) expected", em.promote, {}, 2.5)
end

TestClientArgs = {}
function TestClientArgs:test_misuse_raises()
  lu.assertErrorMsgContains("urls", em.client, { ca_pem = "", cert_pem = "", key_pem = "" })
  lu.assertErrorMsgContains("https://host:port expected", em.client,
    { urls = { "https://10.0.0.1:2379/x" }, ca_pem = "", cert_pem = "", key_pem = "" })
  lu.assertErrorMsgContains("key_pem (PEM string) expected", em.client, { urls = "https://10.0.0.1:2379", ca_pem = "", cert_pem = "" })
end
function TestClientArgs:test_bad_pem_is_an_error()
  local c, err = em.client({ urls = "https://10.0.0.1:2379", ca_pem = "not a pem", cert_pem = "x", key_pem = "y" })
  lu.assertNil(c)
  lu.assertEquals(err.op, "etcd")
  lu.assertStrContains(tostring(err), "etcd client for https://10.0.0.1:2379: ")
end

-- The manifest command: init as before, join with the given cluster and state existing.
local function ctx()
  local c = fixture.new({ host = fixture.host({ hostname = "node-1", proxy_env = {}, systemd_resolved = false }) })
  c.cache.ca_extra_paths, c.cache.external_ca = {}, false
  return c
end

TestEtcdCommand = {}
function TestEtcdCommand:test_init_unchanged()
  local cmd = etcd.command(ctx())
  lu.assertEquals(cmd, expected["etcd"].command)
  for _, a in ipairs(cmd) do lu.assertNotStrContains(a, "initial-cluster-state") end
end

function TestEtcdCommand:test_join_uses_given_cluster_and_existing()
  local c = ctx()
  local ic = "node-0=https://10.0.0.9:2380,node-1=https://10.0.0.10:2380"
  c.cache.etcd_initial_cluster = ic
  local want = {}
  for _, a in ipairs(expected["etcd"].command) do
    if a:match("^%-%-initial%-cluster=") then
      want[#want + 1] = "--initial-cluster=" .. ic
      want[#want + 1] = "--initial-cluster-state=existing" -- sorted right after it, as kubeadm's
    else
      want[#want + 1] = a
    end
  end
  lu.assertEquals(etcd.command(c), want)
  -- the rendered manifest carries the same command
  local pod = require("kboot.yaml").decode(etcd.render(c).files[1].content)
  lu.assertEquals(pod.spec.containers[1].command, want)
end

function TestEtcdCommand:test_extra_args_still_override_on_join()
  local c = ctx()
  c.cluster.etcd["local"].extraArgs = { { name = "initial-cluster-state", value = "new" } }
  c.cache.etcd_initial_cluster = "node-1=https://10.0.0.10:2380"
  local n = 0
  for _, a in ipairs(etcd.command(c)) do
    if a:match("^%-%-initial%-cluster%-state=") then n = n + 1; lu.assertEquals(a, "--initial-cluster-state=new") end
  end
  lu.assertEquals(n, 1)
end

function TestEtcdCommand:test_bad_cache_value_raises()
  local c = ctx()
  c.cache.etcd_initial_cluster = {}
  lu.assertErrorMsgContains("etcd_initial_cluster must be a non-empty string", etcd.command, c)
end

local rc = lu.LuaUnit.run("-v")
t.cleanup()
os.exit(rc)

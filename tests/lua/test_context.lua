-- kboot.context: the host facts (default-route address, host name, proxy environment, CRI socket),
-- read from the real host and never under --root, and the ctx that context.new builds from a
-- loaded configuration (flow-neutral names, v1beta4 timeouts in seconds, a test's own host).
local lu = require("luaunit")
local t = require("testlib")
local context = require("kboot.context")
local config = require("kboot.config")

local ROUTE = [[
Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	0100A8C0	0003	0	0	100	00000000	0	0	0
eth0	0000A8C0	00000000	0001	0	0	100	00FFFFFF	0	0	0
docker0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
]]
local TRIE = [[
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     |-- 127.0.0.1
        /32 host LOCAL
     +-- 172.17.0.0/16 2 0 2
        |-- 172.17.0.1
           /32 host LOCAL
     +-- 192.168.0.0/24 2 0 2
        |-- 192.168.0.0
           /24 link UNICAST
        |-- 192.168.0.42
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
]]

local function reader(files) return function(p) return files[p] end end

TestHost = {}
function TestHost:test_default_route_interface_address()
  -- docker0's 172.17.0.1 is local too, but not on the default-route interface
  lu.assertEquals(context.default_route_address(reader({ ["/proc/net/route"] = ROUTE, ["/proc/net/fib_trie"] = TRIE })),
                  "192.168.0.42")
end
function TestHost:test_no_default_route()
  local ip, why = context.default_route_address(reader({
    ["/proc/net/route"] = ROUTE:gsub("eth0\t00000000[^\n]*\n", ""), ["/proc/net/fib_trie"] = TRIE }))
  lu.assertNil(ip)
  lu.assertStrContains(why, "no default route")
  ip, why = context.default_route_address(reader({}))
  lu.assertNil(ip)
  lu.assertStrContains(why, "cannot read /proc/net/route")
end
function TestHost:test_facts_from_a_source_are_read_once()
  local reads = {}
  local files = { ["/proc/net/route"] = ROUTE, ["/proc/net/fib_trie"] = TRIE,
                  ["/proc/sys/kernel/hostname"] = "  Node-A\n", ["/proc/self/environ"] = "PATH=/bin\0https_proxy=http://p:3128\0NO_PROXY=10.0.0.0/8\0HTTP_PROXY=\0" }
  local h = context.host_facts({ read = function(p) reads[p] = (reads[p] or 0) + 1 return files[p] end,
                                 is_socket = function(p) return p == "/var/run/crio/crio.sock" end })
  lu.assertEquals(reads, {}) -- nothing read before a fact is asked for
  lu.assertEquals(h.hostname, "node-a")
  lu.assertEquals(h.default_address, "192.168.0.42")
  lu.assertNil(h.default_address_err)
  lu.assertEquals(h.default_address, "192.168.0.42")
  lu.assertEquals(reads["/proc/net/route"], 1)
  -- kubeadm's GetProxyEnvVars: every *_proxy name (any case) with a value, sorted
  lu.assertEquals(h.proxy_env, { { name = "NO_PROXY", value = "10.0.0.0/8" }, { name = "https_proxy", value = "http://p:3128" } })
  lu.assertEquals(h.cri_socket, "unix:///var/run/crio/crio.sock")
  lu.assertFalse(h.systemd_resolved)
end
function TestHost:test_cri_socket_none_or_several()
  local s, why = context.cri_socket(function() return false end)
  lu.assertNil(s)
  lu.assertStrContains(why, "no known CRI socket")
  s, why = context.cri_socket(function() return true end)
  lu.assertNil(s)
  lu.assertStrContains(why, "multiple CRI endpoints")
  lu.assertStrContains(why, "nodeRegistration.criSocket")
end
function TestHost:test_real_host_not_the_root()
  -- the real facts, whatever --root is: iproute2 is the peer for the address
  local fs = require("kboot.fs")
  local root = t.tmpdir()
  assert(fs.set_root(root))
  local h = context.host_facts()
  local ip, why = h.default_address, h.default_address_err
  fs.set_root("/")
  lu.assertTrue(ip ~= nil and require("kboot.net").is_ip(ip) or type(why) == "string")
  local ok, dev = t.sh("ip -4 route show default | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p' | head -1")
  dev = dev and dev:gsub("%s+$", "")
  if not ok or dev == "" then lu.skip("no iproute2 or no default route here") end
  lu.assertNotNil(ip, why) -- the sandbox root has no /proc: a root-relative read would have failed
  lu.assertStrContains(t.must("ip -4 -o addr show dev " .. t.q(dev)), " inet " .. ip .. "/")
  lu.assertEquals(h.hostname, t.must("cat /proc/sys/kernel/hostname"):gsub("%s+$", ""):lower())
end

local G = "kubeadm.k8s.io/v1beta4"
local function parts(init, cluster)
  local init_doc = { apiVersion = G, kind = "InitConfiguration", nodeRegistration = { name = "cp-1" },
                     localAPIEndpoint = { advertiseAddress = "10.1.2.3", bindPort = 7443 } }
  for k, v in pairs(init or {}) do init_doc[k] = v end
  local cl = { apiVersion = G, kind = "ClusterConfiguration" }
  for k, v in pairs(cluster or {}) do cl[k] = v end
  return assert(config.load({ docs = { init_doc, cl }, host = { hostname = "h", default_address = "10.9.9.9" } }))
end

TestNew = {}
function TestNew:test_flow_neutral_names()
  local host = { hostname = "h", proxy_env = {} }
  local ctx = context.new({ flow = "init", parts = parts(), host = host, now = 1000 })
  lu.assertEquals(ctx.flow, "init")
  lu.assertEquals(ctx.role, "control-plane")
  lu.assertEquals(ctx.node.name, "cp-1")
  lu.assertEquals(ctx.endpoint, { address = "10.1.2.3", port = 7443 })
  lu.assertIs(ctx.host, host)
  lu.assertEquals(ctx.now, 1000)
  lu.assertEquals(ctx.cache, {})
  lu.assertEquals(ctx.cert_validity, 365 * 24 * 3600)
  lu.assertEquals(ctx.ca_validity, 3650 * 24 * 3600)
  lu.assertFalse(ctx.dry_run)
end
function TestNew:test_timeouts_defaulted_and_in_seconds()
  local ctx = context.new({ parts = parts({ timeouts = { kubernetesAPICall = "2m30s" } }), host = {} })
  lu.assertEquals(ctx.timeouts.kubernetesAPICall, 150)
  lu.assertEquals(math.type(ctx.timeouts.kubernetesAPICall), "integer")
  -- kubeadm v1beta4's defaults for the rest
  lu.assertEquals(ctx.timeouts.controlPlaneComponentHealthCheck, 240)
  lu.assertEquals(ctx.timeouts.discovery, 300)
  lu.assertEquals(ctx.timeouts.tlsBootstrap, 300)
  lu.assertEquals(ctx.timeouts.etcdAPICall, 120)
end
function TestNew:test_join_ctx_before_and_after_the_cluster_is_known()
  local join = { nodeRegistration = { name = "w1", taints = {} }, timeouts = { discovery = "20s" },
                 discovery = { bootstrapToken = { apiServerEndpoint = "10.0.0.1:6443" } } }
  local ctx = context.new({ flow = "join", parts = { join = join }, host = {} })
  lu.assertEquals(ctx.role, "worker")
  lu.assertIs(ctx.node, join.nodeRegistration)
  lu.assertIs(ctx.join, join)
  lu.assertEquals(ctx.timeouts.discovery, 20)
  lu.assertEquals(ctx.timeouts.tlsBootstrap, 300)
  lu.assertNil(ctx.cluster)
  lu.assertNil(ctx.init)
  context.set_cluster(ctx, parts().cluster)
  lu.assertEquals(ctx.cluster.networking.serviceSubnet, "10.96.0.0/12")
  lu.assertEquals(ctx.version.minor, tonumber(ctx.cluster.kubernetesVersion:match("^v1%.(%d+)")))
  lu.assertEquals(ctx.cert_validity, 8760 * 3600)
  -- a control-plane join: its own endpoint
  join.controlPlane = { localAPIEndpoint = { advertiseAddress = "10.0.0.2", bindPort = 7443 } }
  local cp = context.new({ flow = "join", parts = { join = join }, host = {} })
  lu.assertEquals(cp.role, "control-plane")
  lu.assertEquals(cp.endpoint, { address = "10.0.0.2", port = 7443 })
end

function TestNew:test_misuse_raises()
  lu.assertErrorMsgContains("want a table", context.new, nil)
  lu.assertErrorMsgContains("parts must be", context.new, { parts = {} })
  lu.assertErrorMsgContains('unknown flow "frobnicate"', context.new, { flow = "frobnicate", parts = parts(), host = {} })
  lu.assertErrorMsgContains("is not control-plane or worker", context.new, { role = "boss", parts = parts(), host = {} })
  lu.assertErrorMsgContains("kboot.join_config.load's result", context.new, { flow = "join", parts = parts(), host = {} })
  local p = parts()
  p.init.timeouts = { discovery = "soon" }
  lu.assertErrorMsgContains("timeouts.discovery", context.new, { parts = p, host = {} })
end

os.exit(lu.LuaUnit.run())

-- kboot.net: IP/CIDR parsing, RFC 5952 formatting (checked against Python's ipaddress), n-th IP, overlap.
local lu = require("luaunit")
local t = require("testlib")
local net = require("kboot.net")

TestNet = {}

function TestNet:test_parse_ipv4()
  local ip = net.parse_ip("10.96.0.1")
  lu.assertEquals(ip.family, 4)
  lu.assertEquals(ip.bytes, "\10\96\0\1")
  for _, bad in ipairs({ "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", " 1.2.3.4",
                         "1.2.3.4 ", "a.b.c.d", "1..2.3", "1.2.3.4/8", "1234.1.1.1" }) do
    local r, err = net.parse_ip(bad)
    lu.assertNil(r, bad)
    lu.assertStrContains(err, "not a valid IP address")
  end
  lu.assertNil(net.parse_ip(42))
end

function TestNet:test_parse_ipv6()
  lu.assertEquals(net.parse_ip("::1").bytes, ("\0"):rep(15) .. "\1")
  lu.assertEquals(net.parse_ip("::").bytes, ("\0"):rep(16))
  lu.assertEquals(net.parse_ip("fd00::a").family, 6)
  lu.assertEquals(net.parse_ip("::ffff:1.2.3.4").bytes, ("\0"):rep(10) .. "\255\255\1\2\3\4")
  for _, bad in ipairs({ ":", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::",
                         "g::1", "::1.2.3", "1.2.3.4::", "fe80::1%eth0", "1:2:3:4:5:6:7:8::" }) do
    lu.assertNil(net.parse_ip(bad), bad)
  end
  lu.assertTrue(net.is_ip("2001:db8::1"))
  lu.assertFalse(net.is_ip("2001:db8::1/64"))
end

-- The same addresses through Python's ipaddress (RFC 5952 compression), a peer implementation.
function TestNet:test_format_matches_python()
  local inputs = { "2001:0db8:0000:0000:0001:0000:0000:0001", "0:0:0:0:0:0:0:1", "::", "fd00:0:0:0:0:0:0:a",
    "2001:db8:0:1:1:1:1:1", "1:0:0:2:0:0:0:3", "FE80::ABCD:0:0:1", "2001:db8::", "0:1:0:1:0:1:0:1",
    "1:0:0:0:1:0:0:0", "10.0.0.255", "0.0.0.0" }
  local ok, py = t.sh("python3 -c 'import ipaddress,sys\nfor a in sys.argv[1:]: print(ipaddress.ip_address(a))' "
    .. table.concat((function() local q = {} for i, s in ipairs(inputs) do q[i] = t.q(s) end return q end)(), " "))
  if not ok then lu.skip("python3 not available: " .. py) end
  local i = 0
  for line in py:gmatch("[^\n]+") do
    i = i + 1
    lu.assertEquals(net.format_ip(net.parse_ip(inputs[i])), line, inputs[i])
  end
  lu.assertEquals(i, #inputs)
  lu.assertEquals(net.format_ip(net.parse_ip("::ffff:10.1.2.3")), "::ffff:10.1.2.3")
end

function TestNet:test_parse_cidr()
  local c = net.parse_cidr("10.96.0.5/12")
  lu.assertEquals(c.family, 4)
  lu.assertEquals(c.prefix, 12)
  lu.assertEquals(net.format_ip(c), "10.96.0.0")
  lu.assertEquals(c.addr, "\10\96\0\5")
  lu.assertEquals(net.parse_cidr("fd00::/108").prefix, 108)
  for _, bad in ipairs({ "10.96.0.0", "10.96.0.0/33", "fd00::/129", "10.96.0.0/", "/12", "x/12",
                         "10.96.0.0/012", "10.96.0.0/-1", "10.96.0.0/1/2" }) do
    local r, err = net.parse_cidr(bad)
    lu.assertNil(r, bad)
    lu.assertStrContains(err, "not a valid CIDR")
  end
end

function TestNet:test_nth_ip()
  lu.assertEquals(net.nth_ip("10.96.0.0/12", 1), "10.96.0.1")
  lu.assertEquals(net.nth_ip("10.96.0.0/12", 10), "10.96.0.10")
  lu.assertEquals(net.nth_ip("10.96.0.0/12", 0), "10.96.0.0")
  lu.assertEquals(net.nth_ip("10.96.0.0/12", 300), "10.96.1.44")
  lu.assertEquals(net.nth_ip("192.168.0.0/30", 3), "192.168.0.3")
  lu.assertEquals(net.nth_ip("10.255.255.0/24", 255), "10.255.255.255")
  lu.assertEquals(net.nth_ip("fd00:10:96::/112", 1), "fd00:10:96::1")
  lu.assertEquals(net.nth_ip("fd00:10:96::/112", 10), "fd00:10:96::a")
  lu.assertEquals(net.nth_ip("fd00::/64", 65536), "fd00::1:0")
  lu.assertEquals(net.nth_ip(net.parse_cidr("10.0.0.0/8"), 256), "10.0.1.0")
  local r, err = net.nth_ip("192.168.0.0/30", 4)
  lu.assertNil(r)
  lu.assertStrContains(err, "has no address number 4")
  lu.assertNil(net.nth_ip("bogus", 1))
  lu.assertNil(net.nth_ip("10.0.0.0/8", -1))
end

function TestNet:test_overlap_size_contains()
  lu.assertTrue(net.cidr_overlap("10.96.0.0/12", "10.100.0.0/16"))
  lu.assertTrue(net.cidr_overlap("10.100.0.0/16", "10.96.0.0/12"))
  lu.assertFalse(net.cidr_overlap("10.96.0.0/12", "10.244.0.0/16"))
  lu.assertFalse(net.cidr_overlap("10.96.0.0/12", "fd00::/64"))
  lu.assertTrue(net.cidr_overlap("fd00::/56", "fd00:0:0:1::/64"))
  lu.assertTrue(net.cidr_overlap("0.0.0.0/0", "1.2.3.0/24"))
  lu.assertNil(net.cidr_overlap("bogus", "10.0.0.0/8"))
  lu.assertEquals(net.cidr_size_bits("10.96.0.0/12"), 20)
  lu.assertEquals(net.cidr_size_bits("fd00::/108"), 20)
  lu.assertTrue(net.cidr_contains("10.96.0.0/12", "10.111.255.255"))
  lu.assertFalse(net.cidr_contains("10.96.0.0/12", "10.112.0.0"))
  lu.assertFalse(net.cidr_contains("10.96.0.0/12", "::1"))
end

function TestNet:test_loopback_and_lists()
  lu.assertTrue(net.is_loopback("127.0.0.1"))
  lu.assertTrue(net.is_loopback("127.5.0.1"))
  lu.assertTrue(net.is_loopback("::1"))
  lu.assertTrue(net.is_loopback("::ffff:127.0.0.1"))
  lu.assertFalse(net.is_loopback("10.0.0.1"))
  lu.assertFalse(net.is_loopback("::2"))
  lu.assertFalse(net.is_loopback("nope"))
  lu.assertEquals(net.split_list(" 10.244.0.0/16 , fd00::/56,,"), { "10.244.0.0/16", "fd00::/56" })
  lu.assertEquals(net.split_list(""), {})
  lu.assertEquals(net.split_list(nil), {})
end

function TestNet:test_split_host_port()
  local cases = {
    { "10.0.0.1:6443", "10.0.0.1", 6443 }, { "api.example.com", "api.example.com", nil },
    { "api:443", "api", 443 }, { "[fd00::1]:6443", "fd00::1", 6443 }, { "[fd00::1]", "fd00::1", nil },
    { "fd00::1", "fd00::1", nil }, { "::1", "::1", nil },
  }
  for _, c in ipairs(cases) do
    local h, p = net.split_host_port(c[1])
    lu.assertEquals(h, c[2], c[1])
    lu.assertEquals(p, c[3], c[1])
  end
  lu.assertEquals(math.type(select(2, net.split_host_port("a:1"))), "integer")
  for _, bad in ipairs({ "", ":6443", "host:", "host:0", "host:65536", "host:123456", "[::1", "a]:1", "h:p" }) do
    local h, err = net.split_host_port(bad)
    lu.assertNil(h, bad)
    lu.assertIsString(err, bad)
  end
end

function TestNet:test_join_host_port()
  lu.assertEquals(net.join_host_port("10.0.0.1", 6443), "10.0.0.1:6443")
  lu.assertEquals(net.join_host_port("fd00::1", 2379), "[fd00::1]:2379")
  lu.assertEquals(net.join_host_port("node-1", "10250"), "node-1:10250")
  local h, p = net.split_host_port(net.join_host_port("fd00::1", 2380))
  lu.assertEquals({ h, p }, { "fd00::1", 2380 })
end

function TestNet:test_dns_names()
  for _, ok in ipairs({ "a", "node-1", "a.b.c", "cluster.local", "x" .. ("y"):rep(62), "1.2.3.4" }) do
    lu.assertTrue(net.is_dns_subdomain(ok), ok)
  end
  for _, bad in ipairs({ "", "A", "-a", "a-", "a..b", ".a", "a.", "a_b", "x" .. ("y"):rep(63),
                         ("a."):rep(127) .. "ab", "*.a" }) do
    lu.assertFalse(net.is_dns_subdomain(bad), bad)
  end
  lu.assertTrue(net.is_dns_label("kube-system"))
  lu.assertFalse(net.is_dns_label("a.b"))
  lu.assertTrue(net.is_dns_wildcard("*.example.com"))
  lu.assertFalse(net.is_dns_wildcard("*.*.example.com"))
  lu.assertFalse(net.is_dns_wildcard("example.com"))
  lu.assertFalse(net.is_dns_subdomain(42))
end

os.exit(lu.LuaUnit.run("-v"))

-- IP address, CIDR and host name helpers (pure Lua): parsing as Go's net package accepts, RFC 5952 text form,
-- n-th address of a subnet (kubeadm's first service IP and cluster DNS IP), overlap and size checks.
local M = {}

local function parse_v4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  local out = {}
  for _, part in ipairs({ a, b, c, d }) do
    -- Go rejects leading zeros (ambiguous octal) since 1.17; so do we
    if #part > 3 or (#part > 1 and part:sub(1, 1) == "0") then return nil end
    local n = tonumber(part)
    if n > 255 then return nil end
    out[#out + 1] = string.char(n)
  end
  return table.concat(out)
end

local function parse_v6(s)
  if s:find("[^%x:%.]") then return nil end
  local head, tail = s, nil
  local dc = s:find("::", 1, true)
  if dc then
    head, tail = s:sub(1, dc - 1), s:sub(dc + 2)
    if tail:find("::", 1, true) then return nil end
  end
  local function groups(part, allow_v4)
    local g = {}
    if part == "" then return g end
    local items = {}
    for item in (part .. ":"):gmatch("([^:]*):") do items[#items + 1] = item end
    for i, item in ipairs(items) do
      if item:find(".", 1, true) then
        if not allow_v4 or i ~= #items then return nil end
        local v4 = parse_v4(item)
        if not v4 then return nil end
        g[#g + 1] = v4:byte(1) * 256 + v4:byte(2)
        g[#g + 1] = v4:byte(3) * 256 + v4:byte(4)
      else
        if #item < 1 or #item > 4 or item:find("[^%x]") then return nil end
        g[#g + 1] = tonumber(item, 16)
      end
    end
    return g
  end
  local hg = groups(head, tail == nil)
  if not hg then return nil end
  local all
  if tail then
    local tg = groups(tail, true)
    if not tg then return nil end
    local missing = 8 - #hg - #tg
    if missing < 1 then return nil end
    all = hg
    for _ = 1, missing do all[#all + 1] = 0 end
    for _, v in ipairs(tg) do all[#all + 1] = v end
  else
    if #hg ~= 8 then return nil end
    all = hg
  end
  local out = {}
  for _, v in ipairs(all) do out[#out + 1] = string.char(v >> 8, v & 0xff) end
  return table.concat(out)
end

-- parse_ip("10.0.0.1") -> {family=4, bytes="\10\0\0\1"}; "::1" -> family 6, 16 bytes.
function M.parse_ip(s)
  if type(s) ~= "string" then return nil, "not a string" end
  if s:find(":", 1, true) then
    local b = parse_v6(s)
    if b then return { family = 6, bytes = b } end
  else
    local b = parse_v4(s)
    if b then return { family = 4, bytes = b } end
  end
  return nil, ("%q is not a valid IP address"):format(s)
end

function M.is_ip(s) return M.parse_ip(s) ~= nil end

local function v4_text(b, off)
  return ("%d.%d.%d.%d"):format(b:byte(off + 1, off + 4))
end

-- format_ip(parsed) -> canonical text (RFC 5952 for IPv6: lower case, no leading zeros, longest
-- run of two or more zero groups as "::", the first one on a tie; ::ffff:a.b.c.d for IPv4-mapped).
function M.format_ip(ip)
  local b = ip.bytes
  if ip.family == 4 then return v4_text(b, 0) end
  if b:sub(1, 12) == ("\0"):rep(10) .. "\255\255" then return "::ffff:" .. v4_text(b, 12) end
  local g = {}
  for i = 1, 16, 2 do g[#g + 1] = b:byte(i) * 256 + b:byte(i + 1) end
  local best_s, best_n, cur_s, cur_n = 0, 0, 0, 0
  for i = 1, 8 do
    if g[i] == 0 then
      if cur_n == 0 then cur_s = i end
      cur_n = cur_n + 1
      if cur_n > best_n then best_s, best_n = cur_s, cur_n end
    else cur_n = 0 end
  end
  local parts = {}
  for i = 1, 8 do parts[i] = ("%x"):format(g[i]) end
  if best_n < 2 then return table.concat(parts, ":") end
  local left = table.concat(parts, ":", 1, best_s - 1)
  local right = table.concat(parts, ":", best_s + best_n, 8)
  return left .. "::" .. right
end

local function mask(bytes, prefix)
  local out = {}
  for i = 1, #bytes do
    local bits = math.max(0, math.min(8, prefix - (i - 1) * 8))
    local m = (0xff << (8 - bits)) & 0xff
    out[i] = string.char(bytes:byte(i) & m)
  end
  return table.concat(out)
end

-- parse_cidr("10.96.0.0/12") -> {family=4, bytes=<network, host bits cleared>, prefix=12, addr=<as given>}
function M.parse_cidr(s)
  if type(s) ~= "string" then return nil, "not a string" end
  local a, p = s:match("^([^/]+)/(%d+)$")
  local ip = a and M.parse_ip(a)
  if not ip or #p > 3 or (#p > 1 and p:sub(1, 1) == "0") then
    return nil, ("%q is not a valid CIDR (want address/prefix, e.g. 10.96.0.0/12)"):format(s)
  end
  local prefix, max = tonumber(p), ip.family == 4 and 32 or 128
  if prefix > max then
    return nil, ("%q is not a valid CIDR: prefix length %d is larger than %d"):format(s, prefix, max)
  end
  return { family = ip.family, bytes = mask(ip.bytes, prefix), prefix = prefix, addr = ip.bytes }
end

local function as_cidr(c)
  if type(c) == "table" then return c end
  return M.parse_cidr(c)
end

-- nth_ip("10.96.0.0/12", 10) -> "10.96.0.10": the network address plus n, which must stay inside.
function M.nth_ip(cidr, n)
  local c, err = as_cidr(cidr)
  if not c then return nil, err end
  if math.type(n) ~= "integer" or n < 0 then return nil, "index must be a non-negative integer" end
  local hostbits = #c.bytes * 8 - c.prefix
  if hostbits < 63 and n >= (1 << hostbits) then
    return nil, ("subnet %s/%d has no address number %d"):format(M.format_ip(c), c.prefix, n)
  end
  local out, carry = {}, n
  for i = #c.bytes, 1, -1 do
    local v = c.bytes:byte(i) + (carry & 0xff)
    carry = (carry >> 8) + (v >> 8)
    out[i] = string.char(v & 0xff)
  end
  return M.format_ip({ family = c.family, bytes = table.concat(out) })
end

-- Host bits of a subnet: 20 for a /12 IPv4 network, 108 for a /20 IPv6 one.
function M.cidr_size_bits(cidr)
  local c, err = as_cidr(cidr)
  if not c then return nil, err end
  return #c.bytes * 8 - c.prefix
end

-- True when the two subnets share any address (same family, one contains the other's network).
function M.cidr_overlap(a, b)
  local ca, err = as_cidr(a)
  if not ca then return nil, err end
  local cb, err2 = as_cidr(b)
  if not cb then return nil, err2 end
  if ca.family ~= cb.family then return false end
  local p = math.min(ca.prefix, cb.prefix)
  return mask(ca.bytes, p) == mask(cb.bytes, p)
end

-- True when the subnet contains the address.
function M.cidr_contains(cidr, ip)
  local c, err = as_cidr(cidr)
  if not c then return nil, err end
  local i = type(ip) == "table" and ip or M.parse_ip(ip)
  if not i or i.family ~= c.family then return false end
  return mask(i.bytes, c.prefix) == c.bytes
end

-- 127.0.0.0/8, ::1 and IPv4-mapped loopback.
function M.is_loopback(s)
  local ip = type(s) == "table" and s or M.parse_ip(s)
  if not ip then return false end
  local b = ip.bytes
  if ip.family == 4 then return b:byte(1) == 127 end
  if b == ("\0"):rep(15) .. "\1" then return true end
  return b:sub(1, 12) == ("\0"):rep(10) .. "\255\255" and b:byte(13) == 127
end

-- "10.244.0.0/16, fd00::/56" -> {"10.244.0.0/16", "fd00::/56"} (dual-stack lists; empty items dropped).
function M.split_list(s)
  local out = {}
  if s == nil then return out end
  for item in tostring(s):gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then out[#out + 1] = item end
  end
  return out
end

---------------------------------------------------------------------------------------------------
-- Host names and host:port (the one copy every module uses)

-- RFC 1123 label and subdomain, lower case, as Kubernetes' IsDNS1123Label / IsDNS1123Subdomain
-- (object names, node names, DNS domains, certificate SANs).
function M.is_dns_label(s)
  return type(s) == "string" and #s >= 1 and #s <= 63
    and (s:match("^[a-z0-9]$") or s:match("^[a-z0-9][a-z0-9%-]*[a-z0-9]$")) ~= nil
end

function M.is_dns_subdomain(s)
  if type(s) ~= "string" or #s == 0 or #s > 253 then return false end
  for label in (s .. "."):gmatch("([^.]*)%.") do
    if not M.is_dns_label(label) then return false end
  end
  return true
end

-- "*.example.com" (a wildcard certificate SAN)
function M.is_dns_wildcard(s)
  return type(s) == "string" and s:sub(1, 2) == "*." and M.is_dns_subdomain(s:sub(3))
end

-- split_host_port("host:port" | "host" | "[v6]:port" | "[v6]" | "v6") -> host, port (integer or nil)
-- | nil, why. A bare IPv6 address (more than one colon) is a host without a port.
function M.split_host_port(s)
  if type(s) ~= "string" then return nil, "host[:port] must be a string" end
  local host, port = s:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then
    if select(2, s:gsub(":", "")) > 1 and not s:find("[%[%]]") then host, port = s, ""
    else host, port = s:match("^([^:%[%]]*):?(%d*)$") end
  end
  if not host or host == "" then return nil, ("%q is not host[:port]"):format(s) end
  if s:match(":$") then return nil, ("%q has an empty port"):format(s) end
  if port ~= "" then
    local p = tonumber(port)
    if #port > 5 or p < 1 or p > 65535 then return nil, ("%q has an invalid port (1-65535)"):format(s) end
    return host, math.tointeger(p)
  end
  return host
end

-- join_host_port("10.0.0.1", 6443) -> "10.0.0.1:6443"; an IPv6 host gets brackets, as Go's net.JoinHostPort.
function M.join_host_port(host, port)
  if host:find(":", 1, true) then return ("[%s]:%s"):format(host, port) end
  return ("%s:%s"):format(host, port)
end

return M

-- Naming the step where reaching an http(s) endpoint failed (DNS, TCP, TLS, HTTP), and for TLS,
-- showing the certificate the server really presents and why it does not verify, by looking at it
-- again without verifying (nothing but a handshake and a GET without credentials is sent). Used by
-- connect() and probe().
local http = require("kboot.http")
local pki = require("kboot.pki")
local net = require("kboot.net")
local pretty = require("kboot.pretty")
local kerror = require("kboot.error")

local M = {}

local function fail(step, msg, extra)
  extra = extra or {}
  extra.step = step
  return nil, kerror.new("connect", msg, extra)
end

local function sans_of(info)
  local out = {}
  for _, d in ipairs(info.dns or {}) do out[#out + 1] = d end
  for _, ip in ipairs(info.ip or {}) do out[#out + 1] = ip end
  return out
end

-- describe(cert) -> { subject, sans, issuer, not_after, expiry } and its one line
function M.describe(cert, now)
  local i = cert:info()
  local d = { subject = i.subject_string, sans = sans_of(i), issuer = i.issuer_string, not_after = i.not_after,
              expiry = pretty.expiry(i.not_after - (now or os.time())), is_ca = i.is_ca }
  d.line = ("subject %s, SANs [%s], issuer %s, expires %s"):format(d.subject, table.concat(d.sans, " "), d.issuer, d.expiry)
  return d
end

-- Does the certificate name host (an IP or DNS SAN, wildcards as TLS has them)?
function M.names_host(info, host)
  host = host:gsub("^%[(.*)%]$", "%1"):lower()
  if net.is_ip(host) then
    local want = net.format_ip(net.parse_ip(host))
    for _, ip in ipairs(info.ip or {}) do
      local p = net.parse_ip(ip)
      if p and net.format_ip(p) == want then return true end
    end
    return false
  end
  for _, d in ipairs(info.dns or {}) do
    d = d:lower()
    if d == host then return true end
    if d:sub(1, 2) == "*." and host:find(".", 1, true) and host:match("^[^.]+(%..+)$") == d:sub(2) then return true end
  end
  return false
end

-- The certificate the server presents, fetched without verifying it (to show it; nothing is sent
-- but the handshake and a GET without credentials).
function M.server_chain(origin, path)
  local c = http.client({ server = origin, insecure = true, retries = 0, timeout = 5, connect_timeout = 3 })
  if not c then return nil end
  local r, err = c:request("GET", path or "/", { tls_info = true })
  c:close()
  if not r then return nil, err end
  if not r.certs then return nil end
  local chain = {}
  for _, pem in ipairs(r.certs) do chain[#chain + 1] = pki.load_cert(pem) end
  return chain, r
end

-- A self-signed certificate (a root) in a server's chain proves nothing: only the others may
-- serve as intermediates.
function M.intermediates(chain, list)
  for k = 2, #chain do
    local c = chain[k]
    local i = c:info()
    if not (i.subject_string == i.issuer_string and c:issued_by(c)) then list[#list + 1] = c end
  end
  return list
end

-- Why does the chain not verify against ca_pem? One clause.
local function why_not_verified(chain, ca_pem, host, now)
  local leaf = chain[1]
  local cas = ca_pem and pki.load_certs(ca_pem) or {}
  local i = leaf:info()
  local reasons = {}
  if i.not_after < now then reasons[#reasons + 1] = ("it expired %s ago"):format(pretty.duration(now - i.not_after)) end
  if i.not_before > now then reasons[#reasons + 1] = "it is not valid yet (clock skew?)" end
  if #cas == 0 then
    reasons[#reasons + 1] = "the kubeconfig has no CA (the system's trust store is used)"
  else
    local list = {}
    for _, c in ipairs(cas) do list[#list + 1] = c end
    M.intermediates(chain, list)
    if not leaf:verify(list, { time = i.not_before + 1 }) then
      local names = {}
      for _, c in ipairs(cas) do names[#names + 1] = c:info().subject_string end
      local same_name = false
      for _, c in ipairs(cas) do if c:info().subject_string == i.issuer_string then same_name = true end end
      reasons[#reasons + 1] = ("it is not signed by the kubeconfig's CA (%s)%s"):format(table.concat(names, "; "),
        same_name and ": a CA of the same name but another key (a regenerated PKI?)" or "")
    end
  end
  if host and not M.names_host(i, host) then reasons[#reasons + 1] = ("%s is not among its SANs"):format(host) end
  if #reasons == 0 then reasons[1] = "its chain does not verify" end
  return table.concat(reasons, "; ")
end

-- curl codes by the step they mean.
local DNS = { [5] = true, [6] = true }
local TCP = { [7] = true }
local TLS = { [35] = true, [51] = true, [53] = true, [54] = true, [58] = true, [59] = true, [60] = true,
              [64] = true, [66] = true, [77] = true, [80] = true, [82] = true, [83] = true, [90] = true, [91] = true }
-- the connection closed or broke (send/receive failure, empty reply, HTTP/2 framing)
local CLOSED = { [16] = true, [35] = true, [52] = true, [55] = true, [56] = true, [92] = true }
-- the server's certificate did not verify (as opposed to the handshake failing)
local VERIFY = { [51] = true, [60] = true, [83] = true, [90] = true, [91] = true }

local function curl_detail(err)
  return tostring(err.msg or err):match("^%u+ %S+: (.*)$") or tostring(err.msg or err)
end

-- step_of(err) -> "dns" | "tcp" | "tls" | "http": which step a kboot.http transport error stopped at.
function M.step_of(err)
  local code, msg = err.code, tostring(err.msg or "")
  if DNS[code] then return "dns" end
  if TCP[code] then return "tcp" end
  if TLS[code] or msg:find("TLS connection refused", 1, true) or msg:find("client certificate", 1, true)
     or msg:find("SSL_read", 1, true) or msg:find("SSL routines", 1, true) then return "tls" end
  if code == 28 and (msg:find("Connection timed out", 1, true) or msg:find("Failed to connect", 1, true)
                     or msg:find("Resolving timed out", 1, true)) then
    return msg:find("Resolving", 1, true) and "dns" or "tcp"
  end
  return "http"
end

-- A transport failure against origin as one line naming the step; TLS failures show the
-- server's certificate. o: { ca_pem =, cert = (the client's), what = "connect" | "probe" }.
function M.transport_error(origin, path, err, o)
  o = o or {}
  local now = os.time()
  local host, port = origin:match("^https?://(%[?[^/]-%]?):?(%d*)$")
  host = host or origin
  local step = M.step_of(err)
  local head = ("%s %s"):format(o.what or "connect", origin)
  local detail = curl_detail(err)
  local https = origin:sub(1, 8) == "https://"
  local chain, probe_err, probed = nil, nil, false
  if https and (step == "tls" or (step == "http" and CLOSED[err.code])) then
    -- The connection broke in or right after the handshake: a refused client certificate, a
    -- server that wants one, or a server going away. A handshake without credentials says which.
    chain, probe_err = M.server_chain(origin, path)
    probed = true
    if not chain and probe_err and probe_err.code then
      local s2 = M.step_of(probe_err)
      if s2 == "tcp" or s2 == "dns" then return M.transport_error(origin, path, probe_err, o) end
      step = "tls"
    elseif chain and o.cert and step == "http" then
      step = "tls"
    end
  end
  if step == "dns" then
    return fail("dns", ("%s: DNS: cannot resolve %s (%s)"):format(head, host, detail), { code = err.code })
  elseif step == "tcp" then
    local why = err.code == 7 and
      ("nothing accepts connections on %s port %s (is the server running? is the port right?)"):format(host, port ~= "" and port or "443")
      or detail
    return fail("tcp", ("%s: TCP: cannot connect: %s"):format(head, why), { code = err.code })
  elseif step == "tls" then
    if not probed and https then chain = M.server_chain(origin, path) end
    local extra, msg = { code = err.code }, nil
    local cert = o.cert and (type(o.cert) == "userdata" and o.cert or pki.load_cert(o.cert))
    if chain and chain[1] and VERIFY[err.code] then
      local d = M.describe(chain[1], now)
      extra.server_cert = d
      msg = ("%s: TLS: the server's certificate does not verify: %s; the server presents %s"):format(head,
        why_not_verified(chain, o.ca_pem, host, now), d.line)
    elseif cert and (not chain or not VERIFY[err.code]) then
      -- the handshake fails with our certificate (and works without one, or needs one)
      local ci = cert:info()
      msg = ("%s: TLS: the server refused the client certificate (subject %s, issuer %s, expires %s): it does not trust that issuer (or the certificate expired)")
        :format(head, ci.subject_string, ci.issuer_string, pretty.expiry(ci.not_after - now))
    elseif not chain then
      msg = ("%s: TLS: the server refused the handshake: it wants a client certificate%s"):format(head,
        o.what == "probe" and " (probe(url, { cert = path, key = path }))" or "")
    else
      msg = ("%s: TLS: %s"):format(head, detail)
    end
    return fail("tls", msg, extra)
  end
  return fail("http", ("%s: %s"):format(head, detail), { code = err.code })
end


return M

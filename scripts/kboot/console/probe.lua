-- probe(url): one request to an http(s) endpoint and what it shows: the TLS handshake (protocol,
-- cipher, ALPN), the chain the server sends, whether it verifies (with kboot.pki, against a CA given,
-- the session's, or this node's) and names the host, the HTTP status and the time of each step.
local fs = require("kboot.fs")
local http = require("kboot.http")
local pki = require("kboot.pki")
local pretty = require("kboot.pretty")
local rows = require("kboot.rows")
local node = require("kboot.console.node")
local tls = require("kboot.console.tls")
local connect = require("kboot.console.connect")

local M = {}

local host_read = require("kboot.context").read_host

-- Where connect() looks without an argument, in order: this node's admin.conf (under --root), then
-- PEMs of certificates from a PEM string, a file (this machine's, else the node's) or pki certs.
local function cert_pems(x)
  if x == nil then return nil end
  if type(x) == "userdata" then return x:pem() end
  if type(x) == "table" then
    local out = {}
    for _, c in ipairs(x) do out[#out + 1] = cert_pems(c) end
    return table.concat(out)
  end
  if x:find("-----BEGIN", 1, true) then return x end
  local text = host_read(x) or fs.read(x)
  if not text then error(("probe: cannot read %s"):format(x), 3) end
  return text
end

-- The CAs this node has, to name the one a certificate is signed by.
function M.node_cas()
  local dir = node.cert_dir()
  local out = {}
  for _, f in ipairs({ "ca.crt", "etcd/ca.crt", "front-proxy-ca.crt" }) do
    local pem = fs.read(dir .. "/" .. f)
    local c = pem and pki.load_cert(pem)
    if c then out[#out + 1] = { path = dir .. "/" .. f, cert = c, pem = pem } end
  end
  return out
end

local function verify_with(chain, ca_pem)
  local list = pki.load_certs(ca_pem) or {}
  if #list == 0 then return nil, "no certificate in the CA given" end
  return chain[1]:verify(tls.intermediates(chain, list))
end

local CHAIN_COLUMNS = { { "subject", flex = true }, { "issuer", flex = true }, { "sans", flex = true }, { "not_after", title = "EXPIRES", format = function(v) return pretty.expiry(v - os.time()) end } }
local TIMING_FIELDS = {}
for _, k in ipairs({ "dns", "connect", "tls", "first_byte", "total" }) do
  TIMING_FIELDS[#TIMING_FIELDS + 1] = { k, format = function(v) return ("%.1f ms"):format(v * 1000) end }
end
local PROBE_FIELDS = { "url", "ip", "port", "status", "http_version", "protocol", "cipher", "alpn", "verify",
                       "hostname", "chain", "timing", "body" }

-- probe(url [, { ca = pem | path | cert(s), cert = , key = , timeout = 10 }]) -> record | nil, err:
-- the TLS handshake (protocol, cipher, ALPN), the chain the server sends (subject, issuer, SANs,
-- expiry), whether it verifies (against ca; else the session's CA for its server, else this
-- node's CAs: which one signs it) and names the host, the HTTP status and how long each step took.
function M.probe(url, o)
  if type(url) ~= "string" then error("probe: URL expected", 2) end
  o = o or {}
  local origin, path = url:match("^(https?://[^/]+)(.*)$")
  if not origin then error(("probe: %q is not an http(s):// URL"):format(url), 2) end
  if path == "" then path = "/" end
  local https = origin:sub(1, 8) == "https://"
  local ca_pem, ca_name = cert_pems(o.ca), "the CA given"
  if not ca_pem and https and connect.state.cur and connect.state.cur.server:gsub("/$", "") == origin and connect.state.cur.ca_pem then
    ca_pem, ca_name = connect.state.cur.ca_pem, "the session's kubeconfig's CA"
  end
  local copts = { server = origin, insecure = https or nil, retries = 0, timeout = o.timeout or 10, connect_timeout = 5 }
  if o.cert then copts.cert_pem, copts.key_pem = cert_pems(o.cert), o.key and (host_read(o.key) or fs.read(o.key) or o.key) end
  local c = assert(http.client(copts))
  local r, err = c:request("GET", path, { tls_info = https })
  c:close()
  if not r then return tls.transport_error(origin, path, err, { what = "probe", ca_pem = ca_pem, cert = copts.cert_pem }) end
  local out = { url = url, ip = r.ip, port = r.port, status = r.status, http_version = r.http_version,
                body = (r.body or ""):sub(1, 200):gsub("%s+", " ") }
  local t = {}
  for k, v in pairs(r.timing) do t[k] = v end
  out.timing = rows.record(t, TIMING_FIELDS)
  if https then
    local info = r.info or ""
    out.protocol, out.cipher = info:match("SSL connection using ([^%s/]+) / ([^%s/]+)")
    out.alpn = info:match("ALPN[:,] server accepted ([%w/%.%-]+)") or info:match("ALPN[:,] server accepted to use ([%w/%.%-]+)")
      or (info:find("ALPN[:,] server did not agree") and "none")
    local chain, list = {}, {}
    for _, pem in ipairs(r.certs or {}) do chain[#chain + 1] = assert(pki.load_cert(pem)) end
    for _, cert in ipairs(chain) do
      local d = tls.describe(cert)
      list[#list + 1] = { subject = d.subject, issuer = d.issuer, sans = d.sans, not_after = d.not_after }
    end
    out.chain = rows.rows(list, CHAIN_COLUMNS, { level = function(row) return row.not_after < os.time() and "error" or nil end })
    if chain[1] then
      local host = origin:match("^https://(%[?[^/]-%]?):?%d*$")
      out.hostname = tls.names_host(chain[1]:info(), host) and ("ok: the certificate names " .. host)
        or ("MISMATCH: %s is not among its SANs"):format(host)
      if ca_pem then
        local ok, verr = verify_with(chain, ca_pem)
        out.verify = ok and ("ok: signed by " .. ca_name) or ("FAILED against %s: %s"):format(ca_name, tostring(verr))
      else
        for _, ca in ipairs(M.node_cas()) do
          if verify_with(chain, ca.pem) then out.verify = "ok: signed by " .. fs.path(ca.path) break end
        end
        out.verify = out.verify or ("FAILED: its issuer %s is none of this node's CAs (give one: probe(url, { ca = path }))")
          :format(chain[1]:info().issuer_string)
      end
    end
  end
  return rows.record(out, PROBE_FIELDS, { level = function(x)
    if (x.verify or ""):find("^FAILED") or (x.hostname or ""):find("^MISMATCH") or (x.status or 0) >= 500 then return "error" end
  end })
end

return M

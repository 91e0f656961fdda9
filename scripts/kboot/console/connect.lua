-- connect() and probe(): reach an API server (or any HTTPS endpoint) and, when that fails, say which
-- step failed: the kubeconfig, DNS, TCP, TLS (with the certificate the server really presents and
-- why it does not verify) or authentication (401/403). The connection connect() makes is the one the
-- other console helpers use.
local fs = require("kboot.fs")
local http = require("kboot.http")
local kubeconfig = require("kboot.kubeconfig")
local pki = require("kboot.pki")
local net = require("kboot.net")
local pretty = require("kboot.pretty")
local rows = require("kboot.rows")
local kerror = require("kboot.error")
local cjson = require("cjson.safe")
local node = require("kboot.console.node")

local M = {}

-- The session: the kubeconfig asked for (--kubeconfig), and once connected the kube client, the
-- kubeconfig's current context and connect()'s record.
M.state = { spec = nil, kube = nil, cur = nil, info = nil }

local function fail(step, msg, extra)
  extra = extra or {}
  extra.step = step
  return nil, kerror.new("connect", msg, extra)
end

---------------------------------------------------------------------------------------------------
-- Which kubeconfig

local function host_read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Where connect() looks without an argument, in order: this node's admin.conf (under --root), then
-- $KUBECONFIG's files, then ~/.kube/config (this machine's, as kubectl reads them).
function M.candidates()
  local out = { { path = node.KUBERNETES_DIR .. "/admin.conf", node = true } }
  for p in ((os.getenv("KUBECONFIG") or "") .. ":"):gmatch("([^:]*):") do
    if p ~= "" then out[#out + 1] = { path = p } end
  end
  local home = os.getenv("HOME")
  if home and home ~= "" then out[#out + 1] = { path = home .. "/.kube/config" } end
  return out
end

local function exists(c)
  if c.node then return fs.exists(c.path) end
  local f = io.open(c.path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- resolve(spec) -> { path=, node= } | nil, err. spec: nil (the candidates), a name ("admin",
-- "super-admin", "kubelet": /etc/kubernetes/<name>.conf on this node), or a path: this machine's,
-- else the node's (under --root) when only that exists.
function M.resolve(spec)
  if spec == nil then
    local tried = {}
    for _, c in ipairs(M.candidates()) do
      if exists(c) then return c end
      tried[#tried + 1] = c.node and fs.path(c.path) or c.path
    end
    return fail("kubeconfig", ("no kubeconfig found (tried %s): connect(path) names one"):format(table.concat(tried, ", ")))
  end
  if type(spec) ~= "string" then error("connect: kubeconfig path, name or table expected", 3) end
  if not spec:find("/", 1, true) and not spec:find("%.") then
    return { path = node.KUBERNETES_DIR .. "/" .. spec .. ".conf", node = true }
  end
  local c = { path = spec }
  if not exists(c) and spec:sub(1, 1) == "/" and fs.exists(spec) then c.node = true end
  return c
end

-- load(spec) -> kubeconfig table, where (a path to show) | nil, err (step "kubeconfig")
function M.load(spec)
  if type(spec) == "table" then return spec, "(table)" end
  local c, err = M.resolve(spec)
  if not c then return nil, err end
  local t, lerr
  if c.node then
    t, lerr = kubeconfig.load(c.path)
  else
    local text = host_read(c.path)
    if not text then return fail("kubeconfig", ("kubeconfig %s: cannot read it"):format(c.path)) end
    t, lerr = kubeconfig.parse(text, c.path)
  end
  if not t then return fail("kubeconfig", tostring(lerr)) end
  return t, c.node and fs.path(c.path) or c.path
end

---------------------------------------------------------------------------------------------------
-- Who the credentials say we are

local function sans_of(info)
  local out = {}
  for _, d in ipairs(info.dns or {}) do out[#out + 1] = d end
  for _, ip in ipairs(info.ip or {}) do out[#out + 1] = ip end
  return out
end

-- The identity the kubeconfig's credentials carry, as the API server will read it.
function M.identity(cur)
  if cur.cert_pem then
    local cert = pki.load_cert(cur.cert_pem)
    if not cert then return { auth = "client certificate (unreadable)" } end
    local i = cert:info()
    return { user = i.subject.cn, groups = i.subject.o or {}, auth = "client certificate", cert = cert,
             cert_expires = i.not_after, issuer = i.issuer_string }
  elseif cur.token then
    local id = cur.token:match("^(%w%w%w%w%w%w)%.%w+$")
    if id and #cur.token == 23 then
      return { user = "system:bootstrap:" .. id, groups = { "system:bootstrappers" }, auth = "bootstrap token " .. id }
    end
    return { auth = "bearer token" }
  end
  return { user = "system:anonymous", groups = { "system:unauthenticated" }, auth = "none" }
end

-- May this user verb resource (cluster-wide)? SelfSubjectAccessReview; nil when it cannot tell.
local function can(c, verb, resource)
  local got = c:json("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    { apiVersion = "authorization.k8s.io/v1", kind = "SelfSubjectAccessReview",
      spec = { resourceAttributes = { verb = verb, resource = resource } } }, { retries = 0, timeout = 5 })
  return type(got) == "table" and got.status and got.status.allowed == true
end

-- The server's own answer (SelfSubjectReview, Kubernetes 1.26+), or nil where it has none.
local function whoami(c)
  for _, v in ipairs({ "v1", "v1beta1", "v1alpha1" }) do
    local got = c:json("POST", "/apis/authentication.k8s.io/" .. v .. "/selfsubjectreviews",
      { apiVersion = "authentication.k8s.io/" .. v, kind = "SelfSubjectReview" }, { retries = 0, timeout = 5 })
    local ui = type(got) == "table" and got.status and got.status.userInfo
    if type(ui) == "table" then return ui end
  end
  return nil
end

---------------------------------------------------------------------------------------------------
-- Naming the step that failed

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
local function server_chain(origin, path)
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
local function intermediates(chain, list)
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
    intermediates(chain, list)
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
    chain, probe_err = server_chain(origin, path)
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
    if not probed and https then chain = server_chain(origin, path) end
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

---------------------------------------------------------------------------------------------------
-- connect

-- Why the API server would not take this client certificate (it answered 401).
local function cert_refusal(cert, ca_pem)
  local i, now = cert:info(), os.time()
  local head = ("the client certificate (subject %s, issuer %s)"):format(i.subject_string, i.issuer_string)
  if i.not_after < now then return ("%s expired %s ago"):format(head, pretty.duration(now - i.not_after)) end
  local cas = ca_pem and pki.load_certs(ca_pem) or {}
  if #cas > 0 and not cert:verify(cas) then
    return head .. " is not signed by the cluster's CA (the kubeconfig's): a foreign or regenerated CA"
  end
  return head .. " is signed by the kubeconfig's CA, but not by the API server's --client-ca-file"
end

local function auth_failure(head, status, id, body, ca_pem)
  local st = cjson.decode(body or "")
  local said = type(st) == "table" and st.message or (body or ""):sub(1, 160):gsub("%s+", " ")
  if status == 401 then
    local why = id.auth:find("token", 1, true) and "the token is unknown to the server (deleted, expired or mistyped)"
      or id.cert and cert_refusal(id.cert, ca_pem)
      or "no usable credentials"
    return fail("auth", ("%s: auth: 401 Unauthorized as %s: %s"):format(head, id.user or id.auth, why), { status = 401 })
  end
  return fail("auth", ("%s: auth: 403 Forbidden as %s: %s"):format(head, id.user or id.auth, said), { status = 403 })
end

local INFO_FIELDS = { "kubeconfig", "context", "server", "user", "groups", "auth",
                      { "cert_expires", title = "cert_expires", format = function(v) return pretty.expiry(v - os.time()) end },
                      "access", "version", "platform" }

-- connect([kubeconfig [, opts]]) -> record | nil, err. opts: { timeout = 10 }.
function M.connect(spec, o)
  o = o or {}
  if spec == nil then spec = M.state.spec end
  local t, where = M.load(spec)
  if not t then return nil, where end
  local cur, cerr = kubeconfig.current(t)
  if not cur then return fail("kubeconfig", tostring(cerr)) end
  local id = M.identity(cur)
  local head = ("connect %s"):format(cur.server)
  local copts = { server = cur.server, ca_pem = cur.ca_pem, cert_pem = cur.cert_pem, key_pem = cur.key_pem,
                  token = cur.token, insecure = cur.insecure, retries = 0, timeout = o.timeout or 10, connect_timeout = 5 }
  local ok, c, herr = pcall(http.client, copts)
  if not ok then return fail("kubeconfig", ("%s: %s"):format(where, tostring(c))) end
  if not c then return fail("kubeconfig", ("%s: %s"):format(where, tostring(herr))) end
  local r, err = c:request("GET", "/version")
  if not r then
    c:close()
    return M.transport_error(cur.server, "/version", err, { ca_pem = cur.ca_pem, cert = id.cert })
  end
  if r.status == 401 or r.status == 403 then c:close() return auth_failure(head, r.status, id, r.body, cur.ca_pem) end
  local version = cjson.decode(r.body) or {}
  -- /version is public; /api needs an authenticated user (system:discovery)
  local api = c:request("GET", "/api")
  if api and (api.status == 401 or api.status == 403) then c:close() return auth_failure(head, api.status, id, api.body, cur.ca_pem) end
  local ui = whoami(c)
  local access = can(c, "list", "nodes") and "reads the whole cluster (list nodes: yes)"
    or "limited: may not list nodes (RBAC); nodes() and pods() need more rights"
  c:close()
  local k, kerr = require("kboot.kube").new(t, { timeout = 30, retries = 2, retry_deadline = 15, connect_timeout = 5 })
  if not k then return fail("kubeconfig", tostring(kerr)) end
  if M.state.kube then M.state.kube:close() end
  local info = rows.record({
    kubeconfig = where, context = cur.context, server = cur.server,
    user = ui and ui.username or id.user, groups = ui and ui.groups or id.groups, auth = id.auth,
    cert_expires = id.cert_expires, access = access, version = version.gitVersion, platform = version.platform,
  }, INFO_FIELDS)
  M.state.kube, M.state.cur, M.state.info, M.state.kubeconfig = k, cur, info, t
  return info
end

function M.disconnect()
  if M.state.kube then M.state.kube:close() end
  M.state.kube, M.state.cur, M.state.info, M.state.kubeconfig = nil, nil, nil, nil
  return true
end

-- client() -> the kube client of the session, connecting (with --kubeconfig, else the candidates)
-- on first use | nil, err
function M.client()
  if M.state.kube then return M.state.kube end
  local info, err = M.connect()
  if not info then return nil, err end
  return M.state.kube
end

---------------------------------------------------------------------------------------------------
-- probe

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
  return chain[1]:verify(intermediates(chain, list))
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
  local tls = origin:sub(1, 8) == "https://"
  local ca_pem, ca_name = cert_pems(o.ca), "the CA given"
  if not ca_pem and tls and M.state.cur and M.state.cur.server:gsub("/$", "") == origin and M.state.cur.ca_pem then
    ca_pem, ca_name = M.state.cur.ca_pem, "the session's kubeconfig's CA"
  end
  local copts = { server = origin, insecure = tls or nil, retries = 0, timeout = o.timeout or 10, connect_timeout = 5 }
  if o.cert then copts.cert_pem, copts.key_pem = cert_pems(o.cert), o.key and (host_read(o.key) or fs.read(o.key) or o.key) end
  local c = assert(http.client(copts))
  local r, err = c:request("GET", path, { tls_info = tls })
  c:close()
  if not r then return M.transport_error(origin, path, err, { what = "probe", ca_pem = ca_pem, cert = copts.cert_pem }) end
  local out = { url = url, ip = r.ip, port = r.port, status = r.status, http_version = r.http_version,
                body = (r.body or ""):sub(1, 200):gsub("%s+", " ") }
  local t = {}
  for k, v in pairs(r.timing) do t[k] = v end
  out.timing = rows.record(t, TIMING_FIELDS)
  if tls then
    local info = r.info or ""
    out.protocol, out.cipher = info:match("SSL connection using ([^%s/]+) / ([^%s/]+)")
    out.alpn = info:match("ALPN[:,] server accepted ([%w/%.%-]+)") or info:match("ALPN[:,] server accepted to use ([%w/%.%-]+)")
      or (info:find("ALPN[:,] server did not agree") and "none")
    local chain, list = {}, {}
    for _, pem in ipairs(r.certs or {}) do chain[#chain + 1] = assert(pki.load_cert(pem)) end
    for _, cert in ipairs(chain) do
      local d = M.describe(cert)
      list[#list + 1] = { subject = d.subject, issuer = d.issuer, sans = d.sans, not_after = d.not_after }
    end
    out.chain = rows.rows(list, CHAIN_COLUMNS, { level = function(row) return row.not_after < os.time() and "error" or nil end })
    if chain[1] then
      local host = origin:match("^https://(%[?[^/]-%]?):?%d*$")
      out.hostname = M.names_host(chain[1]:info(), host) and ("ok: the certificate names " .. host)
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

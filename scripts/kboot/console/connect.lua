-- connect(): reach the API server a kubeconfig names and say who we are there, or which step
-- failed: the kubeconfig, DNS, TCP, TLS (kboot.console.tls shows the certificate the server
-- presents and why it does not verify) or authentication (401/403). The connection connect() makes
-- is the session the other console helpers use.
local fs = require("kboot.fs")
local http = require("kboot.http")
local kubeconfig = require("kboot.kubeconfig")
local pki = require("kboot.pki")
local pretty = require("kboot.pretty")
local rows = require("kboot.rows")
local kerror = require("kboot.error")
local cjson = require("cjson.safe")
local node = require("kboot.console.node")
local tls = require("kboot.console.tls")

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

local host_read = require("kboot.context").read_host

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
  -- pcall: a ".." escaping the root raises in kboot.fs; then it is no node path
  if not exists(c) and spec:sub(1, 1) == "/" and select(2, pcall(fs.exists, spec)) == true then c.node = true end
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
    return tls.transport_error(cur.server, "/version", err, { ca_pem = cur.ca_pem, cert = id.cert })
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

return M

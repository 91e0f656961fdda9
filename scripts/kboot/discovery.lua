-- Join discovery: how a joining node learns the cluster's server and CA before it trusts anything.
-- token(): kubeadm's token discovery (an unverified read of kube-public/cluster-info, proven by the
-- token's detached JWS and the CA pins, then re-read over TLS verified against that CA).
-- file(): a kubeconfig given by the admin (a file or an https URL), trusted as it is.
-- Only token() makes an unverified request, and it sends no credentials with it.
local http = require("kboot.http")
local crypto = require("kboot.crypto")
local pki = require("kboot.pki")
local kubeconfig = require("kboot.kubeconfig")
local time = require("kboot.time")
local kerror = require("kboot.error")

local M = {}
local OP = "discovery"
M.PATH = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
M.DEFAULT_TIMEOUT = 300
M.DEFAULT_INTERVAL = 1

local function fail(fmt, ...) return nil, kerror.new(OP, fmt:format(...)) end

-- misuse is the caller's bug: raised, pointing at the call of token() or file()
local function misuse(level, fmt, ...) error("discovery: " .. fmt:format(...), level + 1) end

local function say(log, level, fmt, ...)
  if log and log[level] then log[level](OP, fmt, ...) end
end

-- "2s", "5m0s"; fractions as given ("0.5s")
local function dur(s)
  if s == math.floor(s) then return time.format_duration(s) end
  return ("%gs"):format(s)
end

local function check_token_opts(o)
  if type(o) ~= "table" then misuse(3, "options table expected") end
  if type(o.endpoint) ~= "string" or o.endpoint == "" then misuse(3, "endpoint (host:port) expected") end
  if type(o.token) ~= "string" then misuse(3, "token expected") end
  local id, secret = crypto.token_parse(o.token)
  if not id then misuse(3, "token: %s", tostring(secret)) end
  local pins = o.pins or {}
  if type(pins) ~= "table" then misuse(3, "pins must be a list") end
  for i, p in ipairs(pins) do
    if type(p) ~= "string" or not p:lower():match("^sha256:" .. ("%x"):rep(64) .. "$") then
      misuse(3, "pins[%d]: want sha256:<64 hex>", i)
    end
  end
  if o.unsafe_skip ~= nil and type(o.unsafe_skip) ~= "boolean" then misuse(3, "unsafe_skip must be a boolean") end
  if #pins == 0 and not o.unsafe_skip then misuse(3, "no CA pins and no unsafe_skip: nothing would prove the CA") end
  for _, k in ipairs({ "timeout", "interval" }) do
    if o[k] ~= nil and (type(o[k]) ~= "number" or o[k] <= 0) then misuse(3, "%s must be a positive number", k) end
  end
  return id, secret, pins
end

-- One GET of cluster-info; -> configmap, or nil, err (err.status set for an HTTP status)
local function get(c, remaining, st)
  st.requests = st.requests + 1
  local cm, err = c:json("GET", M.PATH, nil, { timeout = math.max(remaining, 0.2), retries = 0 })
  if cm ~= nil and type(cm) ~= "table" then
    return nil, { msg = ("GET %s: the answer is not a JSON object"):format(M.PATH) }
  end
  return cm, err
end

local function unreachable(o, timeout, err)
  if err.status then
    return fail("cluster-info from %s: still %s after %s: %s", o.endpoint, tostring(err.status), dur(timeout), err.msg)
  end
  return fail("cannot fetch cluster-info from %s within %s (endpoint unreachable, TLS error or timeout): %s",
              o.endpoint, dur(timeout), err.msg)
end

-- The unverified fetch, polled until the token's signature is there. -> cm, jws | nil, err
local function fetch_signed(o, id, st)
  local key = "jws-kubeconfig-" .. id
  local timeout, interval = o.timeout or M.DEFAULT_TIMEOUT, o.interval or M.DEFAULT_INTERVAL
  local c, cerr = http.client{ server = "https://" .. o.endpoint, insecure = true, retries = 0,
                               connect_timeout = math.min(10, timeout), timeout = timeout }
  if not c then return fail("%s: %s", o.endpoint, tostring(cerr)) end
  local deadline = time.now() + timeout
  local last
  while true do
    local cm, err = get(c, deadline - time.now(), st)
    if cm then
      local data = type(cm.data) == "table" and cm.data or {}
      local jws = data[key]
      if type(jws) == "string" and jws ~= "" then
        c:close()
        if type(data.kubeconfig) ~= "string" then
          return fail("cluster-info from %s has %s but no kubeconfig", o.endpoint, key)
        end
        return cm, jws
      end
      last = nil
      say(o.log, "debug", "cluster-info from %s has no %s yet; retrying", o.endpoint, key)
    else
      last = err
      say(o.log, "debug", "cluster-info from %s: %s; retrying", o.endpoint, err.msg)
    end
    local left = deadline - time.now()
    if left <= 0 then break end
    time.sleep(math.min(interval, left))
    if deadline - time.now() <= 0 then break end
  end
  c:close()
  if last then return unreachable(o, timeout, last) end
  return fail("no %s in cluster-info after %s: the token does not exist, has expired, or the "
              .. "controller-manager's bootstrapsigner is not running", key, dur(timeout))
end

-- cluster-info's kubeconfig -> parsed, server, ca_pem, certs | nil, err
local function cluster_of(text, endpoint)
  local kc, err = kubeconfig.parse(text, "cluster-info")
  if not kc then return fail("cluster-info from %s: %s", endpoint, tostring(err)) end
  local clusters = type(kc.clusters) == "table" and kc.clusters or {}
  if #clusters ~= 1 then
    return fail("cluster-info from %s: its kubeconfig has %d clusters, want exactly one", endpoint, #clusters)
  end
  local cl = type(clusters[1].cluster) == "table" and clusters[1].cluster or {}
  local b64 = cl["certificate-authority-data"]
  if type(b64) ~= "string" or b64 == "" then
    return fail("cluster-info from %s: its cluster has no certificate-authority-data", endpoint)
  end
  local ca_pem = crypto.unbase64(b64)
  local certs = ca_pem and pki.load_certs(ca_pem)
  if not certs or #certs == 0 then
    return fail("cluster-info from %s: certificate-authority-data holds no PEM certificate", endpoint)
  end
  if type(cl.server) ~= "string" or cl.server == "" then
    return fail("cluster-info from %s: its cluster has no server", endpoint)
  end
  return kc, cl.server, ca_pem, certs
end

-- the pin that matches any certificate of the bundle, or nil, err naming the bundle's own pins
local function match_pin(pins, certs)
  local have = {}
  for _, cert in ipairs(certs) do have[#have + 1] = cert:spki_pin():lower() end
  for _, p in ipairs(pins) do
    for _, h in ipairs(have) do
      if p:lower() == h then return p end
    end
  end
  return fail("the cluster CA matches none of the %d given CA pin(s); its pin%s %s (check --discovery-token-ca-cert-hash)",
              #pins, #have > 1 and "s are" or " is", table.concat(have, ", "))
end

-- The verified re-read: the same bytes from a server whose certificate that CA signed.
local function refetch(o, ca_pem, text, st)
  local timeout = o.timeout or M.DEFAULT_TIMEOUT
  local c, cerr = http.client{ server = "https://" .. o.endpoint, ca_pem = ca_pem, retries = 0,
                               connect_timeout = math.min(10, timeout), timeout = timeout }
  if not c then return fail("cluster-info's CA: %s", tostring(cerr)) end
  local deadline = time.now() + timeout
  local cm, err
  while true do
    cm, err = get(c, deadline - time.now(), st)
    -- a certificate that CA did not sign stays so: only transport hiccups and 5xx are retried
    if cm or err.code == 60 or (err.msg or ""):find("TLS verification failed", 1, true)
       or (err.status and err.status < 500) then break end
    local left = deadline - time.now()
    if left <= 0 then break end
    time.sleep(math.min(o.interval or M.DEFAULT_INTERVAL, left))
  end
  c:close()
  if not cm then
    return fail("cluster-info from %s over TLS verified against its CA: %s", o.endpoint, err.msg)
  end
  local again = type(cm.data) == "table" and cm.data.kubeconfig
  if again ~= text then
    return fail("cluster-info from %s changed between the unverified and the verified fetch; refusing it", o.endpoint)
  end
  return true
end

-- token{ endpoint=, token=, pins=, unsafe_skip=, timeout=300, interval=1, log= }
--   -> { server, ca_pem, kubeconfig, text, pin, requests } | nil, kboot.error
function M.token(o)
  local id, secret, pins = check_token_opts(o)
  local st = { requests = 0 }
  local cm, jws = fetch_signed(o, id, st)
  if not cm then return nil, jws end
  local text = cm.data.kubeconfig
  local ok, verr = crypto.jws_verify(jws, text, id, secret)
  if not ok then
    return fail("cluster-info from %s: jws-kubeconfig-%s does not verify: wrong token secret, or cluster-info "
                .. "was changed after signing (%s)", o.endpoint, id, tostring(verr))
  end
  local kc, server, ca_pem, certs = cluster_of(text, o.endpoint)
  if not kc then return nil, server end
  local pin
  if #pins > 0 then
    local perr
    pin, perr = match_pin(pins, certs)
    if not pin then return nil, perr end
  else
    say(o.log, "warn", "the cluster CA is not verified against any pin (unsafe_skip): anyone who can answer "
        .. "for %s could have sent it", o.endpoint)
  end
  local rok, rerr = refetch(o, ca_pem, text, st)
  if not rok then return nil, rerr end
  say(o.log, "info", "cluster-info from %s verified (token %s%s): server %s", o.endpoint, id,
      pin and (", CA " .. pin) or "", server)
  return { server = server, ca_pem = ca_pem, kubeconfig = kc, text = text, pin = pin, requests = st.requests }
end

local function read_source(src)
  if src:match("^https://") then
    local host, path = src:match("^(https://[^/]+)(.*)$")
    if path == "" then path = "/" end
    local c, cerr = http.client{ server = host }
    if not c then return fail("%s: %s", src, tostring(cerr)) end
    local r, err = c:request("GET", path)
    c:close()
    if not r then return fail("cannot fetch the discovery file %s: %s", src, err.msg) end
    if r.status ~= 200 then return fail("cannot fetch the discovery file %s: HTTP %d", src, r.status) end
    return r.body
  end
  if src:match("^%a+://") then return fail("discovery file %s: only https URLs and paths are supported", src) end
  local f, err = io.open(src, "rb")
  if not f then return fail("cannot read the discovery file: %s", tostring(err)) end
  local text, rerr = f:read("a") -- a directory opens, and fails here
  f:close()
  if not text then return fail("cannot read the discovery file %s: %s", src, tostring(rerr)) end
  return text
end

-- kubeadm's GetClusterFromKubeConfig takes the cluster named "" when there is one: that is
-- cluster-info's own kubeconfig (no context, no user), the discovery file an admin gets with
-- kubectl -n kube-public get cm cluster-info -o jsonpath='{.data.kubeconfig}'. -> { server,
-- ca_pem, cluster_name = "" } | nil
local function unnamed_cluster(kc)
  for _, c in ipairs(type(kc.clusters) == "table" and kc.clusters or {}) do
    if c.name == "" and type(c.cluster) == "table" then
      local b64 = c.cluster["certificate-authority-data"]
      return { server = c.cluster.server, cluster_name = "",
               ca_pem = type(b64) == "string" and b64 ~= "" and crypto.unbase64(b64) or nil }
    end
  end
end

-- file{ source = path | https URL, tls_bootstrap_token= }
--   -> { server, ca_pem, kubeconfig, credentials = { token= } | { cert_pem=, key_pem= } } | nil, kboot.error
function M.file(o)
  if type(o) ~= "table" or type(o.source) ~= "string" or o.source == "" then misuse(2, "file: source expected") end
  if o.tls_bootstrap_token ~= nil and type(o.tls_bootstrap_token) ~= "string" then
    misuse(2, "file: tls_bootstrap_token must be a string")
  end
  local text, rerr = read_source(o.source)
  if not text then return nil, rerr end
  local kc, perr = kubeconfig.parse(text, o.source)
  if not kc then return fail("%s", tostring(perr)) end
  if #(kc.clusters or {}) == 0 then
    return fail("discovery file %s names no cluster: want the cluster's server and certificate-authority-data "
                .. "(kubectl -n kube-public get cm cluster-info -o jsonpath='{.data.kubeconfig}')", o.source)
  end
  local cur, cerr = kubeconfig.current(kc)
  local bare = unnamed_cluster(kc)
  if bare then
    -- the unnamed cluster's server and CA; credentials, if any, from the current context
    bare.user = cur and cur.user
    if cur then bare.token, bare.cert_pem, bare.key_pem = cur.token, cur.cert_pem, cur.key_pem end
    cur = bare
  end
  if not cur then return fail("%s", tostring(cerr)) end
  if type(cur.server) ~= "string" or cur.server == "" then
    return fail("discovery file %s: cluster %q has no server", o.source, cur.cluster_name)
  end
  if not cur.ca_pem or cur.ca_pem == "" then
    return fail("discovery file %s: cluster %q has no certificate-authority-data", o.source, cur.cluster_name)
  end
  local certs = pki.load_certs(cur.ca_pem)
  if not certs or #certs == 0 then
    return fail("discovery file %s: cluster %q: certificate-authority-data holds no PEM certificate", o.source, cur.cluster_name)
  end
  local creds
  if o.tls_bootstrap_token and o.tls_bootstrap_token ~= "" then  -- join_config defaults it to ""
    creds = { token = o.tls_bootstrap_token }
  elseif cur.token then
    creds = { token = cur.token }
  elseif cur.cert_pem then
    creds = { cert_pem = cur.cert_pem, key_pem = cur.key_pem }
  else
    return fail("discovery file %s: %s no credentials (token or client certificate); give a "
                .. "TLS bootstrap token (--tls-bootstrap-token)", o.source,
                cur.user and ("user %q has"):format(cur.user) or "it names no user, so")
  end
  return { server = cur.server, ca_pem = cur.ca_pem, kubeconfig = kc, credentials = creds }
end

return M

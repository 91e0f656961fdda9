-- Bootstrap tokens and the objects kubeadm v1.31 creates around them, as pure functions: token
-- checks, the bootstrap-token Secret (build and parse), kubeadm's `token list` table, the TLS
-- bootstrap RBAC objects, cluster-info and its RBAC, the kubeadm-certs Secret and the join command.
-- No API calls here: phases and `kboot token` send what these return through kboot.kube.
local crypto = require("kboot.crypto")
local yaml = require("kboot.yaml")

local M = {}

M.NAMESPACE = "kube-system"
M.SECRET_TYPE = "bootstrap.kubernetes.io/token"
M.SECRET_PREFIX = "bootstrap-token-"
M.DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"
M.DEFAULT_TTL = 24 * 3600
M.USAGES = { "signing", "authentication" }          -- bootstrapapi.KnownTokenUsages
M.CERTS_SECRET = "kubeadm-certs"
M.CERTS_TOKEN_TTL = 2 * 3600                         -- kubeadmconstants.DefaultCertTokenDuration
M.CERTS_TOKEN_DESCRIPTION = "Proxy for managing TTL for the kubeadm-certs secret"
M.NODES_GROUP = "system:nodes"

local RBAC = "rbac.authorization.k8s.io"

---------------------------------------------------------------------------------------------------
-- checks (kubeadm's messages where it has one; the token itself is never echoed)

-- parse(token) -> id, secret | nil, why
function M.parse(s)
  if type(s) ~= "string" then return nil, "a bootstrap token must be a string" end
  local id, secret = crypto.token_parse(s)
  if not id then return nil, tostring(secret) end
  return id, secret
end

-- id_of(token_or_id) -> id | nil, why  (`token delete` takes either form)
function M.id_of(s)
  if type(s) == "string" and s:match("^[a-z0-9][a-z0-9][a-z0-9][a-z0-9][a-z0-9][a-z0-9]$") then return s end
  local id = type(s) == "string" and M.parse(s)
  if id then return id end
  return nil, 'not a token ID ([a-z0-9]{6}) or a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16})'
end

-- ttl(s) -> seconds (0 = never expires) | nil, why. Go duration syntax, as kubeadm's --ttl.
function M.ttl(s)
  local secs, why = require("kboot.time").parse_duration(s)
  if not secs then return nil, why end
  if secs < 0 then return nil, ("TTL %q is negative (use 0 for a token that never expires)"):format(s) end
  return math.floor(secs)
end

local known_usage = {}
for _, u in ipairs(M.USAGES) do known_usage[u] = true end

function M.check_usages(usages)
  for _, u in ipairs(usages or {}) do
    if not known_usage[u] then
      return nil, ("invalid bootstrap token usage string: %s, valid usage options: %s"):format(u, table.concat(M.USAGES, ","))
    end
  end
  return true
end

-- bootstrapapi.BootstrapGroupPattern: \Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z
function M.check_group(g)
  local rest = type(g) == "string" and g:match("^system:bootstrappers:(.*)$")
  if not rest or #rest < 1 or #rest > 256 or not rest:match("^[a-z0-9:%-]*[a-z0-9]$") then
    return nil, ("bootstrap group %q is invalid (must match system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9])"):format(tostring(g))
  end
  return true
end

function M.check_groups(groups, usages)
  if groups and #groups > 0 then
    local auth = false
    for _, u in ipairs(usages or {}) do auth = auth or u == "authentication" end
    if not auth then return nil, 'token groups cannot be specified unless --usages includes "authentication"' end
  end
  for _, g in ipairs(groups or {}) do
    local ok, why = M.check_group(g)
    if not ok then return nil, why end
  end
  return true
end

-- validate{ token=, ttl=seconds, usages=, groups=, description= } -> true | nil, why
function M.validate(t)
  local ok, why = M.parse(t.token)
  if not ok then return nil, why end
  ok, why = M.check_usages(t.usages)
  if not ok then return nil, why end
  return M.check_groups(t.groups, t.usages)
end

---------------------------------------------------------------------------------------------------
-- time

function M.rfc3339(epoch) return os.date("!%Y-%m-%dT%H:%M:%SZ", epoch) end

-- days since 1970-01-01 for a proleptic Gregorian date (no time zone involved)
local function days(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- parse_rfc3339("2026-11-26T11:50:39Z") -> epoch | nil, why (offsets and fractions accepted, as Go)
function M.parse_rfc3339(s)
  local y, mo, d, h, mi, se, rest = tostring(s):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil, ("expiration %q is not an RFC 3339 time"):format(tostring(s)) end
  rest = rest:gsub("^%.%d+", "")
  local off = 0
  if rest ~= "Z" then
    local sign, oh, om = rest:match("^([+-])(%d%d):(%d%d)$")
    if not sign then return nil, ("expiration %q is not an RFC 3339 time"):format(s) end
    off = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and 1 or -1)
  end
  y, mo, d, h, mi, se = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(se)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or se > 60 then
    return nil, ("expiration %q is not a valid time"):format(s)
  end
  return days(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off
end

-- k8s.io/apimachinery duration.ShortHumanDuration
function M.short_duration(secs)
  if secs < -1 then return "<invalid>" elseif secs < 0 then return "0s"
  elseif secs < 60 then return ("%ds"):format(secs)
  elseif secs < 3600 then return ("%dm"):format(secs // 60)
  elseif secs < 86400 then return ("%dh"):format(secs // 3600)
  elseif secs < 86400 * 365 then return ("%dd"):format(secs // 86400) end
  return ("%dy"):format(secs // (86400 * 365))
end

---------------------------------------------------------------------------------------------------
-- the bootstrap token Secret (bootstraptoken/v1 utils.go BootstrapTokenToSecret / ...FromSecret)

function M.secret_name(id) return M.SECRET_PREFIX .. id end

-- secret{ token=, ttl=seconds | expires=epoch, usages=, groups=, description= }, now -> Secret
function M.secret(t, now)
  local id, sec = M.parse(t.token)
  if not id then error("tokens.secret: " .. sec, 2) end
  local data = { ["token-id"] = id, ["token-secret"] = sec }
  if t.description and t.description ~= "" then data.description = t.description end
  if t.expires then data.expiration = M.rfc3339(t.expires)
  elseif t.ttl and t.ttl > 0 then data.expiration = M.rfc3339((now or os.time()) + t.ttl) end
  for _, u in ipairs(t.usages or {}) do data["usage-bootstrap-" .. u] = "true" end
  if t.groups and #t.groups > 0 then data["auth-extra-groups"] = table.concat(t.groups, ",") end
  for k, v in pairs(data) do data[k] = crypto.base64(v) end
  return {
    apiVersion = "v1", kind = "Secret",
    metadata = { name = M.secret_name(id), namespace = M.NAMESPACE },
    type = M.SECRET_TYPE, data = data,
  }
end

-- from_secret(obj) -> { token=, id=, secret=, expires=epoch|nil, usages=sorted, groups=, description= } | nil, why
function M.from_secret(obj)
  local name = obj and obj.metadata and obj.metadata.name or "?"
  local function bad(why) return nil, ("Secret %s/%s: %s"):format(M.NAMESPACE, name, why) end
  if type(obj) ~= "table" or obj.type ~= M.SECRET_TYPE then return bad("not of type " .. M.SECRET_TYPE) end
  local d = {}
  for k, v in pairs(obj.data or {}) do
    local raw = crypto.unbase64(v)
    if not raw then return bad(("data key %q is not base64"):format(k)) end
    d[k] = raw
  end
  local id, sec = d["token-id"], d["token-secret"]
  if not id or not sec then return bad("no token-id or token-secret") end
  if name ~= M.secret_name(id) then return bad(("name does not match token-id %q"):format(id)) end
  local token = id .. "." .. sec
  if not M.parse(token) then return bad("token-id/token-secret do not form a valid bootstrap token") end
  local r = { token = token, id = id, secret = sec, description = d.description, usages = {}, groups = {} }
  if d.expiration then
    local e, why = M.parse_rfc3339(d.expiration)
    if not e then return bad(why) end
    r.expires = e
  end
  for k, v in pairs(d) do
    local u = k:match("^usage%-bootstrap%-(.+)$")
    if u and v == "true" then r.usages[#r.usages + 1] = u end
  end
  table.sort(r.usages)
  for g in (d["auth-extra-groups"] or ""):gmatch("[^,]+") do r.groups[#r.groups + 1] = g end
  return r
end

-- Same token, usages, groups and description, and not expired: re-sending would only move the expiry.
function M.same(have, want, now)
  if not have or have.token ~= want.token or (have.description or "") ~= (want.description or "") then return false end
  if have.expires and have.expires <= (now or os.time()) then return false end
  if (want.ttl or 0) == 0 and not want.expires and have.expires then return false end
  local function set(l) local s = {} for _, v in ipairs(l or {}) do s[#s + 1] = v end table.sort(s) return table.concat(s, ",") end
  return set(have.usages) == set(want.usages) and set(have.groups) == set(want.groups)
end

-- list_table(parsed_tokens, now) -> kubeadm's `token list` text (tabwriter minwidth 10, padding 3)
function M.list_table(list, now)
  now = now or os.time()
  local rows = { { "TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS" } }
  for _, t in ipairs(list) do
    local ttl, exp = "<forever>", "<never>"
    if t.expires then ttl, exp = M.short_duration(t.expires - now), M.rfc3339(t.expires) end
    local function none(s) return (s and s ~= "") and s or "<none>" end
    -- kubeadm pads these cells (%-9s, %-22s, %-56s) so rows flushed one by one still line up
    rows[#rows + 1] = { t.token, ("%-9s"):format(ttl), exp, ("%-22s"):format(none(table.concat(t.usages or {}, ","))),
                        ("%-56s"):format(none(t.description)), none(table.concat(t.groups or {}, ",")) }
  end
  local w = {}
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do w[i] = math.max(w[i] or 0, #c + 3, 10) end
  end
  local out = {}
  for _, r in ipairs(rows) do
    local line = {}
    for i, c in ipairs(r) do line[i] = i < #r and c .. (" "):rep(w[i] - #c) or c end
    out[#out + 1] = table.concat(line)
  end
  return table.concat(out, "\n") .. "\n"
end

---------------------------------------------------------------------------------------------------
-- RBAC (bootstraptoken/node/tlsbootstrap.go, bootstraptoken/clusterinfo/clusterinfo.go)

local function crb(name, role, kind, subject)
  return {
    apiVersion = RBAC .. "/v1", kind = "ClusterRoleBinding", metadata = { name = name },
    roleRef = { apiGroup = RBAC, kind = "ClusterRole", name = role },
    subjects = { { apiGroup = RBAC, kind = kind, name = subject } },
  }
end

-- The five objects that let bootstrap tokens join nodes, in kubeadm's order.
function M.node_rbac()
  return {
    { apiVersion = RBAC .. "/v1", kind = "ClusterRole", metadata = { name = "kubeadm:get-nodes" },
      rules = { { apiGroups = { "" }, resources = { "nodes" }, verbs = { "get" } } } },
    crb("kubeadm:get-nodes", "kubeadm:get-nodes", "Group", M.DEFAULT_GROUP),
    crb("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", "Group", M.DEFAULT_GROUP),
    crb("kubeadm:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "Group", M.DEFAULT_GROUP),
    crb("kubeadm:node-autoapprove-certificate-rotation",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "Group", M.NODES_GROUP),
  }
end

-- cluster_info_kubeconfig(server, ca_pem) -> text: the cluster entry only, named "", as clientcmd.Write
function M.cluster_info_kubeconfig(server, ca_pem)
  return yaml.encode({
    apiVersion = "v1",
    clusters = { { cluster = { ["certificate-authority-data"] = crypto.base64(ca_pem), server = server }, name = "" } },
    contexts = yaml.null, ["current-context"] = "", kind = "Config",
    preferences = setmetatable({}, yaml.map_mt), users = yaml.null,
  })
end

function M.cluster_info(server, ca_pem)
  return {
    apiVersion = "v1", kind = "ConfigMap",
    metadata = { name = "cluster-info", namespace = "kube-public" },
    data = { kubeconfig = M.cluster_info_kubeconfig(server, ca_pem) },
  }
end

M.JWS_PREFIX = "jws-kubeconfig-"                    -- bootstrapapi.JWSSignatureKeyPrefix

-- can_sign(t, now) -> true when the bootstrap signer signs cluster-info for this token: usage
-- signing, not expired (t as tokens.secret takes it, or as from_secret returns it)
function M.can_sign(t, now)
  local signing = false
  for _, u in ipairs(t.usages or {}) do signing = signing or u == "signing" end
  if not signing then return false end
  now = now or os.time()
  if t.expires then return t.expires > now end
  return true
end

-- signatures_patch(cm, toks, now) -> the merge patch that adds what cluster-info `cm` lacks: the
-- controller-manager's bootstrapsigner's detached JWS (HS256, byte for byte the same) over
-- data.kubeconfig for each token that can sign, or nil when every signature is already right.
-- kboot signs at once so a join right after init or `token create` does not wait for the signer.
function M.signatures_patch(cm, toks, now)
  local data = cm and cm.data or {}
  local text = data.kubeconfig
  if type(text) ~= "string" then return nil end
  local add, n = {}, 0
  for _, t in ipairs(toks) do
    if M.can_sign(t, now) then
      local id, sec = M.parse(t.token)
      local key = M.JWS_PREFIX .. id
      local jws = crypto.jws_sign(text, id, sec)
      if data[key] ~= jws then add[key], n = jws, n + 1 end
    end
  end
  if n == 0 then return nil end
  return { data = add }
end

function M.cluster_info_rbac()
  local name = "kubeadm:bootstrap-signer-clusterinfo"
  return {
    { apiVersion = RBAC .. "/v1", kind = "Role", metadata = { name = name, namespace = "kube-public" },
      rules = { { apiGroups = { "" }, resourceNames = { "cluster-info" }, resources = { "configmaps" }, verbs = { "get" } } } },
    { apiVersion = RBAC .. "/v1", kind = "RoleBinding", metadata = { name = name, namespace = "kube-public" },
      roleRef = { apiGroup = RBAC, kind = "Role", name = name },
      subjects = { { apiGroup = RBAC, kind = "User", name = "system:anonymous" } } },
  }
end

---------------------------------------------------------------------------------------------------
-- upload-certs (copycerts/copycerts.go)

-- certs_to_upload(cluster) -> { { name = "ca.crt", path = "/etc/kubernetes/pki/ca.crt" }, ... }
function M.certs_to_upload(cluster)
  local dir = cluster.certificatesDir or "/etc/kubernetes/pki"
  local out = {}
  for _, n in ipairs({ "ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub" }) do
    out[#out + 1] = { name = n, path = dir .. "/" .. n }
  end
  local ext = cluster.etcd and cluster.etcd.external
  if ext then
    for n, f in pairs({ ["external-etcd-ca.crt"] = ext.caFile, ["external-etcd.crt"] = ext.certFile,
                        ["external-etcd.key"] = ext.keyFile }) do
      if f and f ~= "" then out[#out + 1] = { name = n, path = f } end
    end
  else
    out[#out + 1] = { name = "etcd-ca.crt", path = dir .. "/etcd/ca.crt" }
    out[#out + 1] = { name = "etcd-ca.key", path = dir .. "/etcd/ca.key" }
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- The short-lived token that owns kubeadm-certs: no usages, no groups, 2 h.
function M.certs_token(token)
  return { token = token or crypto.token(), ttl = M.CERTS_TOKEN_TTL, description = M.CERTS_TOKEN_DESCRIPTION,
           usages = {}, groups = {} }
end

-- owner_ref(secret_obj) -> metav1.NewControllerRef of a bootstrap token Secret (needs its uid)
function M.owner_ref(owner)
  return { apiVersion = "v1", kind = "Secret", name = owner.metadata.name, uid = owner.metadata.uid,
           controller = true, blockOwnerDeletion = true }
end

-- certs_secret(files{name=plaintext}, key_hex, owner_secret) -> Secret kube-system/kubeadm-certs
function M.certs_secret(files, key_hex, owner)
  local key = crypto.unhex(key_hex or "")
  if not key or #key ~= 32 then error("tokens.certs_secret: the certificate key must be 64 hex characters", 2) end
  local data = {}
  -- an empty entry names a file the uploading node does not have (an external CA's key), as kubeadm's
  for name, plain in pairs(files) do data[name] = plain == "" and "" or crypto.base64(crypto.aes_gcm_seal(key, plain)) end
  return {
    apiVersion = "v1", kind = "Secret", type = "Opaque",
    metadata = { name = M.CERTS_SECRET, namespace = M.NAMESPACE, ownerReferences = owner and { M.owner_ref(owner) } or nil },
    data = data,
  }
end

-- open_certs_secret(secret, key_hex) -> { name = plaintext } | nil, why (what `join --control-plane` does)
function M.open_certs_secret(secret, key_hex)
  local key = crypto.unhex(key_hex or "")
  if not key or #key ~= 32 then return nil, "the certificate key must be 64 hex characters" end
  local data = type(secret) == "table" and secret.data
  if data ~= nil and type(data) ~= "table" then return nil, "kubeadm-certs: data is not a mapping" end
  local out = {}
  for name, v in pairs(data or {}) do
    if type(name) ~= "string" or type(v) ~= "string" then
      return nil, ("kubeadm-certs: data[%q] is not a string"):format(tostring(name))
    end
    if v == "" then
      out[name] = "" -- a file the uploader did not have: kubeadm's empty entry
    else
      local blob = crypto.unbase64(v)
      if not blob then return nil, ("kubeadm-certs: %s is not base64"):format(name) end
      local plain, err = crypto.aes_gcm_open(key, blob)
      if not plain then return nil, ("kubeadm-certs: cannot decrypt %s: %s (wrong certificate key?)"):format(name, tostring(err)) end
      out[name] = plain
    end
  end
  return out
end

function M.certs_rbac()
  local name = "kubeadm:kubeadm-certs"
  return {
    { apiVersion = RBAC .. "/v1", kind = "Role", metadata = { name = name, namespace = M.NAMESPACE },
      rules = { { apiGroups = { "" }, resourceNames = { M.CERTS_SECRET }, resources = { "secrets" }, verbs = { "get" } } } },
    { apiVersion = RBAC .. "/v1", kind = "RoleBinding", metadata = { name = name, namespace = M.NAMESPACE },
      roleRef = { apiGroup = RBAC, kind = "Role", name = name },
      subjects = { { apiGroup = RBAC, kind = "Group", name = M.DEFAULT_GROUP } } },
  }
end

---------------------------------------------------------------------------------------------------
-- join command (cmd/util/join.go)

-- join_command{ endpoint="host:port", token=, hashes={"sha256:..."}, control_plane=, certificate_key=,
--               program="kboot" } -> text with kubeadm's line breaks
function M.join_command(o)
  local parts = { ("%s join %s --token %s"):format(o.program or "kboot", o.endpoint, o.token) }
  for _, h in ipairs(o.hashes or {}) do parts[#parts + 1] = "--discovery-token-ca-cert-hash " .. h end
  if o.control_plane then
    local cp = "--control-plane"
    if o.certificate_key then cp = cp .. " --certificate-key " .. o.certificate_key end
    parts[#parts + 1] = cp
  end
  return table.concat(parts, " \\\n\t")
end

-- endpoint and CA pins from a kubeconfig table (its current context), as kubeadm's GetJoinWorkerCommand
function M.join_params(kc)
  local cur, err = require("kboot.kubeconfig").current(kc)
  if not cur then return nil, err end
  if not cur.ca_pem then return nil, "the kubeconfig's cluster has no certificate-authority data" end
  local pki = require("kboot.pki")
  local hashes = {}
  for pem in cur.ca_pem:gmatch("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-.-%-%-%-%-%-END CERTIFICATE%-%-%-%-%-") do
    local pin, perr = pki.spki_pin(pem)
    if not pin then return nil, "CA certificate: " .. tostring(perr) end
    hashes[#hashes + 1] = pin
  end
  if #hashes == 0 then return nil, "the kubeconfig's CA data holds no certificate" end
  return { endpoint = (cur.server:gsub("^https://", "")), hashes = hashes, server = cur.server, ca_pem = cur.ca_pem }
end

return M

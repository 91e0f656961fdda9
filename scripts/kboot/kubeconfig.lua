-- kboot.kubeconfig: build, encode, write and load kubeconfig files, and make an http client
-- for a kubeconfig's current context. The shape is exactly what kubeadm writes
-- (CreateWithCerts / CreateWithToken): one cluster, one context "<user>@<cluster>", one user.
local yaml = require("kboot.yaml")
local fs = require("kboot.fs")
local crypto = require("kboot.crypto")
local http = require("kboot.http")
local kerror = require("kboot.error")

local M = {}

-- Where a parsed table came from, for messages and relative file references; weak keys, so
-- the table stays a plain table (encode writes exactly what is in it).
local origin = setmetatable({}, { __mode = "k" })
-- The name parse was given (a discovery file's path or URL, "cluster-info"): for messages only.
local names = setmetatable({}, { __mode = "k" })

local function fail(src, fmt, ...)
  return nil, kerror.new("kubeconfig", ("kubeconfig%s: " .. fmt):format(src and " " .. src or "", ...))
end

local function empty_map()
  return setmetatable({}, yaml.map_mt)
end

local function check_string(o, k, required)
  local v = o[k]
  if v == nil and not required then return nil end
  if type(v) ~= "string" or v == "" then
    error(("kubeconfig.build: option '%s' must be a non-empty string"):format(k), 3)
  end
  return v
end

-- build{ cluster_name, server, ca_pem, user, context, cert_pem + key_pem | token | cert_file + key_file }
function M.build(o)
  if type(o) ~= "table" then error("kubeconfig.build: options table expected", 2) end
  local cluster = check_string(o, "cluster_name") or "kubernetes"
  local server = check_string(o, "server", true)
  local ca = check_string(o, "ca_pem", true)
  local user = check_string(o, "user") or "kubernetes-admin"
  local context = check_string(o, "context") or (user .. "@" .. cluster)
  local cert, key, token = check_string(o, "cert_pem"), check_string(o, "key_pem"), check_string(o, "token")
  local cert_file, key_file = check_string(o, "cert_file"), check_string(o, "key_file")
  local auth = {}
  if cert or key then
    if not (cert and key) then error("kubeconfig.build: cert_pem and key_pem go together", 2) end
    auth["client-certificate-data"] = crypto.base64(cert)
    auth["client-key-data"] = crypto.base64(key)
  end
  if cert_file or key_file then -- kubelet.conf after TLS bootstrap points at rotated files
    if not (cert_file and key_file) then error("kubeconfig.build: cert_file and key_file go together", 2) end
    auth["client-certificate"] = cert_file
    auth["client-key"] = key_file
  end
  if token then auth.token = token end
  local kinds = (cert and 1 or 0) + (cert_file and 1 or 0) + (token and 1 or 0)
  if kinds ~= 1 then
    error("kubeconfig.build: exactly one of cert_pem/key_pem, cert_file/key_file or token is needed", 2)
  end
  return {
    apiVersion = "v1",
    clusters = { { name = cluster, cluster = { ["certificate-authority-data"] = crypto.base64(ca), server = server } } },
    contexts = { { name = context, context = { cluster = cluster, user = user } } },
    ["current-context"] = context,
    kind = "Config",
    preferences = empty_map(),
    users = { { name = user, user = auth } },
  }
end

-- YAML as kubectl and kubeadm write it: keys sorted at every level.
function M.encode(t)
  if type(t) ~= "table" then error("kubeconfig.encode: table expected", 2) end
  if type(t.preferences) == "table" and next(t.preferences) == nil and getmetatable(t.preferences) == nil then
    local c = {} -- an empty table is ambiguous; preferences is a mapping: "{}", never "[]"
    for k, v in pairs(t) do c[k] = v end
    c.preferences = empty_map()
    t = c
  end
  return yaml.encode(t)
end

-- Atomic write, mode 0600, through kboot.fs (root prefix, dry-run aware).
-- Returns true, "written" | "unchanged" (as fs.write), or nil, err.
function M.write(path, t)
  if type(path) ~= "string" then error("kubeconfig.write: path expected", 2) end
  return fs.write(path, M.encode(t), "0600", { mkdir = true })
end

-- Structure checks; returns t or nil, err naming the field.
local function validate(t, src)
  if type(t) ~= "table" or #t > 0 or (yaml.array_mt and getmetatable(t) == yaml.array_mt) then
    return fail(src, "not a YAML mapping")
  end
  if t.kind ~= nil and t.kind ~= "Config" then return fail(src, 'kind is "%s", not "Config"', tostring(t.kind)) end
  if t.apiVersion ~= nil and t.apiVersion ~= "v1" then
    return fail(src, 'apiVersion is "%s", not "v1"', tostring(t.apiVersion))
  end
  local lists = { clusters = "cluster", contexts = "context", users = "user" }
  for _, list in ipairs({ "clusters", "contexts", "users" }) do
    local l = t[list]
    -- "users: null" (clientcmd writes it for cluster-info) is an empty list
    if l == yaml.null then l, t[list] = nil, nil end
    if l ~= nil and type(l) ~= "table" then return fail(src, "%s must be a list", list) end
    for i, item in ipairs(l or {}) do
      if type(item) ~= "table" then return fail(src, "%s[%d] must be a mapping", list, i) end
      -- a name may be "" (client-go allows it; cluster-info's one cluster is named so), not absent
      if type(item.name) ~= "string" then return fail(src, "%s[%d]: missing name", list, i) end
      local body = item[lists[list]]
      if body == nil and list ~= "users" then return fail(src, '%s "%s": missing %s', list:sub(1, -2), item.name, lists[list]) end
      if body ~= nil and type(body) ~= "table" then return fail(src, '%s "%s": %s must be a mapping', list:sub(1, -2), item.name, lists[list]) end
    end
  end
  for _, c in ipairs(t.clusters or {}) do
    if type(c.cluster.server) ~= "string" or c.cluster.server == "" then
      return fail(src, 'cluster "%s": missing server', c.name)
    end
  end
  local cur = t["current-context"]
  if cur ~= nil and type(cur) ~= "string" then return fail(src, "current-context must be a string") end
  return t
end

-- parse(text [, name]) -> t or nil, err. name (a path) is used in messages.
function M.parse(text, name)
  if type(text) ~= "string" then error("kubeconfig.parse: string expected", 2) end
  local t, err = yaml.decode(text)
  if t == nil and err ~= nil then return fail(name, "%s", tostring(err)) end
  local ok, verr = validate(t, name)
  if ok and name then names[t] = name end
  return ok, verr
end

function M.load(path)
  if type(path) ~= "string" then error("kubeconfig.load: path expected", 2) end
  -- a path the admin gave may be one kboot.fs refuses (relative, a ".." escaping the root): its
  -- error, not a raise
  local okp, perr = pcall(fs.path, path)
  if not okp then return fail(path, "%s", (tostring(perr):match("%((.*)%)$") or tostring(perr))) end
  local text, err = fs.read(path)
  if not text then
    -- fs says "cannot read PATH: why"; the line names the path once, as console's does
    local msg = type(err) == "table" and err.msg or tostring(err)
    local head = "cannot read " .. path .. ": "
    if msg:sub(1, #head) == head then msg = "cannot read it: " .. msg:sub(#head + 1) end
    return fail(path, "%s", msg)
  end
  local t, perr = M.parse(text, path)
  if t then origin[t] = path end
  return t, perr
end

local function find(list, name)
  for _, item in ipairs(list or {}) do
    if item.name == name then return item end
  end
end

-- A file named in the kubeconfig; relative paths are relative to the kubeconfig's directory.
-- label: what messages call the kubeconfig (default src, its path).
local function read_ref(src, path, field, label)
  label = label or src
  if path:sub(1, 1) ~= "/" then
    if not src then return fail(label, "%s: relative path \"%s\" needs the kubeconfig's location (use load)", field, path) end
    path = src:match("^(.*)/[^/]*$") .. "/" .. path
  end
  local data, err = fs.read(path)
  if not data then return fail(label, "%s: %s", field, tostring(err)) end
  return data
end

-- Inline *-data (base64) or a file reference; nil when neither is set.
local function material(src, obj, data_key, file_key, where, label)
  label = label or src
  if obj[data_key] ~= nil then
    if type(obj[data_key]) ~= "string" then return fail(label, "%s.%s must be a string", where, data_key) end
    local v, err = crypto.unbase64(obj[data_key])
    if not v then return fail(label, "%s.%s: %s", where, data_key, tostring(err)) end
    return v
  end
  if obj[file_key] ~= nil then
    if type(obj[file_key]) ~= "string" then return fail(label, "%s.%s must be a string", where, file_key) end
    return read_ref(src, obj[file_key], where .. "." .. file_key, label)
  end
  return false
end

-- current(t) -> { server, ca_pem, cert_pem, key_pem, token, insecure, cluster_name, user, context }
function M.current(t)
  if type(t) ~= "table" then error("kubeconfig.current: table expected", 2) end
  -- messages name the file, or what parse was told it is; relative references need a loaded file
  local src = origin[t]
  local label = src or names[t]
  local ok, err = validate(t, label)
  if not ok then return nil, err end
  local name = t["current-context"]
  local function fail_(fmt, ...) return fail(label, fmt, ...) end
  if not name or name == "" then return fail_("no current-context") end
  local ctx = find(t.contexts, name)
  if not ctx then return fail_('context "%s" not found', name) end
  local cname, uname = ctx.context.cluster, ctx.context.user
  if type(cname) ~= "string" then return fail_('context "%s": missing cluster', name) end
  local cl = find(t.clusters, cname)
  if not cl then return fail_('cluster "%s" (of context "%s") not found', cname, name) end
  local u = { }
  if uname ~= nil then
    if type(uname) ~= "string" then return fail_('context "%s": user must be a string', name) end
    local item = find(t.users, uname)
    if not item then return fail_('user "%s" (of context "%s") not found', uname, name) end
    u = item.user or {}
  end
  local r = { server = cl.cluster.server, cluster_name = cname, user = uname, context = name,
              insecure = cl.cluster["insecure-skip-tls-verify"] == true or nil }
  local where = ('cluster "%s"'):format(cname)
  local v, e = material(src, cl.cluster, "certificate-authority-data", "certificate-authority", where, label)
  if v == nil then return nil, e end
  r.ca_pem = v or nil
  if r.insecure and r.ca_pem then -- client-go refuses this pair: the CA would be ignored silently
    return fail_('cluster "%s": insecure-skip-tls-verify: true together with %s is refused (as client-go refuses it): remove one of them',
      cname, cl.cluster["certificate-authority-data"] ~= nil and "certificate-authority-data" or "certificate-authority")
  end
  where = ('user "%s"'):format(uname)
  v, e = material(src, u, "client-certificate-data", "client-certificate", where, label)
  if v == nil then return nil, e end
  r.cert_pem = v or nil
  v, e = material(src, u, "client-key-data", "client-key", where, label)
  if v == nil then return nil, e end
  r.key_pem = v or nil
  if (r.cert_pem == nil) ~= (r.key_pem == nil) then
    return fail_("%s: a client certificate needs its key and the key its certificate", where)
  end
  if u.token ~= nil then
    if type(u.token) ~= "string" then return fail_("%s.token must be a string", where) end
    r.token = u.token
  elseif u.tokenFile ~= nil then
    v, e = read_ref(src, u.tokenFile, where .. ".tokenFile", label)
    if not v then return nil, e end
    r.token = v:match("^%s*(.-)%s*$")
  end
  return r
end

-- client(t_or_path, http_opts) -> kboot.http client for the current context, or nil, err.
function M.client(t, opts)
  if type(t) == "string" then
    local err
    t, err = M.load(t)
    if not t then return nil, err end
  elseif type(t) ~= "table" then
    error("kubeconfig.client: kubeconfig table or path expected", 2)
  end
  local cur, err = M.current(t)
  if not cur then return nil, err end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.server, o.ca_pem, o.cert_pem, o.key_pem, o.token = cur.server, cur.ca_pem, cur.cert_pem, cur.key_pem, cur.token
  if cur.insecure then o.insecure = true end
  local ok, c, cerr = pcall(http.client, o)
  if not ok then -- a bad server URL is an argument error for http, a data error here
    return fail(origin[t] or names[t], 'cluster "%s": %s', cur.cluster_name, (tostring(c):gsub("^.-%((.*)%)$", "%1")))
  end
  if not c then return fail(origin[t] or names[t], 'cluster "%s": %s', cur.cluster_name, tostring(cerr)) end
  return c
end

return M

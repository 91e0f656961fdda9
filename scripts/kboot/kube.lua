-- A small Kubernetes API client on kboot.http: get, list (selectors, `continue` pages), create,
-- server-side apply, patch, delete, wait_for, watch. Paths come from a table of the resources kboot
-- uses (no discovery round-trips). Bodies go out as YAML (lua-cjson 2.1 cannot write an empty JSON
-- array; the API server reads YAML for create and apply), responses come back as JSON.
-- Errors are one line: "<verb> <Kind> <ns>/<name>: <status> <reason>: <message>".
local http = require("kboot.http")
local kubeconfig = require("kboot.kubeconfig")
local yaml = require("kboot.yaml")
local kerror = require("kboot.error")
local log = require("kboot.log")
local cjson = require("cjson.safe")

local M = {}

-- [apiVersion][Kind] = { plural, namespaced }
local RESOURCES = {
  v1 = {
    Namespace = { "namespaces", false }, Node = { "nodes", false }, PersistentVolume = { "persistentvolumes", false },
    Pod = { "pods", true }, Service = { "services", true }, ServiceAccount = { "serviceaccounts", true },
    ConfigMap = { "configmaps", true }, Secret = { "secrets", true }, Endpoints = { "endpoints", true },
    Event = { "events", true }, PersistentVolumeClaim = { "persistentvolumeclaims", true },
  },
  ["apps/v1"] = {
    Deployment = { "deployments", true }, DaemonSet = { "daemonsets", true },
    StatefulSet = { "statefulsets", true }, ReplicaSet = { "replicasets", true },
  },
  ["rbac.authorization.k8s.io/v1"] = {
    Role = { "roles", true }, RoleBinding = { "rolebindings", true },
    ClusterRole = { "clusterroles", false }, ClusterRoleBinding = { "clusterrolebindings", false },
  },
  ["coordination.k8s.io/v1"] = { Lease = { "leases", true } },
  ["certificates.k8s.io/v1"] = { CertificateSigningRequest = { "certificatesigningrequests", false } },
  ["policy/v1"] = { PodDisruptionBudget = { "poddisruptionbudgets", true } },
  ["policy/v1beta1"] = { PodDisruptionBudget = { "poddisruptionbudgets", true } },
  ["apiextensions.k8s.io/v1"] = { CustomResourceDefinition = { "customresourcedefinitions", false } },
  ["authorization.k8s.io/v1"] = { SelfSubjectAccessReview = { "selfsubjectaccessreviews", false } },
  ["discovery.k8s.io/v1"] = { EndpointSlice = { "endpointslices", true } },
  ["discovery.k8s.io/v1beta1"] = { EndpointSlice = { "endpointslices", true } },
}
M.RESOURCES = RESOURCES

-- Adds a resource kboot does not know (a CRD, say): kube.register("example.com/v1", "Foo", "foos", true).
function M.register(api_version, kind, plural, namespaced)
  RESOURCES[api_version] = RESOURCES[api_version] or {}
  RESOURCES[api_version][kind] = { plural, namespaced and true or false }
end

local function resource(api_version, kind)
  if type(api_version) ~= "string" or type(kind) ~= "string" then
    error("kube: apiVersion and kind must be strings", 3)
  end
  local r = RESOURCES[api_version] and RESOURCES[api_version][kind]
  if not r then
    error(("kube: unknown resource %s %s (add it with kube.register)"):format(api_version, kind), 3)
  end
  return r[1], r[2]
end

-- The URL path of a collection (name nil) or an object. A namespaced kind without a namespace is
-- the all-namespaces collection; it cannot name an object.
function M.path(api_version, kind, ns, name)
  local plural, namespaced = resource(api_version, kind)
  local p = api_version == "v1" and "/api/v1" or ("/apis/" .. api_version)
  if namespaced and ns then p = p .. "/namespaces/" .. ns
  elseif namespaced and name then error(("kube: %s %q needs a namespace"):format(kind, name), 2) end
  p = p .. "/" .. plural
  if name then p = p .. "/" .. name end
  return p
end

function M.not_found(err) return type(err) == "table" and err.status == 404 end
function M.conflict(err) return type(err) == "table" and err.status == 409 end
function M.already_exists(err) return type(err) == "table" and err.reason == "AlreadyExists" end

local function what(kind, ns, name)
  local id = name and ((ns and (ns .. "/") or "") .. name) or (ns or "all namespaces")
  return kind .. " " .. id
end

-- The reason client-go gives a status code when the body is not a Status object.
M.REASONS = { [400] = "BadRequest", [401] = "Unauthorized", [403] = "Forbidden", [404] = "NotFound",
              [405] = "MethodNotAllowed", [406] = "NotAcceptable", [409] = "Conflict", [410] = "Expired",
              [413] = "RequestEntityTooLarge", [415] = "UnsupportedMediaType", [422] = "Invalid",
              [429] = "TooManyRequests", [500] = "InternalError", [503] = "ServiceUnavailable", [504] = "Timeout" }
function M.reason(status) return M.REASONS[status] or (status >= 500 and "InternalError" or "Unknown") end

-- status(err) -> the Kubernetes Status in an http error's body, or nil
function M.status(err)
  local st = type(err) == "table" and err.body and cjson.decode(err.body)
  if type(st) == "table" and st.kind == "Status" then return st end
end

-- One line from an http error: a Kubernetes Status gives its code, reason and message.
local function api_error(verb, kind, ns, name, err)
  local head = verb .. " " .. what(kind, ns, name)
  -- no status, or a 2xx whose body did not decode (the binding's own message says so)
  if type(err) ~= "table" or not err.status or err.status < 400 then
    local msg = type(err) == "table" and err.msg or tostring(err)
    return kerror.new(verb, head .. ": " .. msg, { code = type(err) == "table" and err.code or nil, msg = head .. ": " .. msg })
  end
  local st = M.status(err)
  local reason, message
  if st then
    reason = type(st.reason) == "string" and st.reason ~= "" and st.reason or nil
    message = type(st.message) == "string" and st.message or nil
  end
  reason = reason or M.reason(err.status)
  if not message then message = err.body and err.body:gsub("%s+", " "):sub(1, 200) or "" end
  local msg = ("%s: %d %s: %s"):format(head, err.status, reason or "", message)
  return kerror.new(verb, msg, { msg = msg, status = err.status, reason = reason,
                                 details = st and st.details or nil })
end

local Client = {}
Client.__index = Client

-- source: a kubeconfig path, a kubeconfig table, or a kboot.http client.
-- opts: dry_run, timeout (30), retries, retry_deadline, connect_timeout, field_manager ("kboot").
function M.new(source, opts)
  opts = opts or {}
  local self = setmetatable({ dry_run = opts.dry_run and true or false, recorded = {},
                              field_manager = opts.field_manager or "kboot" }, Client)
  local c, err
  if type(source) == "userdata" then
    c = source
  elseif type(source) == "string" or type(source) == "table" then
    c, err = kubeconfig.client(source, { timeout = opts.timeout or 30, retries = opts.retries,
                                         retry_deadline = opts.retry_deadline, connect_timeout = opts.connect_timeout })
    -- a dry run needs no server: init --dry-run has not written the kubeconfig it would use
    if not c and not self.dry_run then return nil, err end
  elseif source ~= nil or not self.dry_run then
    error("kube.new: expected a kubeconfig path or table, or a kboot.http client", 2)
  end
  self.http = c
  return self
end

function Client:stats()
  if not self.http then return { requests = 0, connects = 0, retries = 0 } end
  return self.http:stats()
end

function Client:close()
  if self.http and self.http.close then self.http:close() end
  self.http = nil
end

local DRY = { status = 404, reason = "NotFound", dry_run = true }

local function send(self, verb, kind, ns, name, method, path, body, o)
  if not self.http then
    return nil, kerror.new(verb, verb .. " " .. what(kind, ns, name) .. ": dry run: nothing is sent", DRY)
  end
  local res, err = self.http:json(method, path, body, o)
  if res == nil then return nil, api_error(verb, kind, ns, name, err) end
  -- every answer kboot reads is an object (a resource, a list, a Status): a number, a string or
  -- a JSON list would be indexed further on
  if type(res) ~= "table" or #res > 0 then
    local msg = ("%s %s: the answer is not a JSON object (%s %s)"):format(verb, what(kind, ns, name), method, path)
    return nil, kerror.new(verb, msg, { msg = msg })
  end
  return res
end

local function record(self, verb, obj, extra)
  self.recorded[#self.recorded + 1] = obj
  local m = type(obj) == "table" and obj.metadata or {}
  log.info("dryrun", "Would %s %s %s", verb, obj.kind or "?", what("", m.namespace, m.name or "?"):sub(2))
  io.stdout:write(extra or yaml.encode(obj, { order = { "apiVersion", "kind", "metadata" } }), "---\n")
  return obj
end

local function meta(obj, verb)
  if type(obj) ~= "table" then error("kube: " .. verb .. ": expected an object table", 3) end
  local m = obj.metadata
  if type(m) ~= "table" or type(m.name) ~= "string" then error("kube: " .. verb .. ": object has no metadata.name", 3) end
  return obj.apiVersion, obj.kind, m.namespace, m.name
end

function Client:get(api_version, kind, ns, name)
  if type(name) ~= "string" then error("kube: get: name must be a string", 2) end
  local path = M.path(api_version, kind, ns, name)
  if self.dry_run then return nil, kerror.new("get", "get " .. what(kind, ns, name) .. ": dry run", DRY) end
  return send(self, "get", kind, ns, name, "GET", path)
end

-- Every item of the collection, following `continue` pages; the last page's list metadata second.
-- opts: label_selector, field_selector, limit (page size).
function Client:list(api_version, kind, ns, opts)
  opts = opts or {}
  local path = M.path(api_version, kind, ns)
  if self.dry_run then return setmetatable({}, yaml.array_mt), {} end
  local items, query = setmetatable({}, yaml.array_mt), {
    labelSelector = opts.label_selector, fieldSelector = opts.field_selector, limit = opts.limit }
  while true do
    local page, err = send(self, "list", kind, ns, nil, "GET", path, nil, { query = query })
    if not page then return nil, err end
    if page.items ~= nil and type(page.items) ~= "table" then
      local msg = ("list %s: the answer's items is not a list (GET %s)"):format(what(kind, ns), path)
      return nil, kerror.new("list", msg, { msg = msg })
    end
    for _, it in ipairs(page.items or {}) do items[#items + 1] = it end
    local cont = page.metadata and page.metadata["continue"]
    if type(cont) ~= "string" or cont == "" then return items, page.metadata or {} end
    query["continue"] = cont
  end
end

function Client:create(obj)
  local av, kind, ns, name = meta(obj, "create")
  local path = M.path(av, kind, ns)
  if self.dry_run then return record(self, "create", obj) end
  return send(self, "create", kind, ns, name, "POST", path, yaml.encode(obj), { content_type = "application/yaml" })
end

-- Does the live object already say everything `want` says? Maps: every key of want equal in live;
-- lists: same length, element by element; an empty table, null, false, 0 or "" in want matches a
-- missing field (the server drops empty and zero values). Server-normalised values (quantities, say) just compare unequal.
local function covers(want, live, path)
  path = path or ""
  if want == cjson.null or (type(want) == "table" and next(want) == nil) then
    if live == nil or live == cjson.null or (type(live) == "table" and next(live) == nil) then return true end
    return false, path
  end
  if type(want) ~= "table" then
    if want == live then return true end
    -- Go's omitempty: false, 0 and "" are not stored (readOnly: false comes back absent)
    if live == nil and (want == false or want == 0 or want == "") then return true end
    return false, path
  end
  if type(live) ~= "table" then return false, path end
  if #want > 0 or getmetatable(want) == yaml.array_mt then
    if #want ~= #live then return false, path end
    for i = 1, #want do
      local ok, at = covers(want[i], live[i], ("%s[%d]"):format(path, i - 1))
      if not ok then return false, at end
    end
    return true
  end
  for k, v in pairs(want) do
    local ok, at = covers(v, live[k], path .. "." .. tostring(k))
    if not ok then return false, at end
  end
  return true
end
M.covers = covers

-- Server-side apply: kboot owns the fields it sends; force takes them over from other managers.
-- An object that already says everything obj says is left alone (one GET, no write): re-running
-- init then changes nothing even where an apiserver would rewrite managedFields on a no-op apply
-- (1.20 does after a controller's update). opts.always = true sends the apply regardless.
function Client:apply(obj, opts)
  opts = opts or {}
  local av, kind, ns, name = meta(obj, "apply")
  local path = M.path(av, kind, ns, name)
  if self.dry_run then return record(self, "apply", obj) end
  if not opts.always then
    local live = self.http and self.http:json("GET", path)
    if type(live) == "table" then
      local m = obj.metadata
      local rest = {}
      for k, v in pairs(obj) do if k ~= "metadata" then rest[k] = v end end
      -- secrets: stringData comes back as data
      if kind == "Secret" and type(obj.stringData) == "table" then rest.stringData = nil end
      local same, at = covers(rest, live)
      if same then
        same, at = covers({ labels = m.labels, annotations = m.annotations, ownerReferences = m.ownerReferences },
                          { labels = live.metadata.labels, annotations = live.metadata.annotations,
                            ownerReferences = live.metadata.ownerReferences }, ".metadata")
      end
      if not same then log.debug("kube", "apply %s: differs at %s", what(kind, ns, name), tostring(at)) end
      if same and kind == "Secret" and type(obj.stringData) == "table" then
        local b64 = require("kboot.crypto").base64
        for k, v in pairs(obj.stringData) do
          if type(live.data) ~= "table" or live.data[k] ~= b64(v) then same = false end
        end
      end
      if same then
        log.debug("kube", "apply %s: unchanged", what(kind, ns, name))
        return live
      end
    end
  end
  local force = opts.force
  if force == nil then force = true end
  return send(self, "apply", kind, ns, name, "PATCH", path, yaml.encode(obj), {
    content_type = "application/apply-patch+yaml",
    query = { fieldManager = opts.field_manager or self.field_manager, force = force } })
end

local PATCH_TYPES = {
  strategic = "application/strategic-merge-patch+json",
  merge = "application/merge-patch+json",
  json = "application/json-patch+json",
}

-- patch: a table (encoded as JSON) or a JSON string.
function Client:patch(api_version, kind, ns, name, patch, ptype)
  local ct = PATCH_TYPES[ptype or "strategic"]
  if not ct then error(("kube: patch: type %q is not strategic, merge or json"):format(tostring(ptype)), 2) end
  if type(name) ~= "string" then error("kube: patch: name must be a string", 2) end
  if type(patch) ~= "table" and type(patch) ~= "string" then error("kube: patch: patch must be a table or a string", 2) end
  local path = M.path(api_version, kind, ns, name)
  if self.dry_run then
    local rec = { apiVersion = api_version, kind = kind, metadata = { name = name, namespace = ns }, patch = patch,
                  patchType = ptype or "strategic" }
    record(self, "patch", rec)
    return rec
  end
  local body = patch
  if type(patch) == "table" then
    local err
    body, err = cjson.encode(patch)
    if not body then error("kube: patch: " .. tostring(err), 2) end
  end
  return send(self, "patch", kind, ns, name, "PATCH", path, body, { content_type = ct })
end

-- true when gone (404 counts as done).
function Client:delete(api_version, kind, ns, name)
  if type(name) ~= "string" then error("kube: delete: name must be a string", 2) end
  local path = M.path(api_version, kind, ns, name)
  if self.dry_run then
    record(self, "delete", { apiVersion = api_version, kind = kind, metadata = { name = name, namespace = ns } })
    return true
  end
  local res, err = send(self, "delete", kind, ns, name, "DELETE", path)
  if res or M.not_found(err) then return true end
  return nil, err
end

-- Deletes each object of a list (what a component's render returned); stops at the first error.
function Client:delete_all(objects)
  for _, obj in ipairs(objects) do
    local ok, err = self:delete(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name)
    if not ok then return nil, err end
  end
  return true
end

-- one clock and one sleep for every wait (kboot.time: monotonic, no fork of /bin/sleep)
local now = require("kboot.time").now
M.now = now

function M.sleep(s) require("kboot.time").sleep(s) end

-- Calls fn() until it returns a value (not nil/false) or timeout_s passes; fn returns nil, why
-- while waiting. The timeout error carries the last why.
function Client:wait_for(fn, timeout_s, interval_s)
  timeout_s, interval_s = timeout_s or 60, interval_s or 1
  local deadline, why = now() + timeout_s, nil
  while true do
    local v, w = fn()
    if v then return v end
    why = w or why
    if now() + interval_s > deadline then break end
    M.sleep(interval_s)
  end
  return nil, kerror.new("wait", ("timed out after %gs waiting: %s"):format(timeout_s, tostring(why or "condition not met")),
                         { timeout = true, why = why })
end

local function integers(v, depth)
  if depth > 64 then return v end
  for k, x in pairs(v) do
    if type(x) == "table" then integers(x, depth + 1)
    elseif math.type(x) == "float" then v[k] = math.tointeger(x) or x end
  end
  return v
end

-- Streams watch events: fn(type, obj) for ADDED/MODIFIED/DELETED/BOOKMARK; fn returns false to stop.
-- opts: label_selector, field_selector, name (a field selector on metadata.name), resource_version,
-- timeout_seconds (server side end), timeout (client side, seconds). An ERROR event (a Status, e.g.
-- 410 Gone for an expired resourceVersion) ends the watch with nil, err.
function Client:watch(api_version, kind, ns, opts, fn)
  opts = opts or {}
  if type(fn) ~= "function" then error("kube: watch: fn must be a function", 2) end
  local path = M.path(api_version, kind, ns)
  if not self.http then return nil, kerror.new("watch", "watch " .. what(kind, ns, opts.name) .. ": dry run", DRY) end
  local fsel = opts.field_selector
  if opts.name then fsel = (fsel and (fsel .. ",") or "") .. "metadata.name=" .. opts.name end
  local query = { watch = 1, labelSelector = opts.label_selector, fieldSelector = fsel,
                  resourceVersion = opts.resource_version, timeoutSeconds = opts.timeout_seconds,
                  allowWatchBookmarks = opts.bookmarks }
  local buf, stop_err = "", nil
  local ok, err = self.http:stream("GET", path, { query = query, timeout = opts.timeout }, function(chunk)
    buf = buf .. chunk
    while true do
      local nl = buf:find("\n", 1, true)
      if not nl then return true end
      local line = buf:sub(1, nl - 1)
      buf = buf:sub(nl + 1)
      if line:find("%S") then
        local ev = cjson.decode(line)
        if type(ev) ~= "table" or type(ev.type) ~= "string" then
          stop_err = kerror.new("watch", ("watch %s: bad event line: %s"):format(what(kind, ns, opts.name), line:sub(1, 200)))
          return false
        end
        integers(ev, 0)
        if ev.type == "ERROR" then
          local st = ev.object or {}
          local msg = ("watch %s: %s %s: %s"):format(what(kind, ns, opts.name), tostring(st.code or "?"),
                                                      tostring(st.reason or ""), tostring(st.message or ""))
          stop_err = kerror.new("watch", msg, { msg = msg, status = st.code, reason = st.reason })
          return false
        end
        if fn(ev.type, ev.object) == false then return false end
      end
    end
  end)
  if stop_err then return nil, stop_err end
  if not ok then return nil, api_error("watch", kind, ns, opts.name, err) end
  return true
end

return M

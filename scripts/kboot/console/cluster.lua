-- The cluster as tables: nodes(), pods(), events(), components(), and watch(). Each returns rows
-- (kboot.rows): plain tables of data (times as epoch seconds, ages as seconds) that the REPL shows
-- as a table, for a script to read field by field.
local http = require("kboot.http")
local pki = require("kboot.pki")
local pretty = require("kboot.pretty")
local rows = require("kboot.rows")
local kerror = require("kboot.error")
local tokens = require("kboot.tokens")
local node = require("kboot.console.node")
local connect = require("kboot.console.connect")

local M = {}

local function epoch(ts)
  return type(ts) == "string" and tokens.parse_rfc3339(ts) or nil
end

local function age_of(meta, now)
  local t = epoch(meta and meta.creationTimestamp)
  return t and (now - t) or nil
end

local duration = function(v) return pretty.duration(v) end
local expiry = function(v) return pretty.expiry(v - os.time()) end

local function client()
  local k, err = connect.client()
  if not k then return nil, err end
  return k
end

---------------------------------------------------------------------------------------------------
-- nodes

local function condition(obj, type_)
  for _, c in ipairs(obj.status and obj.status.conditions or {}) do
    if c.type == type_ then return c end
  end
end

-- The kubelet's client certificate expiry, where this machine can see it: the node this root is
-- (kubelet.conf's certificate): name -> epoch.
local function kubelet_cert_expiry()
  local mine, cert = node.node_name()
  return mine and cert and { [mine] = cert:info().not_after } or {}
end

local NODE_COLUMNS = { "name", "status", "roles", "version", { "age", format = duration }, { "taints", flex = true },
                       "internal_ip", { "kubelet_cert", title = "KUBELET-CERT", format = expiry }, { "reason", flex = true } }

-- nodes() -> rows { name, ready (true|false|nil: unknown), status, roles, version, age, taints,
-- internal_ip, kubelet_cert (epoch, this node only), reason (why not Ready) }
function M.nodes()
  local k, err = client()
  if not k then return nil, err end
  local items, lerr = k:list("v1", "Node")
  if not items then return nil, lerr end
  local now, out, kubelet_cert = os.time(), {}, kubelet_cert_expiry()
  for _, n in ipairs(items) do
    local m = n.metadata or {}
    local r = { name = m.name, roles = {}, taints = {}, age = age_of(m, now) }
    local ready = condition(n, "Ready")
    if ready and ready.status == "True" then r.ready = true
    elseif ready and ready.status == "False" then r.ready = false end
    r.status = r.ready == true and "Ready" or r.ready == false and "NotReady" or "Unknown"
    if n.spec and n.spec.unschedulable then r.status = r.status .. ",SchedulingDisabled" end
    if ready and ready.status ~= "True" then
      r.reason = ((ready.reason or "") .. ": " .. (ready.message or "")):gsub("^: ", "")
    elseif not ready then
      r.reason = "no Ready condition: no kubelet has reported for this node"
    end
    for label in pairs(m.labels or {}) do
      local role = label:match("^node%-role%.kubernetes%.io/(.+)$")
      if role then r.roles[#r.roles + 1] = role end
    end
    table.sort(r.roles)
    for _, t in ipairs(n.spec and n.spec.taints or {}) do
      r.taints[#r.taints + 1] = t.key .. (t.value and t.value ~= "" and ("=" .. t.value) or "") .. ":" .. (t.effect or "")
    end
    for _, a in ipairs(n.status and n.status.addresses or {}) do
      if a.type == "InternalIP" and not r.internal_ip then r.internal_ip = a.address end
    end
    r.version = n.status and n.status.nodeInfo and n.status.nodeInfo.kubeletVersion
    if r.version == "" then r.version = nil end
    r.kubelet_cert = kubelet_cert[m.name]
    out[#out + 1] = r
  end
  return rows.rows(out, NODE_COLUMNS, { level = function(r) return r.ready ~= true and "error" or nil end })
end

---------------------------------------------------------------------------------------------------
-- pods

-- kubectl's STATUS: a waiting or terminated container's reason over the phase.
local function pod_status(p)
  if p.metadata and p.metadata.deletionTimestamp then return "Terminating" end
  local st = p.status or {}
  local reason = st.reason
  for _, cs in ipairs(st.containerStatuses or {}) do
    local s = cs.state or {}
    if s.waiting and s.waiting.reason then reason = s.waiting.reason
    elseif s.terminated and s.terminated.reason and not reason then reason = s.terminated.reason end
  end
  return reason or st.phase or "Unknown"
end

local POD_COLUMNS = { "namespace", "name", "ready", "status", "restarts", { "age", format = duration }, "node" }

-- pods([ns]) -> rows { namespace, name, ready ("1/1"), status, restarts, age, node, ip }; ns nil:
-- every namespace.
function M.pods(ns)
  local k, err = client()
  if not k then return nil, err end
  local items, lerr = k:list("v1", "Pod", ns)
  if not items then return nil, lerr end
  local now, out = os.time(), {}
  for _, p in ipairs(items) do
    local m, st = p.metadata or {}, p.status or {}
    local ready, total, restarts = 0, #((p.spec or {}).containers or {}), 0
    for _, cs in ipairs(st.containerStatuses or {}) do
      if cs.ready then ready = ready + 1 end
      restarts = restarts + (cs.restartCount or 0)
    end
    out[#out + 1] = { namespace = m.namespace, name = m.name, ready = ("%d/%d"):format(ready, total),
                      status = pod_status(p), restarts = restarts, age = age_of(m, now),
                      node = p.spec and p.spec.nodeName, ip = st.podIP }
  end
  table.sort(out, function(a, b)
    if a.namespace ~= b.namespace then return (a.namespace or "") < (b.namespace or "") end
    return (a.name or "") < (b.name or "")
  end)
  local cols = POD_COLUMNS
  if ns then cols = { table.unpack(POD_COLUMNS, 2) } end
  return rows.rows(out, cols, { level = function(r)
    if r.status == "Running" or r.status == "Succeeded" or r.status == "Completed" then return nil end
    return r.status == "Pending" and "warn" or "error"
  end })
end

---------------------------------------------------------------------------------------------------
-- events

local EVENT_COLUMNS = { { "last_seen", title = "LAST-SEEN", format = duration }, "type", "reason", { "object", flex = true },
                        { "message", flex = true }, "count" }

-- events([ns]) -> rows { last_seen (seconds ago), type, reason, object ("Pod/name"), message,
-- count, namespace, time (epoch) }, the most recent first; Warnings are highlighted.
function M.events(ns)
  local k, err = client()
  if not k then return nil, err end
  local items, lerr = k:list("v1", "Event", ns)
  if not items then return nil, lerr end
  local now, out = os.time(), {}
  for _, e in ipairs(items) do
    local m, io = e.metadata or {}, e.involvedObject or {}
    local t = epoch(e.lastTimestamp) or epoch(e.eventTime) or epoch(e.firstTimestamp) or epoch(m.creationTimestamp)
    out[#out + 1] = { namespace = m.namespace, time = t, last_seen = t and (now - t), type = e.type, reason = e.reason,
                      object = (io.kind or "?") .. "/" .. (io.name or "?"), message = e.message, count = e.count or 1 }
  end
  table.sort(out, function(a, b) return (a.time or 0) > (b.time or 0) end)
  local cols = EVENT_COLUMNS
  if not ns then cols = { EVENT_COLUMNS[1], "namespace", table.unpack(EVENT_COLUMNS, 2) } end
  return rows.rows(out, cols, { level = function(r) return r.type == "Warning" and "warn" or nil end })
end

---------------------------------------------------------------------------------------------------
-- components

-- The failing checks of a verbose /livez or /readyz answer: "[-]etcd failed: reason withheld".
local function failing_checks(body)
  local out = {}
  for line in (body or ""):gmatch("[^\n]+") do
    local name = line:match("^%[%-%]([^%s]+)")
    if name then out[#out + 1] = line:sub(4) end
  end
  return out
end

local function apiserver_row()
  local r = { name = "kube-apiserver" }
  local k, err = client()
  if not k then
    r.status, r.detail = "down", tostring(err)
    return r
  end
  r.endpoint = connect.state.cur.server
  local problems = {}
  for _, ep in ipairs({ "/livez", "/readyz" }) do
    local resp, rerr = k.http:request("GET", ep, { query = { verbose = true }, retries = 0, timeout = 10 })
    if not resp then
      r.status = "down"
      r.detail = tostring(select(2, require("kboot.console.tls").transport_error(r.endpoint, ep, rerr)))
      return r
    end
    if resp.status == 404 and ep == "/livez" then resp = k.http:request("GET", "/healthz", { retries = 0, timeout = 10 }) or resp end
    if resp.status ~= 200 then
      local failing = failing_checks(resp.body)
      problems[#problems + 1] = ("%s %d%s"):format(ep, resp.status, #failing > 0 and (": " .. table.concat(failing, "; "))
        or (": " .. (resp.body or ""):sub(1, 120):gsub("%s+", " ")))
    end
  end
  r.status = #problems == 0 and "ok" or "unhealthy"
  r.detail = #problems == 0 and "/livez and /readyz: ok" or table.concat(problems, "; ")
  return r
end

-- Who holds the component's leader-election Lease and how long ago it renewed it.
local function lease_of(name)
  local k = connect.state.kube
  if not k then return nil end
  local l = k:get("coordination.k8s.io/v1", "Lease", "kube-system", name)
  if not l or not l.spec then return nil end
  local renewed = epoch(l.spec.renewTime)
  return ("leader %s, renewed %s ago"):format(tostring(l.spec.holderIdentity), renewed and pretty.duration(os.time() - renewed) or "?")
end

-- controller-manager and scheduler: GET /healthz on their secure port, as the kubelet's probe does
-- (no credentials: /healthz is anonymous; their serving certificate is self-signed, so it is not
-- verified: nothing but the status is trusted).
local function secure_row(name)
  local r = { name = name }
  local url, src, proc = node.health_url(name)
  if not url then
    r.status, r.detail = "unknown", tostring(src)
    return r
  end
  r.endpoint = url
  local origin, path = url:match("^(https://[^/]+)(.*)$")
  local c = assert(http.client({ server = origin, insecure = true, retries = 0, timeout = 5, connect_timeout = 3 }))
  local resp, err = c:request("GET", path)
  c:close()
  local lease = lease_of(name)
  if resp and resp.status == 200 then
    r.status = "ok"
    r.detail = ("/healthz: %s (%s)%s"):format((resp.body or ""):sub(1, 40), src, lease and ("; " .. lease) or "")
  elseif resp then
    r.status = "unhealthy"
    r.detail = ("/healthz %d: %s"):format(resp.status, (resp.body or ""):sub(1, 160):gsub("%s+", " "))
  else
    r.status = "down"
    local why = require("kboot.console.tls").step_of(err) == "tcp" and "connection refused" or tostring(err)
    if not proc then
      why = ("%s; no %s process runs from this node's files (%s)"):format(why, name, node.MANIFESTS .. "/" .. name .. ".yaml")
    else
      why = ("%s; pid %d runs but does not answer there"):format(why, proc.pid)
    end
    r.detail = why .. (lease and ("; " .. lease) or "")
  end
  return r
end

local function etcd_row()
  local r = { name = "etcd" }
  local etcd = require("kboot.console.etcd")
  local h, herr = etcd.health()
  if not h then
    r.status, r.detail = "down", tostring(herr)
    return r
  end
  r.endpoint = h[1] and h[1].endpoint
  local bad = {}
  for _, e in ipairs(h) do if not e.healthy then bad[#bad + 1] = e.endpoint .. ": " .. tostring(e.error) end end
  local st = etcd.status()
  local leader = st and st[1] and st[1].leader_name or (st and st[1] and st[1].leader)
  r.status = #bad == 0 and "ok" or #bad == #h and "down" or "unhealthy"
  r.detail = (#bad == 0 and ("%d member(s) healthy"):format(#h) or table.concat(bad, "; "))
    .. (leader and ("; leader " .. leader) or "")
  local e = node.etcd()
  if r.status == "down" and e and e["local"] and not node.process("etcd") then
    r.detail = ("%s; no etcd process runs from this node's files (%s)"):format(r.detail, node.MANIFESTS .. "/etcd.yaml")
  end
  return r
end

local COMPONENT_COLUMNS = { "name", "status", "endpoint", { "detail", flex = true } }

-- components() -> rows { name, status ("ok" | "unhealthy" | "down" | "unknown"), endpoint, detail }
-- for kube-apiserver (/livez and /readyz, the failing checks named), kube-controller-manager and
-- kube-scheduler (/healthz on their secure ports; why when down) and etcd (health, leader).
function M.components()
  local out = { apiserver_row(), secure_row("kube-controller-manager"), secure_row("kube-scheduler"), etcd_row() }
  return rows.rows(out, COMPONENT_COLUMNS, { level = function(r) return r.status ~= "ok" and "error" or nil end })
end

---------------------------------------------------------------------------------------------------
-- watch

local WATCHED = {
  pods = { "v1", "Pod" }, nodes = { "v1", "Node" }, events = { "v1", "Event" }, services = { "v1", "Service" },
  configmaps = { "v1", "ConfigMap" }, secrets = { "v1", "Secret" }, namespaces = { "v1", "Namespace" },
  deployments = { "apps/v1", "Deployment" }, daemonsets = { "apps/v1", "DaemonSet" },
  leases = { "coordination.k8s.io/v1", "Lease" },
}

-- watch(what [, ns [, { timeout = seconds, out = file }]]) -> number of events seen | nil, err:
-- prints one line per change ("MODIFIED Pod kube-system/etcd-node: Running") until the server ends
-- the watch, timeout passes, or Ctrl-C. what: "pods", "nodes", "events", ... or { apiVersion, Kind }.
function M.watch(what, ns, o)
  o = o or {}
  local r = type(what) == "table" and what or WATCHED[what]
  if not r then
    local names = {}
    for n in pairs(WATCHED) do names[#names + 1] = n end
    table.sort(names)
    error(("watch: what is one of %s, or { apiVersion, Kind }"):format(table.concat(names, ", ")), 2)
  end
  local k, err = client()
  if not k then return nil, err end
  local out, n = o.out or io.stdout, 0
  local ok, werr = k:watch(r[1], r[2], ns, { timeout_seconds = o.timeout }, function(type_, obj)
    n = n + 1
    local m = obj.metadata or {}
    local extra = ""
    if r[2] == "Pod" then extra = ": " .. pod_status(obj)
    elseif r[2] == "Event" then extra = (": %s %s"):format(tostring(obj.reason), tostring(obj.message))
    elseif r[2] == "Node" then
      local c = condition(obj, "Ready")
      extra = ": Ready=" .. tostring(c and c.status)
    end
    out:write(("%s %s %s%s\n"):format(type_, r[2], (m.namespace and (m.namespace .. "/") or "") .. tostring(m.name), extra))
    out:flush()
  end)
  if not ok then return nil, werr end
  return n
end

M.pod_status = pod_status
M.failing_checks = failing_checks
return M

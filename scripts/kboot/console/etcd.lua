-- etcd as the console shows it: members(), health(), status() over etcd's v3 JSON gateway with
-- mutual TLS, as the API server reaches it (kboot.console.node.etcd: local etcd with the
-- healthcheck-client certificate, or the API server's --etcd-* flags for an external one).
local fs = require("kboot.fs")
local http = require("kboot.http")
local pretty = require("kboot.pretty")
local rows = require("kboot.rows")
local kerror = require("kboot.error")
local em = require("kboot.etcd_members")
local cjson = require("cjson.safe")
local node = require("kboot.console.node")

local M = {}

-- Where etcd is and the credentials for it: { urls, ca_pem, cert_pem, key_pem } | nil, err.
-- o: { urls =, ca =, cert =, key = } (paths on the node) override what the node says.
function M.target(o)
  o = o or {}
  local e, err = node.etcd()
  if not e and not o.urls then return nil, err end
  e = e or {}
  local t = { urls = o.urls or e.urls }
  if type(t.urls) == "string" then t.urls = { t.urls } end
  if not t.urls or #t.urls == 0 then return nil, kerror.new("etcd", "no etcd client URL found (give one: etcd.members{ urls = ... })") end
  for _, k in ipairs({ "ca", "cert", "key" }) do
    local path = o[k] or e[k]
    if not path then return nil, kerror.new("etcd", ("no etcd %s file known (give one: { %s = path })"):format(k, k)) end
    local pem, rerr = fs.read(path)
    if not pem then return nil, kerror.new("etcd", tostring(rerr)) end
    t[k .. "_pem"] = pem
  end
  return t
end

local function client(o)
  local t, err = M.target(o)
  if not t then return nil, err end
  return em.client({ urls = t.urls, ca_pem = t.ca_pem, cert_pem = t.cert_pem, key_pem = t.key_pem,
                     timeout = 5, connect_timeout = 3, retries = 0, retry_deadline = 0 }), t
end

local MEMBER_COLUMNS = { "id", "name", "peer_urls", "client_urls", "learner" }

-- members([o]) -> rows { id (hex, as etcdctl prints it), id_decimal, name, peer_urls, client_urls,
-- learner } in etcd's order.
function M.members(o)
  local c, err = client(o)
  if not c then return nil, err end
  local list, lerr = em.list(c)
  c:close()
  if not list then return nil, lerr end
  local out = {}
  for i, m in ipairs(list) do
    out[i] = { id = em.hex_id(m.id), id_decimal = m.id, name = m.name, peer_urls = m.peer_urls,
               client_urls = m.client_urls, learner = m.learner }
  end
  return rows.rows(out, MEMBER_COLUMNS)
end

-- The endpoints to ask: every member's client URLs when the list can be read, else the node's.
local function endpoints(t)
  local seen, out = {}, {}
  local c = em.client({ urls = t.urls, ca_pem = t.ca_pem, cert_pem = t.cert_pem, key_pem = t.key_pem,
                        timeout = 5, connect_timeout = 3, retries = 0, retry_deadline = 0 })
  local list = c and em.list(c)
  if c then c:close() end
  for _, m in ipairs(list or {}) do
    for _, u in ipairs(m.client_urls) do if not seen[u] then seen[u] = true; out[#out + 1] = { url = u, name = m.name } end end
  end
  -- a member's advertised URL may not be reachable from here (another network): the node's own
  for _, u in ipairs(t.urls) do
    if #out == 0 or not seen[u] then
      if not seen[u] then seen[u] = true; out[#out + 1] = { url = u } end
    end
  end
  return out, list
end

local function ask(t, url, method, path, body)
  local c, err = http.client({ server = url, ca_pem = t.ca_pem, cert_pem = t.cert_pem, key_pem = t.key_pem,
                               retries = 0, timeout = 5, connect_timeout = 3 })
  if not c then return nil, err end
  local t0 = require("kboot.time").now()
  local got, gerr = c:json(method, path, body)
  local took = require("kboot.time").now() - t0
  c:close()
  return got, gerr, took
end

local HEALTH_COLUMNS = { "endpoint", "name", "healthy", { "took", format = function(v) return ("%.1f ms"):format(v * 1000) end },
                         { "error", flex = true } }

-- health([o]) -> rows { endpoint, name, healthy, took (seconds), error } per endpoint (etcd's
-- GET /health, which needs a quorum read to say true).
function M.health(o)
  local t, err = M.target(o)
  if not t then return nil, err end
  local out = {}
  for _, ep in ipairs((endpoints(t))) do
    local got, gerr, took = ask(t, ep.url, "GET", "/health")
    local r = { endpoint = ep.url, name = ep.name, took = took }
    if got then
      r.healthy = got.health == "true" or got.health == true
      if not r.healthy then r.error = got.reason or cjson.encode(got) end
    else
      r.healthy, r.error = false, tostring(gerr)
    end
    out[#out + 1] = r
  end
  return rows.rows(out, HEALTH_COLUMNS, { level = function(r) return not r.healthy and "error" or nil end })
end

local function uint(v) return v ~= nil and (math.tointeger(tonumber(v)) or tostring(v)) or nil end

local STATUS_COLUMNS = { "endpoint", "name", "version", { "db_size", title = "DB-SIZE", format = function(v)
  if type(v) ~= "number" then return tostring(v) end
  if v >= 1048576 then return ("%.1f MB"):format(v / 1048576) end
  return ("%.1f kB"):format(v / 1024)
end }, "is_leader", { "leader", format = function(v, row) return row.leader_name or v end }, "raft_term", "raft_index",
  { "errors", flex = true } }

-- status([o]) -> rows { endpoint, name, id, version, db_size (bytes), db_size_in_use, leader (hex id),
-- leader_name, is_leader, raft_term, raft_index, raft_applied_index, errors } per endpoint
-- (POST /v3/maintenance/status, what `etcdctl endpoint status` shows).
function M.status(o)
  local t, err = M.target(o)
  if not t then return nil, err end
  local eps, list = endpoints(t)
  local names = {}
  for _, m in ipairs(list or {}) do names[em.hex_id(m.id)] = m.name end
  local out = {}
  for _, ep in ipairs(eps) do
    local got, gerr = ask(t, ep.url, "POST", "/v3/maintenance/status", {})
    local r = { endpoint = ep.url, name = ep.name }
    if got then
      local h = got.header or {}
      r.id = h.member_id and em.hex_id(tostring(h.member_id)) or nil
      r.version = got.version
      r.db_size, r.db_size_in_use = uint(got.dbSize), uint(got.dbSizeInUse)
      r.leader = got.leader and em.hex_id(tostring(got.leader)) or nil
      r.leader_name = r.leader and names[r.leader]
      r.is_leader = r.id ~= nil and r.id == r.leader
      r.raft_term, r.raft_index, r.raft_applied_index = uint(got.raftTerm), uint(got.raftIndex), uint(got.raftAppliedIndex)
      r.errors = got.errors
      r.name = r.name or (r.id and names[r.id])
    else
      r.errors = { tostring(gerr) }
    end
    out[#out + 1] = r
  end
  return rows.rows(out, STATUS_COLUMNS, { level = function(r)
    return (not r.version or (r.errors and #r.errors > 0)) and "error" or nil
  end })
end

return M

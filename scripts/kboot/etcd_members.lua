-- etcd cluster membership for a control-plane join and for reset, as kubeadm's util/etcd does it
-- (AddMemberAsLearner, MemberPromote, RemoveMember), over etcd's v3 JSON gateway with mutual TLS.
-- Member ids are uint64: the gateway sends them as JSON strings and they stay decimal strings
-- here (a Lua integer would turn the upper half negative, a float would round them).
local http = require("kboot.http")
local time = require("kboot.time")
local kerror = require("kboot.error")
local json = require("cjson.safe")

local M = {}
local OP = "etcd"
M.DEFAULT_TIMEOUT = 120        -- kubeadm's timeouts.etcdAPICall (2m)
M.POLL_INTERVAL = 0.5  -- the longest wait between two tries
M.FIRST_POLL = 0.05    -- the first one: a new member catches up in tens of ms; doubled up to POLL_INTERVAL
M.NOT_IN_SYNC = "can only promote a learner member which is in sync with leader"
M.NOT_LEARNER = "can only promote a learner member"
M.NOT_FOUND = "member not found"

local function misuse(fmt, ...) error("etcd_members: " .. fmt:format(...), 3) end

-- An id as a decimal string of a uint64, or nil.
local MAX = "18446744073709551615"
local function norm_id(v)
  if math.type(v) == "integer" and v >= 0 then return tostring(v) end
  if type(v) ~= "string" or not v:match("^%d+$") then return nil end
  v = v:gsub("^0+(%d)", "%1")
  if #v > #MAX or (#v == #MAX and v > MAX) then return nil end
  return v
end

-- "1b96f5b0f5ec7f4f": the id as etcdctl and kubeadm's logs print it.
function M.hex_id(id)
  local s = norm_id(id)
  if not s then misuse("hex_id: member id (decimal string) expected, got %s", tostring(id)) end
  local n = 0
  for d in s:gmatch("%d") do n = n * 10 + tonumber(d) end -- wraps modulo 2^64, as uint64 does
  return ("%x"):format(n)
end

local function describe(m)
  if m.name and m.name ~= "" then return ("%s (%s)"):format(m.name, M.hex_id(m.id)) end
  return M.hex_id(m.id)
end

local function member(raw)
  return {
    id = norm_id(raw.ID) or tostring(raw.ID),
    name = raw.name or "",
    peer_urls = raw.peerURLs or {},
    client_urls = raw.clientURLs or {},
    learner = raw.isLearner == true,
  }
end

local function members(raw)
  local out = {}
  for i, m in ipairs(raw or {}) do out[i] = member(m) end
  return out
end

-- What etcd said ("etcdserver: member not found") when it answered with an error status.
local function etcd_message(err)
  if type(err) ~= "table" or not err.status then return nil end
  local body = type(err.body) == "string" and json.decode(err.body)
  if type(body) == "table" then return body.error or body.message end
  return nil
end

local CLIENT_OPTS = { "timeout", "connect_timeout", "retries", "retry_deadline" }

-- client{ urls = {"https://10.0.0.1:2379", ...} (or one string), ca_pem, cert_pem, key_pem,
-- timeout = 10, connect_timeout = 5, retries = 2, retry_deadline = 15 } -> client | nil, err.
-- Requests go to the first endpoint that answers; an HTTP error from etcd is an answer.
function M.client(o)
  if type(o) ~= "table" then misuse("client: options table expected") end
  local urls = type(o.urls) == "string" and { o.urls } or o.urls
  if type(urls) ~= "table" or #urls == 0 then misuse("client: urls (list of https://host:port) expected") end
  for _, k in ipairs({ "ca_pem", "cert_pem", "key_pem" }) do
    if type(o[k]) ~= "string" then misuse("client: %s (PEM string) expected", k) end
  end
  local c = { urls = {}, https = {}, opts = { timeout = 10, connect_timeout = 5, retries = 2, retry_deadline = 15 } }
  for _, k in ipairs(CLIENT_OPTS) do if o[k] ~= nil then c.opts[k] = o[k] end end
  for i, u in ipairs(urls) do
    if type(u) ~= "string" or not u:match("^https?://[^/]+$") then
      misuse("client: urls[%d]: https://host:port expected, got %s", i, tostring(u))
    end
    local h, err = http.client({ server = u, ca_pem = o.ca_pem, cert_pem = o.cert_pem, key_pem = o.key_pem,
      timeout = c.opts.timeout, connect_timeout = c.opts.connect_timeout, retries = c.opts.retries,
      retry_deadline = c.opts.retry_deadline })
    if not h then
      for _, x in ipairs(c.https) do x:close() end
      return nil, kerror.new(OP, ("etcd client for %s: %s"):format(u, tostring(err)))
    end
    c.urls[i], c.https[i] = u, h
  end
  return setmetatable(c, { __index = { close = M.close }, __close = function(self) M.close(self) end })
end

function M.close(c)
  for _, h in ipairs(c.https) do h:close() end
  c.https = {}
end

-- POST path with body to the first endpoint that answers -> decoded | nil, err (err.etcd: etcd's
-- own message when it answered with an error).
local function call(c, what, path, body)
  if #c.https == 0 then misuse("%s: the client is closed", what) end
  local last, answered
  for i, h in ipairs(c.https) do
    local got, err = h:json("POST", path, body)
    if got then return got end
    if err.status then
      local said = etcd_message(err)
      answered = kerror.new(OP, ("etcd %s at %s: etcd answered %d: %s"):format(what, c.urls[i], err.status,
        said or tostring(err.msg)), { status = err.status, etcd = said })
      -- a 5xx (no leader, timed out; kboot.http retried it already): maybe another member can
      if err.status < 500 then return nil, answered end
    else
      last, answered = err, nil
    end
  end
  if answered then return nil, answered end
  local n = #c.https
  return nil, kerror.new(OP, ("etcd %s: %s%s"):format(what, tostring(last and last.msg or last),
    n > 1 and (" (no answer from any of %d endpoints)"):format(n) or ""), { code = last and last.code })
end

-- list(c) -> { { id=, name=, peer_urls=, client_urls=, learner= }, ... } in etcd's order (by id)
function M.list(c)
  local got, err = call(c, "member list", "/v3/cluster/member/list", {})
  if not got then return nil, err end
  return members(got.members)
end

-- The member one of whose peer URLs is peer_url, or nil.
function M.find(list, peer_url)
  for _, m in ipairs(list) do
    for _, u in ipairs(m.peer_urls) do if u == peer_url then return m end end
  end
  return nil
end

-- Worth another try: a 5xx (no leader, "unhealthy cluster" while a new member is not yet
-- connected long enough), or a failure kboot.http itself retries (connect, timeout, send/recv,
-- empty reply, HTTP/2; curl codes). Not TLS: a wrong CA or a refused client certificate stays so.
local RETRY_CODES = { [7] = true, [28] = true, [55] = true, [56] = true, [52] = true, [18] = true,
                      [16] = true, [92] = true }
local function transient(err)
  if err.status then return err.status >= 500 end
  local msg = tostring(err.msg or "")
  if msg:find("client certificate", 1, true) or msg:find("TLS verification failed", 1, true) then return false end
  return RETRY_CODES[err.code] == true
end

-- poll(timeout, fn, failed): calls fn() (waiting FIRST_POLL, doubled each time up to POLL_INTERVAL, between calls) until it returns a non-nil first
-- value (returned), or nil, err, false (err returned), or timeout seconds passed after
-- nil, err, true; then one line: failed() .. " within Ns: last error: " .. etcd's message.
local function poll(timeout, fn, failed)
  local deadline = time.now() + timeout
  local last, interval = nil, M.FIRST_POLL
  while true do
    local tick = time.now() + interval
    interval = math.min(interval * 2, M.POLL_INTERVAL)
    local r = table.pack(fn())
    if r[1] ~= nil then return table.unpack(r, 1, r.n) end
    if not r[3] then return nil, r[2] end
    last = r[2]
    if time.now() >= deadline then break end
    time.sleep(math.min(tick, deadline) - time.now())
  end
  local why = last and (last.etcd or last.msg) or "no answer"
  return nil, kerror.new(OP, ("%s within %gs: last error: %s"):format(failed(), timeout, tostring(why)),
    { etcd = last and last.etcd, status = last and last.status, timeout = true })
end

-- add_learner(c, name, peer_url [, timeout]) -> member, members, existed | nil, err.
-- A member with that peer URL already there (a re-run) is returned with existed = true and
-- nothing is added; the list is read before every add attempt, so an add whose answer was lost
-- is found, not repeated. name is not sent: etcd learns it when the member starts; it is what
-- initial_cluster uses for the new member meanwhile. Transient failures are retried until
-- timeout (DEFAULT_TIMEOUT) seconds.
function M.add_learner(c, name, peer_url, timeout)
  if type(name) ~= "string" or name == "" then misuse("add_learner: name expected") end
  if type(peer_url) ~= "string" or not peer_url:match("^https?://[^/]+$") then
    misuse("add_learner: peer URL https://host:port expected, got %s", tostring(peer_url))
  end
  return poll(timeout or M.DEFAULT_TIMEOUT, function()
    local list, err = M.list(c)
    if not list then return nil, err, transient(err) end
    local m = M.find(list, peer_url)
    if m then return m, list, true end
    local got
    got, err = call(c, "member add " .. peer_url, "/v3/cluster/member/add", { peerURLs = { peer_url }, isLearner = true })
    if got then return member(got.member), members(got.members), false end
    -- lost a race with another add of the same URL (etcd 3.4 says "member ID already exist" for
    -- the same URL within a second, "Peer URLs already exists" later): the next list finds it
    if err.etcd and err.etcd:find("already exist", 1, true) then return nil, err, true end
    return nil, err, transient(err)
  end, function() return ("etcd learner %s (%s) was not added"):format(peer_url, name) end)
end

-- initial_cluster(members, self_name, self_peer_url) -> "name=url,..." | nil, err: kubeadm's
-- --initial-cluster for a joining member: etcd's member order, the joining member (found by its
-- peer URL) named self_name, another member without a name yet named by its hex id, each member's
-- first peer URL.
function M.initial_cluster(list, self_name, self_peer_url)
  if type(list) ~= "table" then misuse("initial_cluster: member list expected") end
  if type(self_name) ~= "string" or self_name == "" then misuse("initial_cluster: self name expected") end
  if type(self_peer_url) ~= "string" then misuse("initial_cluster: self peer URL expected") end
  local parts, self_seen = {}, false
  for _, m in ipairs(list) do
    if M.find({ m }, self_peer_url) then
      parts[#parts + 1] = self_name .. "=" .. self_peer_url
      self_seen = true
    else
      local url = m.peer_urls[1]
      if not url then
        return nil, kerror.new(OP, ("etcd member %s has no peer URL"):format(describe(m)))
      end
      parts[#parts + 1] = (m.name ~= "" and m.name or M.hex_id(m.id)) .. "=" .. url
    end
  end
  if not self_seen then
    return nil, kerror.new(OP, ("the etcd member list has no member with peer URL %s; add it first"):format(self_peer_url))
  end
  return table.concat(parts, ",")
end

local function check_id(what, id)
  local s = norm_id(id)
  if not s then misuse("%s: member id (decimal string) expected, got %s", what, tostring(id)) end
  return s
end

local function by_id(list, id)
  for _, m in ipairs(list) do if m.id == id then return m end end
  return nil
end

-- promote(c, id [, timeout]) -> true, already | nil, err. Retries while etcd says the learner is
-- not in sync yet (or is not reachable), every POLL_INTERVAL, until timeout seconds
-- (DEFAULT_TIMEOUT) have passed. A member that is a voter already gives true, true.
function M.promote(c, id, timeout)
  id = check_id("promote", id)
  local who = M.hex_id(id)
  local function gone(said)
    return nil, kerror.new(OP, ("etcd member %s not found; cannot promote it"):format(who), { etcd = said }), false
  end
  return poll(timeout or M.DEFAULT_TIMEOUT, function()
    local list, err = M.list(c)
    if not list then return nil, err, transient(err) end
    local m = by_id(list, id)
    if not m then return gone(M.NOT_FOUND) end
    who = describe(m)
    if not m.learner then return true, true end
    local got
    got, err = call(c, "member promote " .. who, "/v3/cluster/member/promote", { ID = id })
    if got then return true, false end
    local said = err.etcd or ""
    if said:find(M.NOT_IN_SYNC, 1, true) then return nil, err, true end
    if said:find(M.NOT_LEARNER, 1, true) then return true, true end -- promoted meanwhile by another
    if said:find(M.NOT_FOUND, 1, true) then return gone(said) end
    return nil, err, transient(err)
  end, function() return ("etcd learner %s was not promoted"):format(who) end)
end

-- remove(c, id [, timeout]) -> true, removed | nil, err. A member that is not there gives
-- true, false. Transient failures (etcd refuses to remove a voter while the others have not
-- been connected for 5 s: "unhealthy cluster", a 503) are retried until timeout seconds.
function M.remove(c, id, timeout)
  id = check_id("remove", id)
  local who = M.hex_id(id)
  return poll(timeout or M.DEFAULT_TIMEOUT, function()
    local got, err = call(c, "member remove " .. who, "/v3/cluster/member/remove", { ID = id })
    if got then return true, true end
    if err.etcd and err.etcd:find(M.NOT_FOUND, 1, true) then return true, false end
    return nil, err, transient(err)
  end, function() return ("etcd member %s was not removed"):format(who) end)
end

return M

-- The remove-etcd-member phase of `kboot reset`: this node's member leaves the etcd cluster,
-- through etcd's v3 JSON gateway at this node's own client URL (from its etcd manifest, so no API
-- server is needed) with this node's etcd client certificate (healthcheck-client, the one
-- kubeadm's etcd client uses). Skipped with a note when this is the only member or etcd is
-- external. On failure the error carries the exact etcdctl command that finishes the job from
-- another control-plane node (err.command); the member id comes from etcd, or, when this node's
-- etcd does not answer, from the WAL in its data directory.
local kerror = require("kboot.error")
local em = require("kboot.etcd_members")

local M = {}
local P = "remove-etcd-member"

M.CLIENT_CERTS = { { "etcd/healthcheck-client.crt", "etcd/healthcheck-client.key" },
                   { "apiserver-etcd-client.crt", "apiserver-etcd-client.key" } }
M.OTHER_NODE_ENDPOINT = "https://127.0.0.1:2379" -- every kubeadm-made member listens there too

---------------------------------------------------------------------------------------------------
-- The member id in etcd's write-ahead log: every WAL file starts with a crc record and a metadata
-- record (walpb.Record{type=1, data=etcdserverpb.Metadata{NodeID=1, ClusterID=2}}), each framed
-- by a little-endian uint64 whose low 56 bits are the length and whose top byte, when its high
-- bit is set, holds the padding to 8 bytes.

local function varint(s, i)
  local n, shift = 0, 0
  while i <= #s and shift < 64 do
    local b = s:byte(i)
    n, i = n | ((b & 0x7f) << shift), i + 1
    if b < 0x80 then return n, i end
    shift = shift + 7
  end
  return nil
end

-- A protobuf message's varint and length-delimited fields, { [number] = value }, or nil.
local function fields(s)
  local out, i = {}, 1
  while i <= #s do
    local key
    key, i = varint(s, i)
    if not key then return nil end
    local f, wt = key >> 3, key & 7
    if wt == 0 then
      out[f], i = varint(s, i)
      if not i then return nil end
    elseif wt == 2 then
      local len
      len, i = varint(s, i)
      if not len or len < 0 or i + len - 1 > #s then return nil end
      out[f], i = s:sub(i, i + len - 1), i + len
    elseif wt == 1 then i = i + 8
    elseif wt == 5 then i = i + 4
    else return nil end
  end
  return out
end

-- The decimal string of a uint64 held in a Lua integer.
local function u64(n)
  if n >= 0 then return tostring(n) end
  local q = (n >> 1) // 5
  return tostring(q) .. tostring(n - q * 10)
end

-- wal_member_id(bytes) -> id (decimal string) | nil: the NodeID of the first metadata record.
function M.wal_member_id(s)
  local pos = 1
  while pos + 7 <= #s do
    local len = string.unpack("<i8", s, pos)
    local n, pad = len & 0x00ffffffffffffff, 0
    if len < 0 then pad = (len >> 56) & 0x7 end
    if n <= 0 or pos + 8 + n - 1 > #s then return nil end
    local rec = fields(s:sub(pos + 8, pos + 8 + n - 1))
    if not rec then return nil end
    if rec[1] == 1 then
      local md = type(rec[3]) == "string" and fields(rec[3])
      return md and md[1] and md[1] ~= 0 and u64(md[1]) or nil
    end
    pos = pos + 8 + n + pad
  end
  return nil
end

-- The member id this node's etcd wrote in its data directory, or nil.
function M.local_member_id(ctx, data_dir)
  local dir = data_dir .. "/member/wal"
  local names = ctx.fs.list(dir)
  if not names then return nil end
  local wals = {}
  for _, n in ipairs(names) do if n:match("^%x+%-%x+%.wal$") then wals[#wals + 1] = n end end
  table.sort(wals)
  if not wals[1] then return nil end
  -- only the head: a WAL file is preallocated to 64 MB
  local f = io.open(ctx.fs.path(dir .. "/" .. wals[1]), "rb")
  if not f then return nil end
  local head = f:read(4096) or ""
  f:close()
  return M.wal_member_id(head)
end

---------------------------------------------------------------------------------------------------

local function client_files(ctx)
  local dir = ctx.cluster.certificatesDir
  local ca = dir .. "/etcd/ca.crt"
  for _, pair in ipairs(M.CLIENT_CERTS) do
    local crt, key = dir .. "/" .. pair[1], dir .. "/" .. pair[2]
    if ctx.fs.exists(crt) and ctx.fs.exists(key) then return ca, crt, key end
  end
  return ca, dir .. "/" .. M.CLIENT_CERTS[1][1], dir .. "/" .. M.CLIENT_CERTS[1][2]
end

-- The etcdctl command that removes member hex (nil: not known) through endpoints (nil: another
-- control-plane node's own), and the one that lists the members to find it.
local function etcdctl(ctx, endpoints, verb)
  local ca, crt, key = client_files(ctx)
  return ("etcdctl --endpoints=%s --cacert=%s --cert=%s --key=%s %s"):format(endpoints or M.OTHER_NODE_ENDPOINT,
    ctx.fs.path(ca), ctx.fs.path(crt), ctx.fs.path(key), verb)
end

local function failed(ctx, e, why, hex, endpoints)
  local msg = ("cannot remove this node's etcd member (peer URL %s) through %s: %s"):format(tostring(e.peer_url),
    tostring(e.client_url), tostring(why))
  local extra = { command = etcdctl(ctx, endpoints, "member remove " .. (hex or "<ID>")) }
  extra.hint = ("remove it%s with the command below (this node's certificates go with cleanup-node)%s"):format(
    endpoints and "" or " from another control-plane node",
    hex and "" or (", <ID> being the first column of the line with peer URL %s in the member list"):format(tostring(e.peer_url)))
  if not hex then extra.find = etcdctl(ctx, endpoints, "member list") end
  return nil, kerror.new(P, msg, extra)
end

local function read_pem(ctx, path)
  local data, err = ctx.fs.read(path)
  if not data then return nil, ("cannot read %s: %s"):format(ctx.fs.path(path), tostring(err)) end
  return data
end

local function find_self(list, e, wal_id)
  local m = e.peer_url and em.find(list, e.peer_url)
  if m then return m end
  for _, x in ipairs(list) do
    if (wal_id and x.id == wal_id) or (e.name and x.name == e.name) then return x end
  end
end

function M.run(ctx)
  local e = ctx.reset_node.etcd
  local log = ctx.log
  if e.kind == "none" then
    log.info(P, "skipped: this node runs no etcd member (no etcd manifest in %s)", ctx.fs.path("/etc/kubernetes/manifests"))
    return true
  end
  if e.kind == "external" then
    log.info(P, "skipped: No etcd config found. Assuming external etcd")
    log.info(P, "Please, manually reset etcd to prevent further issues")
    return true
  end
  if not e.client_url or not e.client_url:match("^https?://[^/]+$") then
    return nil, kerror.new(P, ("the etcd manifest %s names no usable --advertise-client-urls (%s)"):format(
      ctx.fs.path("/etc/kubernetes/manifests/etcd.yaml"), e.client_url and ("%q"):format(e.client_url) or "none found"))
  end
  local ca, crt, key = client_files(ctx)
  if ctx.dry_run then
    local call = ("etcd %s: POST /v3/cluster/member/list, then POST /v3/cluster/member/remove of the member with peer URL %s "
      .. "unless it is the only one (client certificate %s)"):format(e.client_url, tostring(e.peer_url), ctx.fs.path(crt))
    ctx.reset_call(call)
    log.info(P, "Would remove the etcd member on this node (peer URL %s) from the etcd cluster", tostring(e.peer_url))
    return true
  end
  local wal_id = e.data_dir and M.local_member_id(ctx, e.data_dir)
  local wal_hex = wal_id and em.hex_id(wal_id)
  local pems = {}
  for i, p in ipairs({ ca, crt, key }) do
    local data, err = read_pem(ctx, p)
    if not data then return failed(ctx, e, err, wal_hex) end
    pems[i] = data
  end
  local c, cerr = em.client{ urls = { e.client_url }, ca_pem = pems[1], cert_pem = pems[2], key_pem = pems[3],
                             timeout = 10, connect_timeout = 5, retries = 2, retry_deadline = 10 }
  if not c then return failed(ctx, e, cerr, wal_hex) end
  local list, lerr = em.list(c)
  if not list then c:close() return failed(ctx, e, lerr, wal_hex) end
  local me = find_self(list, e, wal_id)
  if not me then
    c:close()
    log.info(P, "skipped: no member of the etcd cluster has this node's peer URL %s: nothing to remove", tostring(e.peer_url))
    return true
  end
  local hex = em.hex_id(me.id)
  if #list == 1 then
    c:close()
    log.info(P, "skipped: this node's member %s (%s) is the only one in the etcd cluster; nothing to remove it from", me.name, hex)
    return true
  end
  local others = {}
  for _, x in ipairs(list) do
    if x.id ~= me.id then for _, u in ipairs(x.client_urls) do others[#others + 1] = u end end
  end
  local endpoints = #others > 0 and table.concat(others, ",") or nil
  log.info(P, "Removing etcd member %s (%s, peer URL %s) from the etcd cluster of %d members", me.name, hex, tostring(e.peer_url), #list)
  local ok, rerr = em.remove(c, me.id, ctx.timeouts.etcdAPICall)
  c:close()
  if not ok then return failed(ctx, e, rerr, hex, endpoints) end
  log.info(P, "Removed etcd member %s (%s); %d member(s) remain", me.name, hex, #list - 1)
  return true
end

return M

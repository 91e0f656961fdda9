-- The three patch types kubectl and kubeadm know, on decoded YAML/JSON values (kboot.yaml's tables:
-- maps carry yaml.map_mt, lists yaml.array_mt, null is yaml.null):
--   json(doc, ops)                 RFC 6902 (add, remove, replace, move, copy, test)
--   merge(doc, patch)              RFC 7386
--   strategic(doc, patch, schema)  Kubernetes' strategic merge patch (apimachinery's strategicpatch with
--                                  MergeParallelList and IgnoreUnmatchedNulls, as kubeadm calls it):
--                                  lists merge by key where the Go type says so, new items first
-- Each returns a new value (the inputs are not changed) or nil, why (one line).
local yaml = require("kboot.yaml")

local M = {}

local null, MAP, LIST = yaml.null, yaml.map_mt, yaml.array_mt

local function map(t) return setmetatable(t or {}, MAP) end
local function list(t) return setmetatable(t or {}, LIST) end

-- "null" | "map" | "list" | "scalar"
local function kind(v)
  if v == null then return "null" end
  if type(v) ~= "table" then return "scalar" end
  local mt = getmetatable(v)
  if mt == MAP then return "map" end
  if mt == LIST then return "list" end
  if next(v) == nil then return "map" end
  return v[1] ~= nil and "list" or "map"
end
M.kind = kind

local function copy(v)
  if type(v) ~= "table" then return v end
  local k = kind(v)
  local t = {}
  for key, x in pairs(v) do t[key] = copy(x) end
  return setmetatable(t, k == "list" and LIST or MAP)
end
M.copy = copy

local function equal(a, b)
  local ka, kb = kind(a), kind(b)
  if ka ~= kb then return false end
  if ka == "list" then
    if #a ~= #b then return false end
    for i = 1, #a do if not equal(a[i], b[i]) then return false end end
    return true
  elseif ka == "map" then
    for k, v in pairs(a) do if b[k] == nil or not equal(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
  end
  return a == b
end
M.equal = equal

local function show(v)
  if v == null then return "null" end
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "table" then
    local ok, s = pcall(require("kboot.json").encode, v)
    if ok then return s end
  end
  return tostring(v)
end

---------------------------------------------------------------------------------------------------
-- RFC 7386 merge patch

local function merge(target, patch)
  if kind(patch) ~= "map" then return copy(patch) end
  local out = kind(target) == "map" and copy(target) or map()
  for k, v in pairs(patch) do
    if v == null then out[k] = nil else out[k] = merge(out[k], v) end
  end
  return out
end

-- merge(doc, patch) -> result | nil, why. The patch must be an object (as evanphx/json-patch, which
-- kubeadm uses, requires).
function M.merge(doc, patch)
  if kind(patch) ~= "map" then return nil, "a merge patch must be an object, not " .. kind(patch) end
  return merge(doc, patch)
end

---------------------------------------------------------------------------------------------------
-- RFC 6902 JSON patch

-- "/a/b~1c/0" -> { "a", "b/c", "0" }
local function pointer(p)
  if type(p) ~= "string" then return nil, "path is not a string" end
  if p == "" then return {} end
  if p:sub(1, 1) ~= "/" then return nil, ("path %q does not start with '/'"):format(p) end
  local out = {}
  for seg in (p:sub(2) .. "/"):gmatch("([^/]*)/") do
    if seg:find("~[^01]") or seg:sub(-1) == "~" then return nil, ("path %q has a bad escape"):format(p) end
    out[#out + 1] = seg:gsub("~1", "/"):gsub("~0", "~")
  end
  return out
end

local function index(seg, n, allow_end)
  if allow_end and seg == "-" then return n + 1 end
  if not seg:match("^%d+$") or (#seg > 1 and seg:sub(1, 1) == "0") then return nil end
  local i = tonumber(seg) + 1
  if i > n + (allow_end and 1 or 0) then return nil end
  return i
end

-- The container holding the last segment, and that segment.
local function parent(doc, segs, path)
  local cur = doc
  for i = 1, #segs - 1 do
    local s, k = segs[i], kind(cur)
    if k == "map" then cur = cur[s]
    elseif k == "list" then
      local j = index(s, #cur)
      cur = j and cur[j]
    else cur = nil end
    if cur == nil then return nil, ("path %s does not exist"):format(path) end
  end
  return cur, segs[#segs]
end

local function get(doc, path)
  local segs, err = pointer(path)
  if not segs then return nil, err end
  if #segs == 0 then return doc end
  local c, last = parent(doc, segs, path)
  if not c then return nil, last end
  local k = kind(c)
  local v
  if k == "map" then v = c[last]
  elseif k == "list" then
    local j = index(last, #c)
    v = j and c[j]
  end
  if v == nil then return nil, ("path %s does not exist"):format(path) end
  return v
end

-- ops on doc (a copy, changed in place); each returns the new doc or nil, why
local function add(doc, path, value)
  local segs, err = pointer(path)
  if not segs then return nil, err end
  if #segs == 0 then return value end
  local c, last = parent(doc, segs, path)
  if not c then return nil, last end
  local k = kind(c)
  if k == "map" then c[last] = value
  elseif k == "list" then
    local j = index(last, #c, true)
    if not j then return nil, ("index %s is out of range at %s"):format(last, path) end
    table.insert(c, j, value)
  else
    return nil, ("path %s: the parent is not an object or array"):format(path)
  end
  return doc
end

local function remove(doc, path)
  local segs, err = pointer(path)
  if not segs then return nil, err end
  if #segs == 0 then return nil, "cannot remove the whole document" end
  local c, last = parent(doc, segs, path)
  if not c then return nil, last end
  local k = kind(c)
  if k == "map" and c[last] ~= nil then c[last] = nil
  elseif k == "list" and index(last, #c) then table.remove(c, index(last, #c))
  else return nil, ("path %s does not exist"):format(path) end
  return doc
end

local OPS = {
  add = function(doc, op) return add(doc, op.path, copy(op.value)) end,
  remove = function(doc, op) return remove(doc, op.path) end,
  replace = function(doc, op)
    local _, err = get(doc, op.path)
    if err then return nil, err end
    if op.path == "" then return copy(op.value) end
    return add(assert(remove(doc, op.path)), op.path, copy(op.value))
  end,
  move = function(doc, op)
    local v, err = get(doc, op.from)
    if err then return nil, "from: " .. err end
    if op.path == op.from then return doc end
    if op.path:sub(1, #op.from + 1) == op.from .. "/" then
      return nil, ("cannot move %s into itself (%s)"):format(op.from, op.path)
    end
    return add(assert(remove(doc, op.from)), op.path, v)
  end,
  copy = function(doc, op)
    local v, err = get(doc, op.from)
    if err then return nil, "from: " .. err end
    return add(doc, op.path, copy(v))
  end,
  test = function(doc, op)
    local v, err = get(doc, op.path)
    if err then return nil, err end
    if not equal(v, op.value) then
      return nil, ("test failed: %s is %s, not %s"):format(op.path, show(v), show(op.value))
    end
    return doc
  end,
}
local NEEDS = { add = "value", replace = "value", test = "value", move = "from", copy = "from" }

-- json(doc, ops) -> result | nil, why ("operation N (op PATH): why", N from 0)
function M.json(doc, ops)
  if kind(ops) ~= "list" then return nil, "a JSON patch must be an array of operations, not " .. kind(ops) end
  doc = copy(doc)
  for i, op in ipairs(ops) do
    local where = ("operation %d"):format(i - 1)
    if kind(op) ~= "map" then return nil, where .. ": not an object" end
    local fn = OPS[op.op]
    if not fn then return nil, ("%s: unknown op %s (add, remove, replace, move, copy, test)"):format(where, show(op.op)) end
    if type(op.path) ~= "string" then return nil, ("%s (%s): no path"):format(where, op.op) end
    local need = NEEDS[op.op]
    if need == "value" and op.value == nil then return nil, ("%s (%s %s): no value"):format(where, op.op, op.path) end
    if need == "from" and type(op.from) ~= "string" then return nil, ("%s (%s %s): no from"):format(where, op.op, op.path) end
    local r, err = fn(doc, op)
    if r == nil then return nil, ("%s (%s %s): %s"):format(where, op.op, op.path, err) end
    doc = r
  end
  return doc
end

---------------------------------------------------------------------------------------------------
-- Strategic merge patch
--
-- A schema is what the Go type's struct tags say: { fields = { name = field } }, a field being
-- { merge = true, key = "name" (maps; absent for a list of scalars), schema = element or map schema }.
-- A list field without merge is replaced; a map field merges. Fields the schema does not name
-- behave as in a merge patch, so a nil schema (KubeletConfiguration, whose type has no patch tags)
-- is a JSON merge patch plus the $patch directives.

local function F(key, schema) return { merge = true, key = key, schema = schema } end
local function S(fields) return { fields = fields } end

local ObjectMeta = S { finalizers = F(nil), ownerReferences = F("uid") }
local Container = S { ports = F("containerPort"), env = F("name"), volumeMounts = F("mountPath"),
                      volumeDevices = F("devicePath") }
local PodSpec = S {
  volumes = F("name"), initContainers = F("name", Container), containers = F("name", Container),
  ephemeralContainers = F("name", Container), imagePullSecrets = F("name"), hostAliases = F("ip"),
  topologySpreadConstraints = F("topologyKey"), resourceClaims = F("name"), schedulingGates = F("name"),
}
local PodTemplateSpec = S { metadata = { schema = ObjectMeta }, spec = { schema = PodSpec } }

-- core/v1 Pod and apps/v1 Deployment: the patch tags of k8s.io/api's types that kubeadm's targets hold
M.schemas = {
  Pod = S { metadata = { schema = ObjectMeta }, spec = { schema = PodSpec } },
  Deployment = S { metadata = { schema = ObjectMeta },
                   spec = { schema = S { template = { schema = PodTemplateSpec } } } },
}

local DIRECTIVE, RETAIN = "$patch", "$retainKeys"
local ORDER_PREFIX, DELETE_PREFIX = "$setElementOrder/", "$deleteFromPrimitiveList/"

local function field(schema, k) return schema and schema.fields and schema.fields[k] or nil end

local function directive(k)
  return type(k) == "string" and (k == DIRECTIVE or k == RETAIN or k:sub(1, #ORDER_PREFIX) == ORDER_PREFIX
    or k:sub(1, #DELETE_PREFIX) == DELETE_PREFIX)
end

-- A patch value taken as it is (nothing in the original to merge it with): its null entries dropped
-- all the way down (IgnoreUnmatchedNulls) and its directives too, as apimachinery leaves them: an
-- object holding $patch is dropped (nil), and so is a list item that holds one.
local function no_nulls(v)
  local k = kind(v)
  if k == "map" then
    if v[DIRECTIVE] ~= nil then return nil end
    local t = map()
    for key, x in pairs(v) do
      if x ~= null and not directive(key) then t[key] = no_nulls(x) end
    end
    return t
  elseif k == "list" then
    local t = list()
    for _, x in ipairs(v) do
      local c = no_nulls(x)
      if c ~= nil then t[#t + 1] = c end
    end
    return t
  end
  return v
end

local function key_of(item, key)
  if key == nil then return item end
  return kind(item) == "map" and item[key] or nil
end

local function find(l, key, value)
  for i, item in ipairs(l) do
    local v = key_of(item, key)
    if v ~= nil and equal(v, value) then return i end
  end
end

-- apimachinery's normalizeElementOrder: the items the patch (or $setElementOrder) names in its order,
-- the others in the original's, interleaved so each keeps its place relative to the original.
local function order(merged, patch_order, original, key)
  local patch_items, server_only = {}, {}
  for _, item in ipairs(merged) do
    if find(patch_order, key, key_of(item, key)) then patch_items[#patch_items + 1] = item
    else server_only[#server_only + 1] = item end
  end
  local function stable_by(items, ref)
    local pos = {}
    for i, item in ipairs(items) do pos[item] = { find(ref, key, key_of(item, key)) or math.huge, i } end
    table.sort(items, function(a, b)
      local pa, pb = pos[a], pos[b]
      if pa[1] ~= pb[1] then return pa[1] < pb[1] end
      return pa[2] < pb[2]
    end)
  end
  stable_by(patch_items, patch_order)
  stable_by(server_only, original)
  local out, i, j = list(), 1, 1
  while i <= #server_only or j <= #patch_items do
    if i > #server_only then out[#out + 1] = patch_items[j]; j = j + 1
    elseif j > #patch_items then out[#out + 1] = server_only[i]; i = i + 1
    else
      local li = find(original, key, key_of(server_only[i], key))
      local ri = find(original, key, key_of(patch_items[j], key))
      if li and ri and li < ri then out[#out + 1] = server_only[i]; i = i + 1
      else out[#out + 1] = patch_items[j]; j = j + 1 end
    end
  end
  return out
end

local merge_map

-- mergeSlice of a list field with the merge strategy
local function merge_list(original, patch, f, path, delete_list)
  local key = f.key
  if not delete_list then
    for _, item in ipairs(patch) do
      if kind(item) == "map" and key == nil then
        return nil, ("%s: a list of objects needs a merge key"):format(path)
      end
    end
  end
  if key == nil then
    local out = list()
    if delete_list then
      for _, v in ipairs(original) do
        if not find(patch, nil, v) then out[#out + 1] = v end
      end
      return out
    end
    for _, v in ipairs(original) do if not find(out, nil, v) then out[#out + 1] = copy(v) end end
    for _, v in ipairs(patch) do if not find(out, nil, v) then out[#out + 1] = copy(v) end end
    return order(out, patch, original, nil)
  end
  -- $patch elements: delete by key, replace the whole list
  local items, replace = {}, false
  local base = list()
  for _, v in ipairs(original) do base[#base + 1] = copy(v) end
  for _, item in ipairs(patch) do
    if kind(item) ~= "map" then return nil, ("%s: %s is not an object"):format(path, show(item)) end
    local d = item[DIRECTIVE]
    if d == nil then items[#items + 1] = item
    elseif d == "delete" then
      if item[key] == nil then return nil, ("%s: a $patch: delete element needs its merge key %s"):format(path, key) end
      for i = #base, 1, -1 do
        if equal(key_of(base[i], key), item[key]) then table.remove(base, i) end
      end
    elseif d == "replace" then replace = true
    elseif d == "merge" then return nil, ("%s: $patch: merge is not allowed in a list"):format(path)
    else return nil, ("%s: unknown $patch %s"):format(path, show(d)) end
  end
  if replace then
    local out = list()
    for _, item in ipairs(items) do out[#out + 1] = no_nulls(item) end
    return out
  end
  for _, item in ipairs(items) do
    if item[key] == nil then return nil, ("%s: %s has no merge key %s"):format(path, show(item), key) end
  end
  for _, item in ipairs(base) do
    if kind(item) ~= "map" or item[key] == nil then
      return nil, ("%s: an item of the original has no merge key %s"):format(path, key)
    end
  end
  for _, item in ipairs(items) do
    local i = find(base, key, item[key])
    if i then
      local m, err = merge_map(base[i], item, f.schema, ("%s[%s=%s]"):format(path, key, show(item[key])))
      if not m then return nil, err end
      base[i] = m
    else
      base[#base + 1] = no_nulls(item)
    end
  end
  return order(base, items, original, key)
end

local function merge_value(orig, pv, f, path)
  local ko, kp = kind(orig), kind(pv)
  if ko ~= kp then return no_nulls(pv) end
  if kp == "map" then
    return merge_map(orig, pv, f and f.schema, path)
  elseif kp == "list" then
    if f and f.merge then return merge_list(orig, pv, f, path) end
    return no_nulls(pv)
  end
  return pv
end

-- mergeMap(original, patch) with its directives
function merge_map(original, patch, schema, path)
  local d = patch[DIRECTIVE]
  if d ~= nil then
    if d == "replace" then
      local out = map()
      for k, v in pairs(patch) do if k ~= DIRECTIVE then out[k] = no_nulls(v) end end
      return out
    elseif d == "delete" then
      return map()
    end
    return nil, ("%s: unknown $patch %s in an object (replace or delete)"):format(path, show(d))
  end
  local out = copy(original)
  local retain = patch[RETAIN]
  if retain ~= nil then
    if kind(retain) ~= "list" then return nil, ("%s: $retainKeys must be a list"):format(path) end
    local keep = {}
    for _, k in ipairs(retain) do
      if type(k) ~= "string" then return nil, ("%s: $retainKeys holds %s, not a key"):format(path, show(k)) end
      keep[k] = true
    end
    for k in pairs(out) do if not keep[k] then out[k] = nil end end
  end
  local ordered = {}
  -- $setElementOrder/<list>: that list merged now, in the order given
  for k, want in pairs(patch) do
    local name = type(k) == "string" and k:sub(1, #ORDER_PREFIX) == ORDER_PREFIX and k:sub(#ORDER_PREFIX + 1)
    if name then
      if kind(want) ~= "list" then return nil, ("%s: %s must be a list"):format(path, k) end
      local f = field(schema, name)
      local sub = path .. "." .. name
      local o, p = out[name], patch[name]
      local merged
      if o ~= nil and p ~= nil then
        if kind(o) ~= "list" or kind(p) ~= "list" then return nil, ("%s: not a list"):format(sub) end
        if f and f.merge then
          local err
          merged, err = merge_list(o, p, f, sub)
          if not merged then return nil, err end
        else
          merged = no_nulls(p)
        end
      elseif p ~= nil then merged = no_nulls(p)
      elseif o ~= nil then merged = o
      end
      if merged ~= nil then
        -- want: {key: value} maps for a list of objects, the values for a list of scalars
        out[name] = order(merged, want, o or list(), f and f.key)
        ordered[name] = true
      end
    end
  end
  for k, pv in pairs(patch) do
    local sk = type(k) == "string" and k or nil
    if sk == DIRECTIVE or sk == RETAIN or ordered[k] or (sk and sk:sub(1, #ORDER_PREFIX) == ORDER_PREFIX) then
      -- done above
    elseif sk and sk:sub(1, #DELETE_PREFIX) == DELETE_PREFIX then
      local name = sk:sub(#DELETE_PREFIX + 1)
      if out[name] ~= nil then
        if kind(out[name]) ~= "list" or kind(pv) ~= "list" then
          return nil, ("%s.%s: %s needs a list on both sides"):format(path, name, sk)
        end
        out[name] = merge_list(out[name], pv, { key = nil }, path .. "." .. name, true)
      end
    elseif pv == null then
      out[k] = nil
    elseif out[k] == nil then
      out[k] = no_nulls(pv)
    else
      local v, err = merge_value(out[k], pv, field(schema, k), path .. "." .. tostring(k))
      if v == nil and err then return nil, err end
      out[k] = v
    end
  end
  return out
end

-- strategic(doc, patch [, schema]) -> result | nil, why. schema: M.schemas.Pod, .Deployment, or nil.
function M.strategic(doc, patch, schema)
  if kind(patch) ~= "map" then return nil, "a strategic merge patch must be an object, not " .. kind(patch) end
  if kind(doc) ~= "map" then return nil, "the target is not an object" end
  return merge_map(doc, patch, schema, "$")
end

return M

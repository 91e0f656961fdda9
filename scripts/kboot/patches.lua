-- kubeadm's patches (--patches DIR, patches.directory of InitConfiguration / JoinConfiguration;
-- kubeadm's util/patches): files named TARGET[SUFFIX][+PATCHTYPE].EXTENSION in DIR (and below it,
-- walked in lexical order), each holding one or more YAML or JSON documents, applied in that order to
-- what the components render, after render and before save, so --dry-run shows the patched files.
-- Targets: the static Pods etcd, kube-apiserver, kube-controller-manager, kube-scheduler; the
-- KubeletConfiguration of /var/lib/kubelet/config.yaml ("kubeletconfiguration"; not the cluster's
-- kubelet-config ConfigMap); the coredns Deployment ("corednsdeployment"). The directory is the
-- admin's, on this host, never under --root.
--
-- Where kboot decides otherwise than kubeadm: a .json/.yaml file whose name starts with no known
-- target is an error, not a skipped file (a typo in a target would silently change nothing); every
-- patch is read and tried on what this run renders before anything is written (prepare), so a bad
-- one leaves the node as it was.
local yaml = require("kboot.yaml")
local kerror = require("kboot.error")
local patch = require("kboot.patch")

local M = {}

-- kubeadm's known targets, in its order; what each one patches in a render's artifacts
M.TARGETS = { "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubeletconfiguration",
              "corednsdeployment" }
M.TYPES = { strategic = "application/strategic-merge-patch+json", merge = "application/merge-patch+json",
            json = "application/json-patch+json" }
M.EXTENSIONS = { "json", "yaml" }

local function static_pod(name)
  return { file = require("kboot.manifest").path(name), schema = patch.schemas.Pod, api = { "v1", "Pod" }, pod = true }
end
local function target_info(name)
  if name == "kubeletconfiguration" then
    local kubelet = require("kboot.components.kubelet")
    -- kubeadm's NodeLocalCRISocket: instance-config.yaml is applied over the user's patches
    return { file = kubelet.CONFIG, last = kubelet.INSTANCE_CONFIG }
  elseif name == "corednsdeployment" then
    return { object = { "kube-system", "coredns" }, schema = patch.schemas.Deployment, api = { "apps/v1", "Deployment" } }
  end
  return static_pod(name)
end

local function fail(fmt, ...) return nil, kerror.new("patches", fmt:format(...)) end
local function brackets(l) return "[" .. table.concat(l, " ") .. "]" end

-- parse_name(name) -> target, type | nil, why, skip. skip: not a patch file at all (kubeadm's
-- warning: another extension); otherwise why is an error (no known target, a bad +PATCHTYPE).
function M.parse_name(name)
  local ext = name:match("^.+%.([^.]*)$")
  if ext ~= "json" and ext ~= "yaml" then
    return nil, ("the file extension must be one of %s"):format(brackets(M.EXTENSIONS)), true
  end
  local target
  for _, t in ipairs(M.TARGETS) do
    if name:sub(1, #t) == t then target = t break end
  end
  if not target then return nil, ("unknown target, must be one of %s"):format(brackets(M.TARGETS)) end
  local rest = name:sub(#target + 1):gsub("^[^.+\n]*", "", 1)
  if rest:sub(1, 1) ~= "+" then return target, "strategic" end
  for _, t in ipairs({ "json", "merge", "strategic" }) do
    if rest:sub(2, #t + 1) == t then return target, t end
  end
  return nil, "unknown or missing patch type after '+', must be one of [json merge strategic]"
end

local function check_doc(ptype, doc)
  if ptype == "json" then
    if patch.kind(doc) ~= "list" then return "a json patch must be a list of operations" end
    for i, op in ipairs(doc) do
      if patch.kind(op) ~= "map" or type(op.op) ~= "string" then
        return ("operation %d is not an object with an op"):format(i - 1)
      end
    end
  elseif patch.kind(doc) ~= "map" then
    return ("a %s patch must be an object, not a %s"):format(ptype, patch.kind(doc))
  end
end

-- every file below dir, lexically, as filepath.Walk visits them
local function walk(dir, out)
  local hostfs = require("kboot.hostfs")
  local names, err = hostfs.list(dir)
  if not names then return nil, err end
  for _, n in ipairs(names) do
    local p = dir:gsub("/$", "") .. "/" .. n
    local st = hostfs.stat(p)
    if st and st.type == "dir" then
      local ok, werr = walk(p, out)
      if not ok then return nil, werr end
    else
      out[#out + 1] = { name = n, path = p }
    end
  end
  return out
end

-- load(dir [, log]) -> set | nil, kboot.error (one line naming the file). set = { dir =, files =
-- { { name =, path =, target =, type =, docs = {...} }, ... } } in the order kubeadm applies them.
-- log (kboot.log or ctx.log): kubeadm's [patches] lines; nil: quiet.
function M.load(dir, log)
  if type(dir) ~= "string" or dir == "" then error("patches.load: dir must be a non-empty string", 2) end
  local info = function(...) if log then log.info("patches", ...) end end
  info("Reading patches from path %q", dir)
  local st, serr = require("kboot.hostfs").stat(dir)
  if not st then
    local why = tostring(serr)
    if why:sub(1, #dir + 2) == dir .. ": " then why = why:sub(#dir + 3) end
    return fail("cannot read the patches directory %s: %s", dir, why)
  end
  if st.type ~= "dir" then return fail("the patches path %s is not a directory", dir) end
  local entries, werr = walk(dir, {})
  if not entries then return fail("%s", tostring(werr)) end
  local set, found, ignored = { dir = dir, files = {} }, {}, {}
  for _, e in ipairs(entries) do
    local target, ptype, skip = M.parse_name(e.name)
    if not target and skip then
      info("Ignoring file %q: %s", e.name, ptype)
      ignored[#ignored + 1] = e.name
    elseif not target then
      return fail("%s: %s", e.path, ptype)
    else
      local f, oerr = io.open(e.path, "rb")
      if not f then return fail("cannot read %s", tostring(oerr)) end
      local text = f:read("a")
      f:close()
      if text == "" then
        info("Ignoring empty file: %q", e.name)
        ignored[#ignored + 1] = e.name
      else
        local docs, derr = yaml.decode_all(text)
        if not docs then return fail("%s: %s", e.path, tostring(derr)) end
        local kept = {}
        for i, d in ipairs(docs) do
          if d ~= yaml.null then
            local why = check_doc(ptype, d)
            if why then
              return fail("%s: %s%s", e.path, #docs > 1 and ("document %d: "):format(i) or "", why)
            end
            kept[#kept + 1] = { doc = d, n = i }
          end
        end
        set.files[#set.files + 1] = { name = e.name, path = e.path, target = target, type = ptype, docs = kept, many = #docs > 1 }
        found[#found + 1] = e.name
      end
    end
  end
  if #found > 0 then info("Found the following patch files: %s", brackets(found)) end
  if #ignored > 0 then info("Ignored the following files: %s", brackets(ignored)) end
  return set
end

-- has(set, target) -> whether any file patches target
function M.has(set, target)
  for _, f in ipairs(set and set.files or {}) do
    if f.target == target then return true end
  end
  return false
end

local function apply_one(ptype, doc, p, schema)
  if ptype == "json" then return patch.json(doc, p) end
  if ptype == "merge" then return patch.merge(doc, p) end
  return patch.strategic(doc, p, schema)
end

-- apply(set, target, doc [, log]) -> patched doc, n applied | nil, kboot.error. doc: the decoded
-- target (not changed). The result must still be what the target is (a v1 Pod stays one).
function M.apply(set, target, doc, log)
  local info = target_info(target)
  local n = 0
  for _, f in ipairs(set.files) do
    if f.target == target then
      for _, d in ipairs(f.docs) do
        local r, why = apply_one(f.type, doc, d.doc, info.schema)
        local where = f.many and ("%s (document %d)"):format(f.path, d.n) or f.path
        if r == nil then return fail("%s: cannot apply this %s patch to %s: %s", where, f.type, target, why) end
        if patch.kind(r) ~= "map" then return fail("%s: the patched %s is no longer an object", where, target) end
        if info.api and (r.apiVersion ~= info.api[1] or r.kind ~= info.api[2]) then
          return fail("%s: the patched %s is no longer an %s %s", where, target, info.api[1], info.api[2])
        end
        doc, n = r, n + 1
        if log then log.info("patches", "Applied patch of type %q to target %q", M.TYPES[f.type], target) end
      end
    end
  end
  return doc, n
end

local function decoded(text, what)
  local d, err = yaml.decode(text)
  if patch.kind(d) ~= "map" then return fail("cannot patch %s: %s", what, tostring(err or "not an object")) end
  return d
end

-- artifacts(ctx, a [, quiet]) -> a' | nil, kboot.error: a render's artifacts with every target
-- ctx.patches (load's set) patches replaced by its patched copy; a itself is left as it is.
function M.artifacts(ctx, a, quiet)
  local set = ctx.patches
  if not set or not a then return a end
  local log = not quiet and ctx.log or nil
  local out
  local function copy_a()
    if not out then
      out = {}
      for k, v in pairs(a) do out[k] = v end
      out.files = { table.unpack(a.files or {}) }
      out.objects = { table.unpack(a.objects or {}) }
    end
    return out
  end
  for _, t in ipairs(M.TARGETS) do
    if M.has(set, t) then
      local info = target_info(t)
      if info.file then
        for i, f in ipairs(a.files or {}) do
          if f.path == info.file then
            local doc, err = decoded(f.content, f.path)
            if not doc then return nil, err end
            local n
            doc, n = M.apply(set, t, doc, log)
            if not doc then return nil, n end
            for _, g in ipairs(a.files) do
              if info.last and g.path == info.last then
                local over, oerr = decoded(g.content, g.path)
                if not over then return nil, oerr end
                doc = assert(patch.strategic(doc, over))
                if log then log.info("patches", "Applied patch of type %q to target %q", M.TYPES.strategic, t) end
              end
            end
            local nf = {}
            for k, v in pairs(f) do nf[k] = v end
            nf.content = yaml.encode(doc)
            copy_a().files[i] = nf
          end
        end
      else
        for i, o in ipairs(a.objects or {}) do
          local m = o.metadata or {}
          if o.apiVersion == info.api[1] and o.kind == info.api[2] and m.namespace == info.object[1] and m.name == info.object[2] then
            -- through YAML once: the render's plain tables get the map/list marks the patches need
            local doc = assert(decoded(yaml.encode(o), t))
            local r, err = M.apply(set, t, doc, log)
            if not r then return nil, err end
            copy_a().objects[i] = r
          end
        end
      end
    end
  end
  return out or a
end

-- The component modules a selected phase renders: its component, or the flow entry's renders list.
local function rendered(p)
  if p.component then return { p.component } end
  return p.renders or {}
end

local function target_of(m)
  local by = { kubelet = "kubeletconfiguration", coredns = "corednsdeployment" }
  return by[m.name] or m.name
end

-- check(ctx, selected) -> true | nil, kboot.error: every patch tried, quietly, on what the selected
-- phases will render (the static Pods with this node's facts), before anything is written.
function M.check(ctx, selected)
  local set = ctx.patches
  if not set then return true end
  for _, p in ipairs(selected or {}) do
    local skipped = p.skip and p.skip(ctx)
    for _, name in ipairs(skipped and {} or rendered(p)) do
      local m = require(name)
      local t = target_of(m)
      if M.has(set, t) and not (m.skip and m.skip(ctx)) then
        -- a view of ctx with a cache of its own: the trial changes nothing the run will see
        local view = setmetatable({ cache = setmetatable({}, { __index = ctx.cache }) }, { __index = ctx })
        if target_info(t).pod then require("kboot.manifest").node_facts(view) end
        local ok, a = pcall(m.render, view)
        -- a render that fails says so in its phase; only the patches are checked here
        if ok and type(a) == "table" then
          local r, err = M.artifacts(view, a, true)
          if not r then return nil, err end
        end
      end
    end
  end
  return true
end

-- prepare(ctx, selected) -> true | nil, kboot.error: ctx.patches loaded from the flow's document
-- (InitConfiguration or JoinConfiguration patches.directory, which --patches sets) and checked.
function M.prepare(ctx, selected)
  local doc = ctx[ctx.flow] or {}
  local dir = doc.patches and doc.patches.directory
  if dir == nil or dir == "" then ctx.patches = nil return true end
  local set, err = M.load(dir, ctx.log)
  if not set then return nil, err end
  ctx.patches = set
  return M.check(ctx, selected)
end

return M

-- kubeadm's mark-control-plane phase (v1.31: phases/markcontrolplane): the control-plane and
-- exclude-from-external-load-balancers labels and nodeRegistration.taints on this node's Node
-- object, once the kubelet has registered it. Taints already present are kept; nothing is sent
-- when the node is already right.
local kerror = require("kboot.error")

local M = {}

M.LABELS = { "node-role.kubernetes.io/control-plane", "node.kubernetes.io/exclude-from-external-load-balancers" }

local function log(ctx) return ctx.log or require("kboot.log") end

local function same_taint(a, b) return a.key == b.key and a.effect == b.effect end

-- patch(ctx, node) -> merge patch {metadata={labels=}, spec={taints=}} or nil when nothing is missing.
-- Taints are a list that a merge patch replaces whole, so the patch carries the node's own taints too,
-- and the node's resourceVersion so a concurrent kubelet update gives a conflict instead of a loss.
function M.patch(ctx, node)
  local labels, have = {}, (node.metadata or {}).labels or {}
  for _, l in ipairs(M.LABELS) do
    if have[l] == nil then labels[l] = "" end
  end
  local taints = {}
  for _, t in ipairs((node.spec or {}).taints or {}) do taints[#taints + 1] = t end
  local added = false
  for _, want in ipairs(ctx.node.taints or {}) do
    local found = false
    for _, t in ipairs(taints) do if same_taint(t, want) then found = true end end
    if not found then
      local t = { key = want.key, effect = want.effect }
      if want.value ~= nil and want.value ~= "" then t.value = want.value end
      taints[#taints + 1] = t
      added = true
    end
  end
  if next(labels) == nil and not added then return nil end
  local p = { metadata = { resourceVersion = node.metadata and node.metadata.resourceVersion } }
  if next(labels) ~= nil then p.metadata.labels = labels end
  if added then p.spec = { taints = taints } end
  return p
end

local function describe_taints(ctx)
  local out = {}
  for _, t in ipairs(ctx.node.taints or {}) do
    out[#out + 1] = ("%s%s:%s"):format(t.key, (t.value and t.value ~= "") and ("=" .. t.value) or "", t.effect)
  end
  return "[" .. table.concat(out, " ") .. "]"
end

-- timeout for the Node to appear: kubeadm's kubernetesAPICall timeout (1m), 4 min at least for slow kubelets
local function timeout(ctx)
  return ctx.mark_timeout or math.max(ctx.timeouts.kubernetesAPICall, 60)
end

local function fail(text, ...) return kerror.new("mark-control-plane", text:format(...)) end

-- run(ctx) -> true | nil, kboot.error
function M.run(ctx)
  local name = ctx.node.name
  local k = ctx.kube
  log(ctx).info("mark-control-plane", "Marking the node %s as control-plane by adding the labels: [%s]", name, table.concat(M.LABELS, " "))
  log(ctx).info("mark-control-plane", "Marking the node %s as control-plane by adding the taints %s", name, describe_taints(ctx))
  if ctx.dry_run then
    local p = M.patch(ctx, { metadata = { name = name }, spec = {} })
    if p then p.metadata.resourceVersion = nil; k:patch("v1", "Node", nil, name, p, "merge") end
    return true
  end
  for _ = 1, 5 do
    -- only "not registered yet" is worth waiting for; any other error (403, TLS) ends the wait
    local fatal
    local node, err = k:wait_for(function()
      local n, e = k:get("v1", "Node", nil, name)
      if n then return n end
      if (type(e) == "table" and e.status == 404) then return nil, ("node %q is not registered yet (is the kubelet running?)"):format(name) end
      fatal = e
      return true
    end, timeout(ctx), 1)
    if fatal then return nil, fail("cannot get node %s: %s", name, tostring(fatal)) end
    if not node then return nil, fail("waiting for node %s: %s", name, tostring(err)) end
    local p = M.patch(ctx, node)
    if not p then return true end
    local r, perr = k:patch("v1", "Node", nil, name, p, "merge")
    if r then return true end
    if not (type(perr) == "table" and perr.status == 409) then
      return nil, fail("cannot mark node %s: %s", name, tostring(perr))
    end
    log(ctx).debug("mark-control-plane", "node %s changed meanwhile; retrying", name)
  end
  return nil, fail("cannot mark node %s: it kept changing (5 conflicts)", name)
end

function M.phases()
  return { { name = "mark-control-plane", help = "Mark a node as a control-plane", run = M.run } }
end

return M

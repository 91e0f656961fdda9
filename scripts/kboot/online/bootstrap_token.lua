-- Phase bootstrap-token: the bootstrap token Secrets, the RBAC that lets those tokens join nodes,
-- ConfigMap kube-public/cluster-info and its anonymous-read Role (kubeadm's bootstraptoken phases).
-- Everything goes through ctx.kube with server-side apply, so a re-run changes nothing; a token
-- Secret that is already right is left alone (re-sending would only move its expiry).
local tokens = require("kboot.tokens")

local M = {}
local P = "bootstrap-token"

-- want(ctx_token_entry) -> the token table tokens.secret takes, or nil, why
function M.want(t)
  local w = { token = t.token, usages = t.usages or {}, groups = t.groups or {}, description = t.description }
  local ok, why = tokens.validate(w)
  if not ok then return nil, why end
  if t.expires and t.expires ~= "" then
    local e, eerr = tokens.parse_rfc3339(t.expires)
    if not e then return nil, eerr end
    w.expires = e
  else
    local ttl, terr = tokens.ttl(t.ttl or "24h0m0s")
    if not ttl then return nil, terr end
    w.ttl = ttl
  end
  return w
end

-- ensure_token(k, want, now) -> "created" | "unchanged", or nil, err
function M.ensure_token(k, w, now)
  local id = tokens.parse(w.token)
  local have = k:get("v1", "Secret", tokens.NAMESPACE, tokens.secret_name(id))
  if have and tokens.same(tokens.from_secret(have), w, now) then return "unchanged" end
  local _, err = k:apply(tokens.secret(w, now))
  if err then return nil, err end
  return "created"
end

local function apply_all(k, objs)
  for _, o in ipairs(objs) do
    local _, err = k:apply(o)
    if err then return nil, err end
  end
  return true
end

-- cluster entry of admin.conf (read through ctx.fs, so --root and dry-run overlays apply)
function M.admin_cluster(ctx)
  local kubeconfig = require("kboot.kubeconfig")
  local kc, err = kubeconfig.load("/etc/kubernetes/admin.conf")
  if not kc then return nil, err end
  local cur, cerr = kubeconfig.current(kc)
  if not cur then return nil, cerr end
  if not cur.ca_pem then return nil, "/etc/kubernetes/admin.conf: the cluster has no certificate-authority data" end
  return cur, kc
end

function M.run(ctx)
  local log, k = ctx.log, ctx.kube
  if not k then return nil, "no API client (ctx.kube)" end
  local now = ctx.now or os.time()
  log.info(P, "Using token: %s", ctx.token)
  log.info(P, "Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
  for i, t in ipairs(ctx.tokens or { { token = ctx.token } }) do
    local w, why = M.want(t)
    if not w then return nil, ("bootstrapTokens[%d]: %s"):format(i - 1, why) end
    local how, err = M.ensure_token(k, w, now)
    if not how then return nil, err end
    log.debug(P, "token %s: %s", (tokens.parse(w.token)), how)
  end
  local rbac = tokens.node_rbac()
  local ok, err = apply_all(k, { rbac[1], rbac[2] })
  if not ok then return nil, err end
  log.info(P, "Configured RBAC rules to allow Node Bootstrap tokens to get nodes")
  ok, err = apply_all(k, { rbac[3] })
  if not ok then return nil, err end
  log.info(P, "Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials")
  ok, err = apply_all(k, { rbac[4] })
  if not ok then return nil, err end
  log.info(P, "Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token")
  ok, err = apply_all(k, { rbac[5] })
  if not ok then return nil, err end
  log.info(P, "Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster")
  log.info(P, 'Creating the "cluster-info" ConfigMap in the "kube-public" namespace')
  local cur, cerr = M.admin_cluster(ctx)
  if not cur then return nil, cerr end
  ok, err = apply_all(k, { tokens.cluster_info(cur.server, cur.ca_pem) })
  if not ok then return nil, err end
  ok, err = apply_all(k, tokens.cluster_info_rbac())
  if not ok then return nil, err end
  return true
end

function M.phases()
  return { { name = P, help = "Generates bootstrap tokens used to join a node to a cluster", run = M.run } }
end

return M

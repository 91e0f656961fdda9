-- Phase upload-certs (with --upload-certs): Secret kube-system/kubeadm-certs holding the shared CA
-- and service-account keys, each sealed with AES-256-GCM under the certificate key, owned by a 2 h
-- bootstrap token so the garbage collector removes it; Role/RoleBinding kubeadm:kubeadm-certs.
-- A Secret that still opens with the same key to the same files, under a live owner, is kept.
local crypto = require("kboot.crypto")
local tokens = require("kboot.tokens")

local kerror = require("kboot.error")

local M = {}
local P = "upload-certs"

-- files(ctx) -> { ["ca.crt"] = pem, ... } read through ctx.fs; a missing file is "" (kubeadm's
-- empty entry: the joining node then knows it was not forgotten, only absent here)
function M.files(ctx)
  local out = {}
  for _, c in ipairs(tokens.certs_to_upload(ctx.cluster)) do
    local data, err = ctx.fs.read(c.path)
    if data then out[c.name] = data
    elseif err and err.code == 2 then
      ctx.log.debug(P, "%s does not exist; uploaded as an empty entry", ctx.fs.path(c.path))
      out[c.name] = ""
    else return nil, err end
  end
  if (out["ca.crt"] or "") == "" then return nil, ("%s is missing: run the certs phases first"):format(ctx.fs.path(ctx.cluster.certificatesDir .. "/ca.crt")) end
  return out
end

local function same_files(a, b)
  for k, v in pairs(a) do if b[k] ~= v then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- current(k, key, files, now) -> true when the Secret in the cluster already holds these files
function M.current(k, key, files, now)
  local s = k:get("v1", "Secret", tokens.NAMESPACE, tokens.CERTS_SECRET)
  if not s then return false end
  local ref = s.metadata and s.metadata.ownerReferences and s.metadata.ownerReferences[1]
  if not ref then return false end
  local owner = k:get("v1", "Secret", tokens.NAMESPACE, ref.name)
  local t = owner and tokens.from_secret(owner)
  if not t or (t.expires and t.expires <= now) or (owner.metadata.uid and ref.uid ~= owner.metadata.uid) then return false end
  local have = tokens.open_certs_secret(s, key)
  return have ~= nil and same_files(have, files)
end

local function run(ctx)
  local log, k = ctx.log, ctx.kube
  if not k then return nil, "no API client (ctx.kube)" end
  local now = ctx.now or os.time()
  ctx.certificate_key = ctx.certificate_key or crypto.certificate_key()
  local key = ctx.certificate_key
  local files, ferr = M.files(ctx)
  if not files then return nil, ferr end
  log.info(P, 'Storing the certificates in Secret "%s" in the "%s" Namespace', tokens.CERTS_SECRET, tokens.NAMESPACE)
  if M.current(k, key, files, now) then
    log.info(P, "The Secret already holds these certificates under this key; left as it is")
  else
    local owner, err = k:create(tokens.secret(tokens.certs_token(), now))
    if not owner then return nil, err end
    local _, aerr = k:apply(tokens.certs_secret(files, key, owner))
    if aerr then return nil, aerr end
  end
  for _, o in ipairs(tokens.certs_rbac()) do
    local _, err = k:apply(o)
    if err then return nil, err end
  end
  log.info(P, "Using certificate key:")
  io.stdout:write(key, "\n")
  return true
end

-- run(ctx) -> true | nil, kboot.error
function M.run(ctx)
  local ok, err = run(ctx)
  if ok then return true end
  return nil, kerror.wrap(P, err)
end

function M.phases()
  return { { name = P, help = "Upload control-plane certificates to the kubeadm-certs Secret", run = M.run,
             skip = function(ctx)
               if not ctx.upload_certs then return true, "use --upload-certs to store the control-plane certificates in the cluster" end
               return false
             end } }
end

return M

-- kubeadm's kubelet-finalize/enable-client-cert-rotation (v1.31: phases/kubelet/finalize): once the
-- kubelet has rotated its first client certificate into kubelet-client-current.pem, kubelet.conf points
-- at that file instead of embedding the certificate init signed, so later rotations take effect.
local kerror = require("kboot.error")

local M = {}

M.PEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"

local function log(ctx) return ctx.log or require("kboot.log") end

function M.kubelet_conf(ctx) return (ctx.kubeconfig_dir or "/etc/kubernetes") .. "/kubelet.conf" end

-- rewrite(t, pem) -> t changed in place, and whether anything changed
function M.rewrite(t, pem)
  local changed = false
  for _, u in ipairs(t.users or {}) do
    u.user = u.user or {}
    local a = u.user
    if a["client-certificate"] ~= pem or a["client-key"] ~= pem or a["client-certificate-data"] or a["client-key-data"] then
      changed = true
    end
    a["client-certificate-data"], a["client-key-data"] = nil, nil
    a["client-certificate"], a["client-key"] = pem, pem
  end
  return t, changed
end

-- run(ctx) -> true | nil, kboot.error
function M.run(ctx)
  local kc = require("kboot.kubeconfig")
  if ctx.kubelet and ctx.kubelet.rotateCertificates == false then
    log(ctx).info("kubelet-finalize", "Client certificate rotation is off in the KubeletConfiguration; kubelet.conf is left as it is")
    return true
  end
  if not ctx.fs.exists(M.PEM) then
    log(ctx).info("kubelet-finalize", "%s does not exist yet (the kubelet has not rotated its client certificate); kubelet.conf is left as it is", ctx.fs.path(M.PEM))
    return true
  end
  log(ctx).info("kubelet-finalize", "Assuming that kubelet client certificate rotation is enabled: found %q", ctx.fs.path(M.PEM))
  local path = M.kubelet_conf(ctx)
  local t, err = kc.load(path)
  if not t then return nil, kerror.new("kubelet-finalize", ("cannot update %s: %s"):format(ctx.fs.path(path), tostring(err))) end
  local _, changed = M.rewrite(t, M.PEM)
  if not changed then return true end
  local ok, werr = kc.write(path, t)
  if not ok then return nil, kerror.new("kubelet-finalize", ("cannot write %s: %s"):format(ctx.fs.path(path), tostring(werr))) end
  log(ctx).info("kubelet-finalize", "Updating %q to point to a rotatable kubelet client certificate and key", ctx.fs.path(path))
  return true
end

function M.phases()
  return { { name = "kubelet-finalize/enable-client-cert-rotation", help = "Enable kubelet client certificate rotation",
             run = M.run, no_api = true } }
end

return M

-- kube-scheduler static Pod as kubeadm v1.31 writes it (phases/controlplane):
-- component protocol render (pure) / save / apply / clean.
local mf = require("kboot.manifest")

local M = { name = "kube-scheduler", phase = "control-plane/scheduler" }

M.PORT = 10259

function M.command(ctx)
  local kubeconfig = "/etc/kubernetes/scheduler.conf"
  local args = {
    { name = "bind-address", value = "127.0.0.1" },
    { name = "leader-elect", value = "true" },
    { name = "kubeconfig", value = kubeconfig },
    { name = "authentication-kubeconfig", value = kubeconfig },
    { name = "authorization-kubeconfig", value = kubeconfig },
  }
  mf.add_version_flags(ctx, args, "scheduler")
  local cmd = { "kube-scheduler" }
  for _, a in ipairs(mf.args_to_command(args, ctx.cluster.scheduler.extraArgs)) do cmd[#cmd + 1] = a end
  return cmd
end

function M.mounts(ctx)
  local m = mf.new_mounts()
  local kc = "/etc/kubernetes/scheduler.conf"
  mf.add_mount(m, "kubeconfig", kc, kc, true, "FileOrCreate")
  mf.add_extra_mounts(m, ctx.cluster.scheduler.extraVolumes, "scheduler.extraVolumes")
  return m
end

function M.render(ctx)
  return mf.secure_component_pod(ctx, M, ctx.cluster.scheduler, "100m")
end

return mf.static_pod(M)

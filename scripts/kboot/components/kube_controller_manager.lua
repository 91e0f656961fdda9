-- kube-controller-manager static Pod as kubeadm v1.31 writes it (phases/controlplane):
-- component protocol render (pure) / save / apply / clean.
local mf = require("kboot.manifest")

local M = { name = "kube-controller-manager", phase = "control-plane/controller-manager" }

M.FLEXVOLUME_DIR = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"
M.PORT = 10257

-- External CA mode (ca.crt without ca.key, found by kboot.manifest's node_facts): the csrsigning
-- controller must not start, so kubeadm passes empty signing flags.
local function external_ca(ctx) return ctx.cache.external_ca == true end

function M.command(ctx)
  local c = ctx.cluster
  local dir = c.certificatesDir
  local kubeconfig = "/etc/kubernetes/controller-manager.conf"
  local ca = dir .. "/ca.crt"
  local args = {
    { name = "bind-address", value = "127.0.0.1" },
    { name = "leader-elect", value = "true" },
    { name = "kubeconfig", value = kubeconfig },
    { name = "authentication-kubeconfig", value = kubeconfig },
    { name = "authorization-kubeconfig", value = kubeconfig },
    { name = "client-ca-file", value = ca },
    { name = "requestheader-client-ca-file", value = dir .. "/front-proxy-ca.crt" },
    { name = "root-ca-file", value = ca },
    { name = "service-account-private-key-file", value = dir .. "/sa.key" },
    { name = "cluster-signing-cert-file", value = ca },
    { name = "cluster-signing-key-file", value = dir .. "/ca.key" },
    { name = "use-service-account-credentials", value = "true" },
    { name = "controllers", value = "*,bootstrapsigner,tokencleaner" },
  }
  if external_ca(ctx) then
    mf.set_arg(args, "cluster-signing-key-file", "")
    mf.set_arg(args, "cluster-signing-cert-file", "")
  end
  local pod_subnet = c.networking.podSubnet
  if pod_subnet and pod_subnet ~= "" then
    mf.set_arg(args, "allocate-node-cidrs", "true")
    mf.set_arg(args, "cluster-cidr", pod_subnet)
    if (c.networking.serviceSubnet or "") ~= "" then
      mf.set_arg(args, "service-cluster-ip-range", c.networking.serviceSubnet)
    end
  end
  if (c.clusterName or "") ~= "" then mf.set_arg(args, "cluster-name", c.clusterName) end
  mf.add_version_flags(ctx, args, "controller_manager")
  local cmd = { "kube-controller-manager" }
  for _, a in ipairs(mf.args_to_command(args, c.controllerManager.extraArgs)) do cmd[#cmd + 1] = a end
  return cmd
end

function M.mounts(ctx)
  local c = ctx.cluster
  local m = mf.new_mounts()
  mf.add_mount(m, "k8s-certs", c.certificatesDir, c.certificatesDir, true, "DirectoryOrCreate")
  mf.add_mount(m, "ca-certs", mf.CA_CERTS_PATH, mf.CA_CERTS_PATH, true, "DirectoryOrCreate")
  local kc = "/etc/kubernetes/controller-manager.conf"
  mf.add_mount(m, "kubeconfig", kc, kc, true, "FileOrCreate")
  -- third-party storage plugins talk through sockets here: read-write
  local flex = mf.get_arg(c.controllerManager.extraArgs, "flex-volume-plugin-dir") or M.FLEXVOLUME_DIR
  mf.add_mount(m, "flexvolume-dir", flex, flex, false, "DirectoryOrCreate")
  mf.add_ca_extra_mounts(ctx, m)
  mf.add_extra_mounts(m, c.controllerManager.extraVolumes, "controllerManager.extraVolumes")
  return m
end

function M.render(ctx)
  return mf.secure_component_pod(ctx, M, ctx.cluster.controllerManager, "200m")
end

return mf.static_pod(M)

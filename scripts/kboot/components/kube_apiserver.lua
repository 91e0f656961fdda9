-- kube-apiserver static Pod as kubeadm v1.31 writes it (phases/controlplane/manifests.go,
-- volumes.go): component protocol render (pure) / save / apply / clean.
local mf = require("kboot.manifest")

local M = { name = "kube-apiserver", phase = "control-plane/apiserver" }

local join_host_port = require("kboot.net").join_host_port

-- Authorization modes kubeadm accepts from extraArgs; Node,RBAC when none is valid.
local VALID_AUTHZ = { Node = true, RBAC = true, Webhook = true, ABAC = true, AlwaysAllow = true, AlwaysDeny = true }
local function authz_modes(requested, warnings)
  if requested and requested ~= "" then
    local modes = {}
    for m in requested:gmatch("[^,]+") do
      if VALID_AUTHZ[m] then modes[#modes + 1] = m
      else warnings[#warnings + 1] = ("ignoring unknown kube-apiserver authorization-mode %q"):format(m) end
    end
    if #modes > 0 then return table.concat(modes, ",") end
  end
  return "Node,RBAC"
end

-- command(ctx [, warnings]): the container's command; what it had to ignore goes to warnings.
function M.command(ctx, warnings)
  warnings = warnings or {}
  local c = ctx.cluster
  local dir = c.certificatesDir
  local addr = ctx.endpoint.address
  local args = {
    { name = "advertise-address", value = addr },
    { name = "enable-admission-plugins", value = "NodeRestriction" },
    { name = "service-cluster-ip-range", value = c.networking.serviceSubnet },
    { name = "service-account-key-file", value = dir .. "/sa.pub" },
    { name = "service-account-signing-key-file", value = dir .. "/sa.key" },
    { name = "service-account-issuer", value = "https://kubernetes.default.svc." .. c.networking.dnsDomain },
    { name = "client-ca-file", value = dir .. "/ca.crt" },
    { name = "tls-cert-file", value = dir .. "/apiserver.crt" },
    { name = "tls-private-key-file", value = dir .. "/apiserver.key" },
    { name = "kubelet-client-certificate", value = dir .. "/apiserver-kubelet-client.crt" },
    { name = "kubelet-client-key", value = dir .. "/apiserver-kubelet-client.key" },
    { name = "enable-bootstrap-token-auth", value = "true" },
    { name = "secure-port", value = tostring(ctx.endpoint.port) },
    { name = "allow-privileged", value = "true" },
    { name = "kubelet-preferred-address-types", value = "InternalIP,ExternalIP,Hostname" },
    -- front proxy: added unconditionally, as kubeadm does
    { name = "requestheader-username-headers", value = "X-Remote-User" },
    { name = "requestheader-group-headers", value = "X-Remote-Group" },
    { name = "requestheader-extra-headers-prefix", value = "X-Remote-Extra-" },
    { name = "requestheader-client-ca-file", value = dir .. "/front-proxy-ca.crt" },
    { name = "requestheader-allowed-names", value = "front-proxy-client" },
    { name = "proxy-client-cert-file", value = dir .. "/front-proxy-client.crt" },
    { name = "proxy-client-key-file", value = dir .. "/front-proxy-client.key" },
  }
  local ext = c.etcd and c.etcd.external
  if ext then
    mf.set_arg(args, "etcd-servers", table.concat(ext.endpoints or {}, ","))
    if (ext.caFile or "") ~= "" then mf.set_arg(args, "etcd-cafile", ext.caFile) end
    if (ext.certFile or "") ~= "" and (ext.keyFile or "") ~= "" then
      mf.set_arg(args, "etcd-certfile", ext.certFile)
      mf.set_arg(args, "etcd-keyfile", ext.keyFile)
    end
  else
    local lo = addr:find(":", 1, true) and "::1" or "127.0.0.1"
    mf.set_arg(args, "etcd-servers", "https://" .. join_host_port(lo, "2379"))
    mf.set_arg(args, "etcd-cafile", dir .. "/etcd/ca.crt")
    mf.set_arg(args, "etcd-certfile", dir .. "/apiserver-etcd-client.crt")
    mf.set_arg(args, "etcd-keyfile", dir .. "/apiserver-etcd-client.key")
    local l = c.etcd and c.etcd["local"]
    local v = l and mf.get_arg(l.extraArgs, "advertise-client-urls")
    if v then mf.set_arg(args, "etcd-servers", v) end
  end
  local extra = c.apiServer.extraArgs or {}
  if not mf.get_arg(extra, "authorization-config") then
    mf.set_arg(args, "authorization-mode", authz_modes((mf.get_arg(extra, "authorization-mode")), warnings))
  end
  mf.add_version_flags(ctx, args, "apiserver")
  local cmd = { "kube-apiserver" }
  for _, a in ipairs(mf.args_to_command(args, extra)) do cmd[#cmd + 1] = a end
  return cmd
end

function M.mounts(ctx)
  local c = ctx.cluster
  local m = mf.new_mounts()
  mf.add_mount(m, "k8s-certs", c.certificatesDir, c.certificatesDir, true, "DirectoryOrCreate")
  mf.add_mount(m, "ca-certs", mf.CA_CERTS_PATH, mf.CA_CERTS_PATH, true, "DirectoryOrCreate")
  if c.etcd and c.etcd.external then
    for i, dir in ipairs(mf.etcd_cert_dirs(c.etcd.external, c.certificatesDir)) do
      local name = ("etcd-certs-%d"):format(i - 1)
      mf.add_mount(m, name, dir, dir, true, "DirectoryOrCreate")
    end
  end
  mf.add_ca_extra_mounts(ctx, m)
  mf.add_extra_mounts(m, c.apiServer.extraVolumes, "apiServer.extraVolumes")
  return m
end

function M.render(ctx)
  local warnings = {}
  local addr = ctx.endpoint.address
  local host = (addr and addr ~= "") and mf.probe_address(addr) or "127.0.0.1"
  local port = ctx.endpoint.port
  local m = M.mounts(ctx)
  local container = mf.container {
    name = M.name,
    image = mf.kube_image(ctx, M.name),
    command = M.command(ctx, warnings),
    volumeMounts = mf.volume_mounts(m),
    livenessProbe = mf.liveness(host, "/livez", port, "HTTPS"),
    readinessProbe = mf.readiness(host, "/readyz", port, "HTTPS"),
    startupProbe = mf.startup(host, "/livez", port, "HTTPS", mf.health_check_timeout(ctx)),
    resources = { requests = { cpu = "250m" } },
    env = mf.merge_env(mf.proxy_env(ctx), ctx.cluster.apiServer.extraEnvs),
  }
  local pod = mf.pod(container, m, {
    ["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"] = join_host_port(addr, tostring(port)),
  })
  local a = mf.artifacts(M.name, pod)
  a.warnings = warnings
  return a
end

return mf.static_pod(M)

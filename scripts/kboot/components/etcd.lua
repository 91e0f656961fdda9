-- The local etcd static Pod as kubeadm v1.31 writes it (phases/etcd/local.go): component
-- protocol render (pure) / save / apply / clean. Not used with external etcd, whose
-- endpoints and certificates go into the kube-apiserver flags instead.
local mf = require("kboot.manifest")

local M = { name = "etcd", phase = "etcd/local" }

M.CLIENT_PORT, M.PEER_PORT, M.METRICS_PORT = 2379, 2380, 2381

local join_host_port = require("kboot.net").join_host_port

local function is_v6(ctx) return (ctx.endpoint.address or ""):find(":", 1, true) ~= nil end
local function localhost(ctx) return is_v6(ctx) and "::1" or "127.0.0.1" end

function M.client_url(ctx) return "https://" .. join_host_port(ctx.endpoint.address, M.CLIENT_PORT) end
function M.peer_url(ctx) return "https://" .. join_host_port(ctx.endpoint.address, M.PEER_PORT) end

local function local_cfg(ctx)
  local l = ctx.cluster.etcd and ctx.cluster.etcd["local"]
  if not l then error("etcd: the configuration uses external etcd; there is no local etcd to render", 3) end
  return l
end

function M.image(ctx)
  local l = local_cfg(ctx)
  local repo = (l.imageRepository and l.imageRepository ~= "") and l.imageRepository or ctx.cluster.imageRepository
  local tag = (l.imageTag and l.imageTag ~= "") and l.imageTag or ctx.version.etcd
  return ("%s/etcd:%s"):format(repo, tag)
end

function M.command(ctx)
  local c, l = ctx.cluster, local_cfg(ctx)
  local dir = c.certificatesDir
  local lo = localhost(ctx)
  local node = ctx.node.name
  local args = {
    { name = "name", value = node },
    { name = "listen-client-urls", value = ("https://%s,%s"):format(join_host_port(lo, M.CLIENT_PORT), M.client_url(ctx)) },
    { name = "advertise-client-urls", value = M.client_url(ctx) },
    { name = "listen-peer-urls", value = M.peer_url(ctx) },
    { name = "initial-advertise-peer-urls", value = M.peer_url(ctx) },
    { name = "data-dir", value = l.dataDir },
    { name = "cert-file", value = dir .. "/etcd/server.crt" },
    { name = "key-file", value = dir .. "/etcd/server.key" },
    { name = "trusted-ca-file", value = dir .. "/etcd/ca.crt" },
    { name = "client-cert-auth", value = "true" },
    { name = "peer-cert-file", value = dir .. "/etcd/peer.crt" },
    { name = "peer-key-file", value = dir .. "/etcd/peer.key" },
    { name = "peer-trusted-ca-file", value = dir .. "/etcd/ca.crt" },
    { name = "peer-client-cert-auth", value = "true" },
    { name = "snapshot-count", value = "10000" },
    { name = "listen-metrics-urls", value = "http://" .. join_host_port(lo, M.METRICS_PORT) },
  }
  -- the corrupt-check and watch-progress flags are spelled per etcd version (kboot.versions)
  mf.add_version_flags(ctx, args, "etcd")
  local joining = ctx.cache and ctx.cache.etcd_initial_cluster
  if joining ~= nil and (type(joining) ~= "string" or joining == "") then
    error("etcd: ctx.cache.etcd_initial_cluster must be a non-empty string (name=peerURL,...)", 2)
  end
  if joining then
    -- join: the members etcd_members.initial_cluster listed after adding this one (kubeadm's
    -- CreateStackedEtcdStaticPodManifestFile), into the cluster that exists
    mf.set_arg(args, "initial-cluster", joining)
    mf.set_arg(args, "initial-cluster-state", "existing")
  else
    -- init: a new single-member cluster
    mf.set_arg(args, "initial-cluster", ("%s=%s"):format(node, M.peer_url(ctx)))
  end
  local cmd = { "etcd" }
  for _, a in ipairs(mf.args_to_command(args, l.extraArgs)) do cmd[#cmd + 1] = a end
  return cmd
end

-- kubeadm's GetEtcdProbeEndpoint: the first listen-metrics-urls of extraArgs, else localhost:2381.
function M.probe_endpoint(ctx)
  local l = local_cfg(ctx)
  local host, port, scheme = localhost(ctx), M.METRICS_PORT, "HTTP"
  local v = mf.get_arg(l.extraArgs, "listen-metrics-urls")
  if v then
    local url = v:match("^[^,]*")
    local sch, rest = url:match("^(%a[%w+.-]*)://(.*)$")
    if sch then
      if sch == "https" then scheme = "HTTPS" end
      local hostport = rest:match("^[^/]*")
      local h, p = hostport:match("^%[(.*)%]:?(%d*)$")
      if not h then h, p = hostport:match("^([^:]*):?(%d*)$") end
      if h and h ~= "" then host = h end
      if p and p ~= "" and tonumber(p) and tonumber(p) < 65536 then port = math.tointeger(tonumber(p)) end
    end
  end
  return host, port, scheme
end

function M.render(ctx)
  local c, l = ctx.cluster, local_cfg(ctx)
  local certs_dir = c.certificatesDir .. "/etcd"
  local m = mf.new_mounts()
  mf.add_mount(m, "etcd-data", l.dataDir, l.dataDir, false, "DirectoryOrCreate")
  mf.add_mount(m, "etcd-certs", certs_dir, certs_dir, false, "DirectoryOrCreate")
  local host, port, scheme = M.probe_endpoint(ctx)
  local container = mf.container {
    name = M.name,
    image = M.image(ctx),
    command = M.command(ctx),
    -- kubeadm lists these two in this order (data first), not sorted
    volumeMounts = { { name = "etcd-data", mountPath = l.dataDir }, { name = "etcd-certs", mountPath = certs_dir } },
    resources = { requests = { cpu = "100m", memory = "100Mi" } },
    livenessProbe = mf.liveness(host, "/livez", port, scheme),
    readinessProbe = mf.readiness(host, "/readyz", port, scheme),
    startupProbe = mf.startup(host, "/readyz", port, scheme, mf.health_check_timeout(ctx)),
    env = mf.merge_env(l.extraEnvs),
  }
  local pod = mf.pod(container, m, { ["kubeadm.kubernetes.io/etcd.advertise-client-urls"] = M.client_url(ctx) })
  local a = mf.artifacts(M.name, pod)
  -- kubeadm creates the data directory 0700 before writing the manifest
  a.dirs = { { path = l.dataDir, mode = 448 } }
  return a
end

function M.before(ctx)
  ctx.log.info("etcd", "%s static Pod manifest for local etcd in %q", ctx.dry_run and "dry run: would create" or "Creating",
               ctx.fs.path(mf.DIR))
  return true
end

-- The data directory this node's etcd uses: --data-dir of the manifest on disk (what the running
-- member was given, even when the config at hand says otherwise), else the configuration's, else
-- kubeadm's default. clean works without a full configuration.
M.DEFAULT_DATA_DIR = "/var/lib/etcd"
function M.data_dir(ctx)
  local text = ctx.fs.read(mf.path(M.name))
  local dir = text and text:match("\n%s*%-%s*%-%-data%-dir=([^\n]+)")
  if dir then return (dir:gsub("%s+$", ""):gsub("^[\"']", ""):gsub("[\"']$", "")) end
  local l = ctx.cluster and ctx.cluster.etcd and ctx.cluster.etcd["local"]
  return l and l.dataDir or M.DEFAULT_DATA_DIR
end

-- What this node's reset removes: the data directory's contents (as kubeadm, the directory stays)
-- and the manifest. The data dir is read from the manifest before the manifest goes.
function M.clean(ctx)
  local ok, err = require("kboot.component").empty_dir(ctx, M.data_dir(ctx))
  if not ok then return nil, err end
  return mf.clean(ctx, M.name)
end

return M

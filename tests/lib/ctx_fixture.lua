-- A hand-built phase ctx following the init contract (what config/init would produce for a
-- defaulted v1beta4 configuration), for tests of the certs/kubeconfig/component modules.
local M = {}

local function merge(dst, src)
  for k, v in pairs(src or {}) do
    if type(v) == "table" and type(dst[k]) == "table" and v[1] == nil and next(v) ~= nil then
      merge(dst[k], v)
    else
      dst[k] = v
    end
  end
  return dst
end
M.merge = merge

-- M.new{ root = DIR (fs root, optional), cluster = {overrides}, init = {overrides}, ... }
function M.new(o)
  o = o or {}
  local cluster = merge({
    kubernetesVersion = "v1.31.0",
    controlPlaneEndpoint = "",
    certificatesDir = "/etc/kubernetes/pki",
    imageRepository = "registry.k8s.io",
    clusterName = "kubernetes",
    encryptionAlgorithm = "RSA-2048",
    certificateValidityPeriod = "8760h0m0s",
    caCertificateValidityPeriod = "87600h0m0s",
    networking = { serviceSubnet = "10.96.0.0/12", podSubnet = "", dnsDomain = "cluster.local" },
    apiServer = { certSANs = {}, extraArgs = {}, extraVolumes = {}, extraEnvs = {} },
    controllerManager = { extraArgs = {}, extraVolumes = {}, extraEnvs = {} },
    scheduler = { extraArgs = {}, extraVolumes = {}, extraEnvs = {} },
    etcd = { ["local"] = { dataDir = "/var/lib/etcd", extraArgs = {}, extraEnvs = {},
                           serverCertSANs = {}, peerCertSANs = {} } },
    dns = { disabled = false }, proxy = { disabled = false }, featureGates = {},
  }, o.cluster)
  if o.external_etcd then
    cluster.etcd = { external = o.external_etcd }
  end
  local init = merge({
    localAPIEndpoint = { advertiseAddress = "10.0.0.10", bindPort = 6443 },
    nodeRegistration = {
      name = "node-1", criSocket = "unix:///var/run/containerd/containerd.sock",
      taints = { { key = "node-role.kubernetes.io/control-plane", effect = "NoSchedule" } },
      kubeletExtraArgs = {}, ignorePreflightErrors = {}, imagePullPolicy = "IfNotPresent",
    },
    timeouts = { controlPlaneComponentHealthCheck = "4m0s" },
  }, o.init)
  local fs = require("kboot.fs")
  if o.root then fs.set_root(o.root) end
  local ctx = {
    init = init, cluster = cluster, kubelet = o.kubelet, kubeproxy = o.kubeproxy,
    version = o.version or assert(require("kboot.versions").get(cluster.kubernetesVersion)),
    node_name = init.nodeRegistration.name,
    advertise_address = init.localAPIEndpoint.advertiseAddress,
    bind_port = init.localAPIEndpoint.bindPort,
    cert_validity = o.cert_validity or 365 * 24 * 3600,
    ca_validity = o.ca_validity or 3650 * 24 * 3600,
    dry_run = o.dry_run or false, opts = o.opts or {},
    fs = fs, log = require("kboot.log"), now = o.now or os.time(),
    hostname = o.hostname,
  }
  return ctx
end

-- Skip the calling test while a runtime module this build lacks is still the skeleton's stub
-- (before the lead merged it); any real failure of a present module still fails the test.
local probes = {
  pki = function() return require("kboot.pki").generate_key ~= nil end,
  fs = function() return require("kboot.fs").write ~= nil end,
  yaml = function() return require("kboot.yaml").encode ~= nil end,
  http = function() return require("kboot.http").client ~= nil end,
  crypto = function() return require("kboot.crypto").base64 ~= nil end,
  kubeconfig = function() return (pcall(require, "kboot.kubeconfig")) end,
}
function M.skip_unless(lu, ...)
  local missing = {}
  for _, m in ipairs({ ... }) do
    if not probes[m]() then missing[#missing + 1] = "kboot." .. m end
  end
  if #missing > 0 then lu.skip("not in this build yet: " .. table.concat(missing, ", ")) end
end

return M

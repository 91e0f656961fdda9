-- Known fields of kubeadm's InitConfiguration / ClusterConfiguration / JoinConfiguration, API versions kubeadm.k8s.io/v1beta3
-- and v1beta4 (kubeadm's cmd/kubeadm/app/apis/kubeadm/v1beta{3,4}/types.go). A field not listed here is an
-- error naming its path. Leaf types: "string", "int", "bool", "duration" (Go duration string), "any";
-- { map = {...} } an object with these fields; { list = T } a sequence of T; { dict = T } string keys -> T.
local M = {}

local S, I, B, D, ANY = "string", "int", "bool", "duration", "any"
local function list(t) return { list = t } end
local function map(t) return { map = t } end
local function dict(t) return { dict = t } end

local taint = map { key = S, value = S, effect = S, timeAdded = S }
local token = map { token = S, description = S, ttl = D, expires = S, usages = list(S), groups = list(S) }
local endpoint = map { advertiseAddress = S, bindPort = I }
local patches = map { directory = S }
local arg = map { name = S, value = S }
local env = map { name = S, value = S, valueFrom = ANY }
local volume = map { name = S, hostPath = S, mountPath = S, readOnly = B, pathType = S }
local networking = map { serviceSubnet = S, podSubnet = S, dnsDomain = S }
local external = map { endpoints = list(S), caFile = S, certFile = S, keyFile = S }
local typemeta = { apiVersion = S, kind = S }

local function with_meta(fields)
  for k, v in pairs(typemeta) do fields[k] = v end
  return map(fields)
end

-- JoinConfiguration's discovery and control-plane sections (kboot.join_config); v1beta4 dropped
-- discovery.timeout for timeouts.discovery.
local token_discovery = map { token = S, apiServerEndpoint = S, caCertHashes = list(S), unsafeSkipCAVerification = B }
local file_discovery = map { kubeConfigPath = S }
local join_control_plane = map { localAPIEndpoint = endpoint, certificateKey = S }

-- v1beta3 (kubeadm v1.22 .. v1.30 default): extraArgs and kubeletExtraArgs are string maps.
M.v1beta3 = {
  InitConfiguration = with_meta {
    bootstrapTokens = list(token),
    nodeRegistration = map { name = S, criSocket = S, taints = list(taint), kubeletExtraArgs = dict(S),
                             ignorePreflightErrors = list(S), imagePullPolicy = S },
    localAPIEndpoint = endpoint, certificateKey = S, skipPhases = list(S), patches = patches,
  },
  ClusterConfiguration = with_meta {
    etcd = map {
      ["local"] = map { imageRepository = S, imageTag = S, dataDir = S, extraArgs = dict(S),
                        serverCertSANs = list(S), peerCertSANs = list(S) },
      external = external,
    },
    networking = networking, kubernetesVersion = S, controlPlaneEndpoint = S,
    apiServer = map { extraArgs = dict(S), extraVolumes = list(volume), certSANs = list(S),
                      timeoutForControlPlane = D },
    controllerManager = map { extraArgs = dict(S), extraVolumes = list(volume) },
    scheduler = map { extraArgs = dict(S), extraVolumes = list(volume) },
    dns = map { imageRepository = S, imageTag = S },
    certificatesDir = S, imageRepository = S, featureGates = dict(B), clusterName = S,
  },
  JoinConfiguration = with_meta {
    nodeRegistration = map { name = S, criSocket = S, taints = list(taint), kubeletExtraArgs = dict(S),
                             ignorePreflightErrors = list(S), imagePullPolicy = S },
    caCertPath = S,
    discovery = map { bootstrapToken = token_discovery, file = file_discovery, tlsBootstrapToken = S, timeout = D },
    controlPlane = join_control_plane, skipPhases = list(S), patches = patches,
  },
}

-- v1beta4 (kubeadm v1.31+): extraArgs are lists of {name, value}; extraEnvs; timeouts; validity periods.
local timeouts = map { controlPlaneComponentHealthCheck = D, kubeletHealthCheck = D, kubernetesAPICall = D,
                       etcdAPICall = D, tlsBootstrap = D, discovery = D, upgradeManifests = D }
local component4 = map { extraArgs = list(arg), extraVolumes = list(volume), extraEnvs = list(env) }
M.v1beta4 = {
  InitConfiguration = with_meta {
    bootstrapTokens = list(token), dryRun = B,
    nodeRegistration = map { name = S, criSocket = S, taints = list(taint), kubeletExtraArgs = list(arg),
                             ignorePreflightErrors = list(S), imagePullPolicy = S, imagePullSerial = B },
    localAPIEndpoint = endpoint, certificateKey = S, skipPhases = list(S), patches = patches,
    timeouts = timeouts,
  },
  ClusterConfiguration = with_meta {
    etcd = map {
      ["local"] = map { imageRepository = S, imageTag = S, dataDir = S, extraArgs = list(arg),
                        extraEnvs = list(env), serverCertSANs = list(S), peerCertSANs = list(S) },
      external = external,
    },
    networking = networking, kubernetesVersion = S, controlPlaneEndpoint = S,
    apiServer = map { extraArgs = list(arg), extraVolumes = list(volume), extraEnvs = list(env),
                      certSANs = list(S) },
    controllerManager = component4, scheduler = component4,
    dns = map { imageRepository = S, imageTag = S, disabled = B },
    proxy = map { disabled = B },
    certificatesDir = S, imageRepository = S, featureGates = dict(B), clusterName = S,
    encryptionAlgorithm = S, certificateValidityPeriod = D, caCertificateValidityPeriod = D,
  },
  JoinConfiguration = with_meta {
    dryRun = B,
    nodeRegistration = map { name = S, criSocket = S, taints = list(taint), kubeletExtraArgs = list(arg),
                             ignorePreflightErrors = list(S), imagePullPolicy = S, imagePullSerial = B },
    caCertPath = S,
    discovery = map { bootstrapToken = token_discovery, file = file_discovery, tlsBootstrapToken = S },
    controlPlane = join_control_plane, skipPhases = list(S), patches = patches, timeouts = timeouts,
  },
}

-- ResetConfiguration exists from v1beta4 on (kboot.reset_config).
M.v1beta4.ResetConfiguration = with_meta {
  cleanupTmpDir = B, certificatesDir = S, criSocket = S, dryRun = B, force = B,
  ignorePreflightErrors = list(S), skipPhases = list(S), unmountFlags = list(S), timeouts = timeouts,
}

-- Other kinds a kubeadm config file may hold: accepted and checked lightly (see config.lua).
M.component_kinds = {
  KubeletConfiguration = "kubelet.config.k8s.io/v1beta1",
  KubeProxyConfiguration = "kubeproxy.config.k8s.io/v1alpha1",
}
-- Kinds of the kubeadm group that `init` does not use (kubeadm ignores them with a warning too).
M.ignored_kinds = { JoinConfiguration = true, ResetConfiguration = true, UpgradeConfiguration = true }

return M

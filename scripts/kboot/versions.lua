-- Per-Kubernetes-minor facts kubeadm hard-codes: image tags of etcd, CoreDNS and pause, and the flags
-- that appear or disappear in what kubeadm writes for that version. Image tags are the ones kubeadm
-- v1.<minor>.0 ships (kubeadm `config images list`); later patch releases of kubeadm sometimes raise the
-- etcd tag, pin it with etcd.local.imageTag when a site needs that.
-- Sources: kubeadm's cmd/kubeadm/app/constants/constants.go (SupportedEtcdVersion, CoreDNSVersion,
-- PauseVersion) of each release; v1.34 also checked against `kubeadm config images list` output.
local M = {}

-- Current release: the newest minor whose kubeadm image list could be verified (v1.34).
M.default_version = "v1.34.0"
M.min_minor, M.max_minor = 20, 34

-- minor -> images; everything else is derived in entry() below.
local images = {
  [20] = { etcd = "3.4.13-0", coredns = "1.7.0",  pause = "3.2" },
  [21] = { etcd = "3.4.13-0", coredns = "v1.8.0", pause = "3.4.1" },
  [22] = { etcd = "3.5.0-0",  coredns = "v1.8.4", pause = "3.5" },
  [23] = { etcd = "3.5.1-0",  coredns = "v1.8.6", pause = "3.6" },
  [24] = { etcd = "3.5.3-0",  coredns = "v1.8.6", pause = "3.7" },
  [25] = { etcd = "3.5.4-0",  coredns = "v1.9.3", pause = "3.8" },
  [26] = { etcd = "3.5.6-0",  coredns = "v1.9.3", pause = "3.9" },
  [27] = { etcd = "3.5.7-0",  coredns = "v1.10.1", pause = "3.9" },
  [28] = { etcd = "3.5.9-0",  coredns = "v1.10.1", pause = "3.9" },
  [29] = { etcd = "3.5.10-0", coredns = "v1.11.1", pause = "3.9" },
  [30] = { etcd = "3.5.12-0", coredns = "v1.11.1", pause = "3.9" },
  [31] = { etcd = "3.5.15-0", coredns = "v1.11.3", pause = "3.10" },
  [32] = { etcd = "3.5.16-0", coredns = "v1.11.3", pause = "3.10" },
  [33] = { etcd = "3.5.21-0", coredns = "v1.12.0", pause = "3.10" },
  [34] = { etcd = "3.6.4-0",  coredns = "v1.12.1", pause = "3.10.1" },
}

-- Version-dependent flags, by component, as {name, value, from=minor, to=minor (inclusive)}.
-- Components add the ones whose range holds ctx.version.minor (entry.flags.<component>).
M.flag_changes = {
  apiserver = {
    -- insecure serving was removed from kube-apiserver in v1.24; kubeadm disabled it explicitly before
    { "insecure-port", "0", from = 20, to = 23 },
  },
  controller_manager = {
    -- insecure --port removed from kube-controller-manager/kube-scheduler; kubeadm set it to 0 until then
    { "port", "0", from = 20, to = 22 },
  },
  scheduler = {
    { "port", "0", from = 20, to = 22 },
  },
  etcd = {
    -- etcd 3.5 spells these as experimental flags; etcd 3.6 (kubeadm v1.34) as a feature gate / GA flag
    { "experimental-initial-corrupt-check", "true", from = 25, to = 33 },
    { "experimental-watch-progress-notify-interval", "5s", from = 27, to = 33 },
    { "feature-gates", "InitialCorruptCheck=true", from = 34, to = 99 },
    { "watch-progress-notify-interval", "5s", from = 34, to = 99 },
  },
  kubelet = {
    -- kubeadm-flags.env: dockershim (network-plugin) went in v1.24, --container-runtime in v1.27
    { "network-plugin", "cni", from = 20, to = 23 },
    { "container-runtime", "remote", from = 20, to = 26 },
    -- value is the pause image; the kubelet drops the flag in v1.35
    { "pod-infra-container-image", true, from = 20, to = 34 },
  },
}

local function parse(v)
  if type(v) ~= "string" then return nil, "kubernetesVersion must be a string" end
  local maj, min, pat, rest = v:match("^v?(%d+)%.(%d+)%.(%d+)(.*)$")
  if not maj or (rest ~= "" and not rest:match("^%-[%w%.%-]+$") and not rest:match("^%+[%w%.%-]+$")) then
    return nil, ("invalid Kubernetes version %q (want vMAJOR.MINOR.PATCH, e.g. %s)"):format(v, M.default_version)
  end
  return tonumber(maj), tonumber(min), tonumber(pat), rest
end
M.parse = parse

local function entry(version, minor)
  local img = images[minor]
  local e = { version = version, minor = minor, etcd = img.etcd, coredns = img.coredns, pause = img.pause,
              -- CoreDNS moved to registry.k8s.io/coredns/coredns in v1.21
              coredns_image = minor >= 21 and "coredns/coredns" or "coredns", flags = {} }
  for comp, list in pairs(M.flag_changes) do
    local out = {}
    for _, f in ipairs(list) do
      if minor >= f.from and minor <= f.to then out[#out + 1] = { name = f[1], value = f[2] } end
    end
    e.flags[comp] = out
  end
  return e
end

-- get("v1.31.2") -> entry {version="v1.31.2", minor=31, etcd=, coredns=, pause=, coredns_image=,
-- flags={apiserver={{name=,value=}...}, controller_manager=, scheduler=, etcd=, kubelet=}} or nil, err.
function M.get(v)
  local maj, minor, _, err = parse(v)
  if not maj then return nil, minor end
  if maj ~= 1 then return nil, ("unsupported Kubernetes version %s: only v1.x is known"):format(v) end
  if minor < M.min_minor or minor > M.max_minor then
    return nil, ("unsupported Kubernetes version %s: kboot knows v1.%d to v1.%d"):format(v, M.min_minor, M.max_minor)
  end
  if v:sub(1, 1) ~= "v" then v = "v" .. v end
  return entry(v, minor)
end

-- Normalise a version the way kubeadm does for the default/stable labels: "stable"/"stable-1"/"latest"
-- have no network lookup here, so they map to the default; "1.31.0" gets its "v".
function M.resolve(v)
  if v == nil or v == "" or v == "stable" or v == "stable-1" or v == "latest" or v == "latest-1" then
    return M.default_version
  end
  if type(v) == "string" and v:match("^%d") then return "v" .. v end
  return v
end

-- The images `kboot config images list` prints (kubeadm's order).
function M.images(v, repo, opts)
  opts = opts or {}
  local e, err = M.get(v)
  if not e then return nil, err end
  repo = repo or "registry.k8s.io"
  local out = {}
  for _, c in ipairs({ "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy" }) do
    out[#out + 1] = ("%s/%s:%s"):format(repo, c, e.version)
  end
  out[#out + 1] = ("%s/%s:%s"):format(opts.dns_repo or repo, e.coredns_image, opts.dns_tag or e.coredns)
  out[#out + 1] = ("%s/pause:%s"):format(repo, e.pause)
  if not opts.external_etcd then
    out[#out + 1] = ("%s/etcd:%s"):format(opts.etcd_repo or repo, opts.etcd_tag or e.etcd)
  end
  return out
end

return M

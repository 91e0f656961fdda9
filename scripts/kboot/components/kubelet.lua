-- The files part of kubeadm's kubelet-start phase (v1.31: phases/kubelet/flags.go, config.go,
-- componentconfigs/kubelet.go): /var/lib/kubelet/config.yaml and kubeadm-flags.env, under the
-- names the distro's 10-kubeadm.conf drop-in reads; then (re)start the kubelet when there is one.
local mf = require("kboot.manifest")
local tbl = require("kboot.certs_table")

local M = { name = "kubelet", phase = "kubelet-start" }

M.DIR = "/var/lib/kubelet"
M.DIR_MODE = 448        -- 0700
M.FILE_MODE = 420       -- 0644
M.CONFIG = M.DIR .. "/config.yaml"
M.FLAGS = M.DIR .. "/kubeadm-flags.env"
M.RESOLVED_CONF = "/run/systemd/resolve/resolv.conf"
M.INSTANCE_CONFIG = M.DIR .. "/instance-config.yaml"

-- kubeadm's NodeLocalCRISocket feature (beta, on by default from v1.34; KEP-4656): the CRI
-- socket goes into /var/lib/kubelet/instance-config.yaml and config.yaml instead of the
-- deprecated --container-runtime-endpoint flag. featureGates.NodeLocalCRISocket overrides.
function M.node_local_cri_socket(ctx)
  local g = ctx.cluster.featureGates and ctx.cluster.featureGates.NodeLocalCRISocket
  if g ~= nil then return g == true end
  return (ctx.version and ctx.version.minor or 0) >= 34
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return setmetatable(t, getmetatable(v))
end

-- User values win; maps merge, everything else (lists included) is replaced.
local function overlay(dst, src)
  for k, v in pairs(src) do
    if type(v) == "table" and type(dst[k]) == "table" and next(v) ~= nil and v[1] == nil
       and next(dst[k]) ~= nil and dst[k][1] == nil then
      overlay(dst[k], v)
    else
      dst[k] = copy(v)
    end
  end
  return dst
end

-- Is systemd-resolved in use? kubeadm asks the init system whether the service is active;
-- kboot looks for the file it maintains on this host (the host facts).
local function resolved_active(ctx) return ctx.host.systemd_resolved == true end

-- The KubeletConfiguration kubeadm writes: its defaults on top of the zero-valued duration
-- fields that marshalling the v1beta1 type produces, then the user's document over it.
function M.config(ctx)
  local c = ctx.cluster
  local yaml = require("kboot.yaml")
  local cfg = {
    apiVersion = "kubelet.config.k8s.io/v1beta1", kind = "KubeletConfiguration",
    authentication = {
      anonymous = { enabled = false },
      webhook = { cacheTTL = "0s", enabled = true },
      x509 = { clientCAFile = c.certificatesDir .. "/ca.crt" },
    },
    authorization = { mode = "Webhook", webhook = { cacheAuthorizedTTL = "0s", cacheUnauthorizedTTL = "0s" } },
    cgroupDriver = "systemd",
    clusterDNS = { tbl.service_ip(ctx, 10) },
    clusterDomain = c.networking.dnsDomain,
    containerRuntimeEndpoint = "",
    cpuManagerReconcilePeriod = "0s",
    evictionPressureTransitionPeriod = "0s",
    fileCheckFrequency = "0s",
    healthzBindAddress = "127.0.0.1",
    healthzPort = 10248,
    httpCheckFrequency = "0s",
    imageMaximumGCAge = "0s",
    imageMinimumGCAge = "0s",
    logging = { flushFrequency = 0, verbosity = 0,
                options = { json = { infoBufferSize = "0" }, text = { infoBufferSize = "0" } } },
    memorySwap = {},
    nodeStatusReportFrequency = "0s",
    nodeStatusUpdateFrequency = "0s",
    rotateCertificates = true,
    runtimeRequestTimeout = "0s",
    shutdownGracePeriod = "0s",
    shutdownGracePeriodCriticalPods = "0s",
    staticPodPath = mf.DIR,
    streamingConnectionIdleTimeout = "0s",
    syncFrequency = "0s",
    volumeStatsAggPeriod = "0s",
  }
  if resolved_active(ctx) then cfg.resolvConf = M.RESOLVED_CONF end
  if ctx.kubelet then overlay(cfg, ctx.kubelet) end
  if M.node_local_cri_socket(ctx) then cfg.containerRuntimeEndpoint = ctx.node.criSocket or "" end
  -- kubeadm hard-codes these two whatever the user wrote
  cfg.rotateCertificates = true
  cfg.apiVersion, cfg.kind = "kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"
  if cfg.cgroupDriver == nil or cfg.cgroupDriver == "" then cfg.cgroupDriver = "systemd" end
  setmetatable(cfg.clusterDNS, yaml.array_mt)
  return cfg
end

-- Go's %q for the flags string: backslash and double quote escaped, control bytes as \xNN.
local function go_quote(s)
  return '"' .. s:gsub('[\\"%c]', function(ch)
    local named = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" }
    return named[ch] or ("\\x%02x"):format(ch:byte())
  end) .. '"'
end

-- The host name the kubelet registers under without --hostname-override: this host's.
function M.hostname(ctx) return ctx.host.hostname end

-- The kubelet flags kubeadm computes (buildKubeletArgs), merged with kubeletExtraArgs.
function M.flags(ctx)
  local nr = ctx.node
  local args = {}
  if (nr.criSocket or "") ~= "" and not M.node_local_cri_socket(ctx) then
    args[#args + 1] = { name = "container-runtime-endpoint", value = nr.criSocket }
  end
  mf.add_version_flags(ctx, args, "kubelet", { ["pod-infra-container-image"] = mf.pause_image(ctx) })
  -- init (and a control-plane join) sets its taints later in mark-control-plane; a worker
  -- registers with its own, as kubeadm join does
  if ctx.role == "worker" and nr.taints and #nr.taints > 0 then
    local t = {}
    for _, x in ipairs(nr.taints) do
      t[#t + 1] = x.key .. ((x.value and x.value ~= "") and ("=" .. x.value) or "") .. ":" .. x.effect
    end
    args[#args + 1] = { name = "register-with-taints", value = table.concat(t, ",") }
  end
  local node = mf.get_arg(nr.kubeletExtraArgs, "hostname-override") or ctx.node.name
  if node ~= M.hostname(ctx) then args[#args + 1] = { name = "hostname-override", value = node } end
  return mf.args_to_command(args, nr.kubeletExtraArgs)
end

function M.render(ctx)
  local yaml = require("kboot.yaml")
  local text, err = yaml.encode(M.config(ctx))
  if not text then return nil, require("kboot.error").new("render", "cannot encode the kubelet configuration: " .. tostring(err)) end
  local a = {
    dirs = { { path = M.DIR, mode = M.DIR_MODE } },
    files = {
      { path = M.FLAGS, mode = M.FILE_MODE, content = "KUBELET_KUBEADM_ARGS=" .. go_quote(table.concat(M.flags(ctx), " ")) .. "\n" },
      { path = M.CONFIG, mode = M.FILE_MODE, content = text },
    },
    objects = {},
  }
  if M.node_local_cri_socket(ctx) then
    local inst = assert(yaml.encode({ apiVersion = "kubelet.config.k8s.io/v1beta1", kind = "KubeletConfiguration",
                                      containerRuntimeEndpoint = ctx.node.criSocket or "" }))
    table.insert(a.files, 2, { path = M.INSTANCE_CONFIG, mode = M.FILE_MODE, content = inst })
  end
  return a
end

-- the generic save, with a line per file
function M.save(ctx, a)
  local verb = ctx.dry_run and "dry run: would write" or "Writing"
  for _, f in ipairs(a.files) do ctx.log.info("kubelet-start", "%s %s", verb, ctx.fs.path(f.path)) end
  return require("kboot.component").save(ctx, a)
end



-- What this node's reset removes of the kubelet's: the files kubelet-start wrote.
function M.clean(ctx)
  return require("kboot.component").remove_files(ctx, { M.FLAGS, M.INSTANCE_CONFIG, M.CONFIG })
end

local function first_existing(ctx, paths)
  for _, p in ipairs(paths) do
    if ctx.fs.exists(p) then return p end
  end
end

-- Restart the kubelet through systemd when this is a real host with systemctl and a kubelet;
-- never with a sandbox --root or a dry run. Returns true, or false and why it did nothing.
function M.start(ctx)
  local log = ctx.log or require("kboot.log")
  local why
  local root = ctx.fs.root and ctx.fs.root() or "/"
  if ctx.dry_run then
    why = "dry run: would restart the kubelet (systemctl restart kubelet)"
  elseif root ~= "/" then
    why = ("--root %s is a sandbox: not starting the host's kubelet"):format(root)
  elseif not first_existing(ctx, { "/usr/bin/systemctl", "/bin/systemctl" }) then
    why = "no systemctl on this host: start the kubelet with your init system"
  elseif not first_existing(ctx, { "/usr/bin/kubelet", "/usr/local/bin/kubelet", "/bin/kubelet" }) then
    why = "no kubelet binary found: install the kubelet package, it will read these files"
  end
  if why then
    log.info("kubelet-start", "%s", why)
    return false, why
  end
  -- the kubelet reads these files: an open kboot.fs batch must land first
  if ctx.fs.flush then
    local fok, ferr = ctx.fs.flush()
    if not fok then return nil, require("kboot.error").new("kubelet-start", "cannot write the kubelet files: " .. tostring(ferr)) end
  end
  log.info("kubelet-start", "Starting the kubelet")
  local ok = os.execute("systemctl restart kubelet")
  if not ok then
    log.warn("kubelet-start", "'systemctl restart kubelet' failed; check 'journalctl -xeu kubelet'")
    return false, "systemctl restart kubelet failed"
  end
  return true
end

-- Stop the kubelet through systemd (reset, before its files and mounts go), on the same terms
-- as start: a real root (`/`) with systemctl and a kubelet binary. Returns true, or false, why it
-- did nothing (and in a dry run the command it would run), or nil and a kboot.error when
-- systemctl failed. ctx.exec(cmd) -> ok, output
-- replaces the shell in tests.
function M.stop(ctx, tag)
  tag = tag or "reset"
  local log = ctx.log or require("kboot.log")
  local root = ctx.fs.root and ctx.fs.root() or "/"
  local why
  if root ~= "/" then
    why = ("--root %s is a sandbox: not stopping the host's kubelet"):format(root)
  elseif not first_existing(ctx, { "/usr/bin/systemctl", "/bin/systemctl" }) then
    why = "no systemctl on this host: stop the kubelet with your init system"
  elseif not first_existing(ctx, { "/usr/bin/kubelet", "/usr/local/bin/kubelet", "/bin/kubelet" }) then
    why = "no kubelet binary found: no kubelet to stop"
  elseif ctx.dry_run then
    why = "dry run: would stop the kubelet service (systemctl stop kubelet)"
  end
  if why then
    log.info(tag, "%s", why)
    return false, why, ctx.dry_run and why:find("^dry run") and "systemctl stop kubelet" or nil
  end
  log.info(tag, "Stopping the kubelet service")
  local exec = ctx.exec or function(cmd)
    local p = io.popen(cmd .. " 2>&1", "r")
    local out = p:read("a")
    return p:close() == true, out
  end
  local ok, out = exec("systemctl stop kubelet")
  if not ok then
    return nil, require("kboot.error").new(tag, ("The kubelet service could not be stopped ('systemctl stop kubelet': %s); "
      .. "please ensure kubelet is stopped manually"):format((tostring(out or ""):gsub("%s+$", ""))))
  end
  return true
end

-- after the files: (re)start the kubelet; not being able to is a note, not a failure
function M.after(ctx)
  local ok, err = M.start(ctx)
  if ok == nil then return nil, err end
  return true
end

return M

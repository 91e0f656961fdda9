-- The semantic checks of kboot.config.load, after defaults and flags: addresses, subnets, names,
-- versions, tokens, certificate settings, component sections. Each problem is appended to errs as
-- one "Kind.field.path: what is wrong" line; warnings likewise. Split from config.lua to keep
-- both readable in one sitting; kboot.config is the only caller.
local net = require("kboot.net")
local versions = require("kboot.versions")
local duration = require("kboot.time").parse_duration
local address = require("kboot.config_schema").address

local M = {}

local function add(errs, path, fmt, ...) errs[#errs + 1] = path .. ": " .. fmt:format(...) end

-- The checks InitConfiguration and JoinConfiguration share (kboot.join_config calls them too);
-- path is the field's full path, e.g. "JoinConfiguration.nodeRegistration".

-- certificate key: hex of 32 bytes ("" = none)
function M.certificate_key(ck, path, errs)
  if ck and ck ~= "" and not (#ck == 64 and ck:match("^%x+$")) then
    add(errs, path, "must be 64 hex characters (a 32-byte AES key, as 'kboot certs certificate-key' prints)")
  end
end

-- nodeRegistration after defaults: name, criSocket, imagePullPolicy, taints, kubeletExtraArgs
function M.node_registration(nr, path, errs)
  local function e(p, fmt, ...) add(errs, p, fmt, ...) end
  if nr.name ~= "" and not net.is_dns_subdomain(nr.name) then
    e(path .. ".name", "%q is not a valid node name (lower case RFC 1123 subdomain: a-z, 0-9, '-', '.')", nr.name)
  end
  local sock = nr.criSocket
  if not (sock:match("^unix:///.") or sock:match("^/.")) then
    e(path .. ".criSocket", "%q must be an absolute path or a unix:// URL such as %s", sock, require("kboot.config").DEFAULT_CRI_SOCKET)
  end
  local policies = { Always = true, IfNotPresent = true, Never = true }
  if not policies[nr.imagePullPolicy] then
    e(path .. ".imagePullPolicy", "%q is not one of Always, IfNotPresent, Never", tostring(nr.imagePullPolicy))
  end
  local effects = { NoSchedule = true, PreferNoSchedule = true, NoExecute = true }
  for i, t in ipairs(nr.taints) do
    local p = ("%s.taints[%d]"):format(path, i - 1)
    if type(t.key) ~= "string" or not t.key:match("^[%w][%w%-%._/]*$") then e(p .. ".key", "a taint needs a key such as node-role.kubernetes.io/control-plane") end
    if not effects[t.effect] then e(p .. ".effect", "%q is not one of NoSchedule, PreferNoSchedule, NoExecute", tostring(t.effect)) end
  end
  for i, a in ipairs(nr.kubeletExtraArgs) do
    if type(a.name) ~= "string" or a.name == "" then e(("%s.kubeletExtraArgs[%d].name"):format(path, i - 1), "must not be empty") end
  end
end

-- skipPhases and timeouts of a flow's document (path: "InitConfiguration")
function M.skip_phases_and_timeouts(doc, path, errs)
  for _, name in ipairs(doc.skipPhases) do
    if type(name) ~= "string" or name == "" then add(errs, path .. ".skipPhases", "phase names must be non-empty strings") end
  end
  for k, v in pairs(doc.timeouts or {}) do
    local s = duration(v)
    if s and s <= 0 then add(errs, path .. ".timeouts." .. k, "must be positive") end
  end
end

-- A certificate validity period: whole seconds (X.509 times have no fractions), at least a minute,
-- and ending by 9999-12-31T23:59:59Z, the last time an X.509 GeneralizedTime holds (Go's duration
-- range, about 292 years, already stops short of it; the check keeps pki.sign's promise whatever
-- the parser allows). The schema checked the syntax.
M.MIN_VALIDITY = 60
M.X509_LAST = 253402300799
function M.validity_period(v, path, errs, now)
  local s = duration(v)
  if s == nil then return nil end
  if s <= 0 then add(errs, path, "%q must be positive", v)
  elseif math.type(s) ~= "integer" then add(errs, path, "%q must be whole seconds", v)
  elseif s < M.MIN_VALIDITY then add(errs, path, "%q is shorter than a minute (1m0s)", v)
  elseif s > M.X509_LAST - (now or os.time()) then
    add(errs, path, "%q ends after 9999-12-31, the last time an X.509 certificate can hold", v)
  else return s end
  return nil
end

-- An absolute directory or file kboot itself opens (through kboot.fs, which refuses a ".." that
-- climbs above "/"): path is the field's full path.
function M.host_path(p, path, errs)
  if p:sub(1, 1) ~= "/" then return add(errs, path, "%q must be an absolute path", p) end
  local depth = 0
  for c in p:gmatch("[^/]+") do
    depth = depth + (c == ".." and -1 or c == "." and 0 or 1)
    if depth < 0 then return add(errs, path, '%q climbs above / through ".."', p) end
  end
end

-- KubeletConfiguration document (nil: none)
function M.kubelet(kubelet, errs)
  if kubelet and kubelet.cgroupDriver ~= nil and kubelet.cgroupDriver ~= "systemd" and kubelet.cgroupDriver ~= "cgroupfs" then
    add(errs, "KubeletConfiguration.cgroupDriver", "%q is not one of systemd, cgroupfs", tostring(kubelet.cgroupDriver))
  end
end

-- validate(init, cluster, kubelet, errs, warnings) -> the version entry of kubernetesVersion (nil
-- when it is unknown: errs says why). C_: kboot.config, for its constants.
function M.validate(init, cluster, kubelet, errs, warnings)
  local C_ = require("kboot.config")
  local function e(path, fmt, ...) errs[#errs + 1] = path .. ": " .. fmt:format(...) end
  local I, C = "InitConfiguration", "ClusterConfiguration"

  -- bootstrap tokens: kboot.tokens has the rules (the same as `kboot token create`)
  local tokens = require("kboot.tokens")
  for i, t in ipairs(init.bootstrapTokens or {}) do
    local p = ("%s.bootstrapTokens[%d]"):format(I, i - 1)
    if t.token ~= nil and not tokens.parse(t.token) then
      e(p .. ".token", "%q is not a valid bootstrap token (want [a-z0-9]{6}.[a-z0-9]{16}, e.g. abcdef.0123456789abcdef)", tostring(t.token))
    end
    for j, u in ipairs(t.usages or {}) do
      if not tokens.check_usages({ u }) then
        e(("%s.usages[%d]"):format(p, j - 1), "unknown usage %q (want %s)", u, table.concat(tokens.USAGES, " or "))
      end
    end
    for j, g in ipairs(t.groups or {}) do
      local ok, why = tokens.check_group(g)
      if not ok then e(("%s.groups[%d]"):format(p, j - 1), "%s", why) end
    end
    local auth = false
    for _, u in ipairs(t.usages or {}) do auth = auth or u == "authentication" end
    if #(t.groups or {}) > 0 and not auth then
      e(p .. ".groups", 'token groups (%s) cannot be specified unless usages includes "authentication"', table.concat(t.groups, ","))
    end
    if t.ttl then
      local _, why = tokens.ttl(t.ttl)
      if why then e(p .. ".ttl", "%s", why) end
    end
  end
  M.certificate_key(init.certificateKey, I .. ".certificateKey", errs)
  -- local endpoint
  local ep = init.localAPIEndpoint
  local why = ep.advertiseAddress ~= "" and address.ip(ep.advertiseAddress)
  if why then
    e(I .. ".localAPIEndpoint.advertiseAddress", "%s", why)
  elseif net.is_loopback(ep.advertiseAddress) then
    warnings[#warnings + 1] = ("advertise address %s is a loopback address: only this host can reach the API server (fine for single-node and test clusters)"):format(ep.advertiseAddress)
  end
  if math.type(ep.bindPort) ~= "integer" or ep.bindPort < 1 or ep.bindPort > 65535 then
    e(I .. ".localAPIEndpoint.bindPort", "%s is not a valid port (1-65535)", tostring(ep.bindPort))
  end
  M.node_registration(init.nodeRegistration, I .. ".nodeRegistration", errs)
  M.skip_phases_and_timeouts(init, I, errs)

  -- cluster
  local ver = versions.get(cluster.kubernetesVersion)
  if not ver then
    local _, why = versions.get(cluster.kubernetesVersion)
    e(C .. ".kubernetesVersion", "%s", why)
  end
  local n = cluster.networking
  local svc = net.split_list(n.serviceSubnet)
  if #svc == 0 or #svc > 2 then e(C .. ".networking.serviceSubnet", "want one subnet, or two for dual-stack, got %q", n.serviceSubnet) end
  local svc_parsed = {}
  for _, s in ipairs(svc) do
    local c, why = net.parse_cidr(s)
    if not c then e(C .. ".networking.serviceSubnet", "%s", why)
    else
      svc_parsed[#svc_parsed + 1] = c
      local bits = net.cidr_size_bits(c)
      if bits > 20 then
        e(C .. ".networking.serviceSubnet", "%s is too large: at most 20 host bits (a /%d for IPv%d) are allowed", s, c.family == 4 and 12 or 108, c.family)
      elseif (1 << bits) < 10 + 2 then
        -- the 10th address is the cluster DNS service, so the subnet needs at least 16 addresses
        e(C .. ".networking.serviceSubnet", "%s is too small: it must hold at least 10 addresses (the 10th is the DNS service)", s)
      end
    end
  end
  if #svc_parsed == 2 and svc_parsed[1].family == svc_parsed[2].family then
    e(C .. ".networking.serviceSubnet", "dual-stack subnets must be one IPv4 and one IPv6, got %q", n.serviceSubnet)
  end
  if n.podSubnet ~= "" then
    local pods = net.split_list(n.podSubnet)
    if #pods > 2 then e(C .. ".networking.podSubnet", "want one subnet, or two for dual-stack, got %q", n.podSubnet) end
    for _, s in ipairs(pods) do
      local c, why = net.parse_cidr(s)
      if not c then e(C .. ".networking.podSubnet", "%s", why)
      else
        if (c.family == 4 and c.prefix > 28) or (c.family == 6 and c.prefix > 124) then
          e(C .. ".networking.podSubnet", "%s is too small for pods (at least 14 usable addresses)", s)
        end
        for _, sc in ipairs(svc_parsed) do
          if net.cidr_overlap(c, sc) then
            e(C .. ".networking.podSubnet", "%s overlaps the service subnet %s/%d", s, net.format_ip(sc), sc.prefix)
          end
        end
      end
    end
  end
  if not net.is_dns_subdomain(n.dnsDomain) then
    e(C .. ".networking.dnsDomain", "%q is not a valid DNS domain", n.dnsDomain)
  end
  if cluster.controlPlaneEndpoint ~= "" then
    local why = address.hostport(cluster.controlPlaneEndpoint)
    if why then e(C .. ".controlPlaneEndpoint", "%s", why) end
  end
  for i, san in ipairs(cluster.apiServer.certSANs) do
    if not (net.is_ip(san) or net.is_dns_subdomain(san) or net.is_dns_wildcard(san)) then
      e(("%s.apiServer.certSANs[%d]"):format(C, i - 1), "%q is not a valid IP address or DNS name", tostring(san))
    end
  end
  M.host_path(cluster.certificatesDir, C .. ".certificatesDir", errs)
  if cluster.imageRepository == "" or cluster.imageRepository:find("%s") then
    e(C .. ".imageRepository", "%q is not a valid image repository", cluster.imageRepository)
  end
  if not C_.ALGORITHMS[cluster.encryptionAlgorithm] then
    e(C .. ".encryptionAlgorithm", "unknown algorithm %q (want RSA-2048, RSA-3072, RSA-4096, ECDSA-P256 or ECDSA-P384)", cluster.encryptionAlgorithm)
  end
  local leaf = M.validity_period(cluster.certificateValidityPeriod, C .. ".certificateValidityPeriod", errs)
  local ca = M.validity_period(cluster.caCertificateValidityPeriod, C .. ".caCertificateValidityPeriod", errs)
  if leaf and ca and leaf > ca and leaf > 0 and ca > 0 then
    warnings[#warnings + 1] = ("certificateValidityPeriod %s is longer than caCertificateValidityPeriod %s: leaf certificates will outlive their CA"):format(cluster.certificateValidityPeriod, cluster.caCertificateValidityPeriod)
  end
  for gate in pairs(cluster.featureGates) do
    if not C_.FEATURE_GATES[gate] then e(C .. ".featureGates." .. gate, "unknown feature gate %q", gate) end
  end
  for _, comp in ipairs({ "apiServer", "controllerManager", "scheduler" }) do
    local c = cluster[comp]
    for i, a in ipairs(c.extraArgs) do
      if type(a.name) ~= "string" or a.name == "" then e(("%s.%s.extraArgs[%d].name"):format(C, comp, i - 1), "must not be empty") end
    end
    local types = { [""] = true, DirectoryOrCreate = true, Directory = true, FileOrCreate = true, File = true,
                    Socket = true, CharDevice = true, BlockDevice = true }
    for i, v in ipairs(c.extraVolumes) do
      local p = ("%s.%s.extraVolumes[%d]"):format(C, comp, i - 1)
      for _, f in ipairs({ "name", "hostPath", "mountPath" }) do
        if type(v[f]) ~= "string" or v[f] == "" then e(p .. "." .. f, "must not be empty") end
      end
      if type(v.hostPath) == "string" and v.hostPath ~= "" and v.hostPath:sub(1, 1) ~= "/" then e(p .. ".hostPath", "%q must be an absolute path", v.hostPath) end
      if type(v.mountPath) == "string" and v.mountPath ~= "" and v.mountPath:sub(1, 1) ~= "/" then e(p .. ".mountPath", "%q must be an absolute path", v.mountPath) end
      if not types[v.pathType] then e(p .. ".pathType", "unknown hostPath type %q", tostring(v.pathType)) end
    end
    for i, v in ipairs(c.extraEnvs) do
      if type(v.name) ~= "string" or v.name == "" then e(("%s.%s.extraEnvs[%d].name"):format(C, comp, i - 1), "must not be empty") end
    end
  end
  local etcd = cluster.etcd
  if etcd["local"] and etcd.external then
    e(C .. ".etcd", "local and external are mutually exclusive: set only one of etcd.local and etcd.external")
  elseif etcd.external then
    local x = etcd.external
    if not x.endpoints or #x.endpoints == 0 then e(C .. ".etcd.external.endpoints", "at least one endpoint is required") end
    for i, u in ipairs(x.endpoints or {}) do
      if not tostring(u):match("^https?://[^/%s]+") then
        e(("%s.etcd.external.endpoints[%d]"):format(C, i - 1), "%q must be a URL such as https://10.0.0.1:2379", tostring(u))
      end
    end
    local files = { x.caFile or "", x.certFile or "", x.keyFile or "" }
    local set = (files[1] ~= "" and 1 or 0) + (files[2] ~= "" and 1 or 0) + (files[3] ~= "" and 1 or 0)
    if set ~= 0 and set ~= 3 then e(C .. ".etcd.external", "caFile, certFile and keyFile must be set together") end
    for _, f in ipairs({ "caFile", "certFile", "keyFile" }) do
      if x[f] and x[f] ~= "" then M.host_path(x[f], C .. ".etcd.external." .. f, errs) end
    end
  else
    local l = etcd["local"]
    M.host_path(l.dataDir, C .. ".etcd.local.dataDir", errs)
    for _, f in ipairs({ "serverCertSANs", "peerCertSANs" }) do
      for i, san in ipairs(l[f]) do
        if not (net.is_ip(san) or net.is_dns_subdomain(san) or net.is_dns_wildcard(san)) then
          e(("%s.etcd.local.%s[%d]"):format(C, f, i - 1), "%q is not a valid IP address or DNS name", tostring(san))
        end
      end
    end
    for i, a in ipairs(l.extraArgs) do
      if type(a.name) ~= "string" or a.name == "" then e(("%s.etcd.local.extraArgs[%d].name"):format(C, i - 1), "must not be empty") end
    end
  end
  M.kubelet(kubelet, errs)
  return ver
end

return M

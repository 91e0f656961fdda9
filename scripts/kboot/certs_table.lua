-- kubeadm's certificate table as data: which certificates a control-plane node has, who signs
-- them, their subjects, SANs and usages. Facts from kubeadm v1.31+ (phases/certs/certlist.go,
-- util/pkiutil/pki_helpers.go, constants.go). A site may override this module (--scripts DIR).
local net = require("kboot.net")
local log = require("kboot.log")

local M = {}

-- kubeadm back-dates every certificate by CertificateBackdate (5 minutes) against clock skew.
M.BACKDATE = 5 * 60
M.DEFAULT_CERT_VALIDITY = 365 * 24 * 3600
M.DEFAULT_CA_VALIDITY = 10 * 365 * 24 * 3600

-- kubeadm sets KeyEncipherment|DigitalSignature on every certificate whatever the key type
-- (pkiutil.NewSignedCert / NewSelfSignedCACert), plus CertSign on CAs.
M.LEAF_USAGES = { "digital signature", "key encipherment" }
M.CA_USAGES = { "digital signature", "key encipherment", "cert sign" }

local function node_name(ctx) return ctx.node.name end

-- The first address of the first (dual-stack: comma separated) service subnet.
local function service_ip(ctx, n)
  local subnet = net.split_list(ctx.cluster.networking.serviceSubnet)[1]
  local ip, err = net.nth_ip(subnet or "", n)
  if not ip then
    error(("networking.serviceSubnet %q: %s"):format(tostring(subnet), tostring(err)), 0)
  end
  return ip
end
M.service_ip = service_ip

-- Append user SANs: IPs to ip, valid RFC 1123 names (or wildcards) to dns, others warned and
-- dropped exactly as kubeadm's appendSANsToAltNames does.
local function append_sans(alt, sans, cert_name)
  for _, s in ipairs(sans or {}) do
    if net.is_ip(s) then alt.ip[#alt.ip + 1] = s
    elseif net.is_dns_subdomain(s) or net.is_dns_wildcard(s) then alt.dns[#alt.dns + 1] = s
    else
      log.warn("certs", "'%s' was not added to the '%s' SAN, because it is not a valid IP or RFC-1123 compliant DNS entry", s, cert_name)
    end
  end
end

-- As pkiutil.RemoveDuplicateAltNames: DNS names become a sorted set, IPs keep their order
-- without duplicates (compared in canonical form).
function M.normalize_sans(alt)
  local seen, dns = {}, {}
  for _, d in ipairs(alt.dns) do
    if not seen[d] then seen[d] = true; dns[#dns + 1] = d end
  end
  table.sort(dns)
  local ips, iseen = {}, {}
  for _, ip in ipairs(alt.ip) do
    local canon = net.format_ip(assert(net.parse_ip(ip)))
    if not iseen[canon] then iseen[canon] = true; ips[#ips + 1] = canon end
  end
  return { dns = dns, ip = ips }
end

local function advertise_ip(ctx)
  local a = ctx.endpoint.address
  if not net.is_ip(a) then
    error(("localAPIEndpoint.advertiseAddress %q is not a valid IP address"):format(tostring(a)), 0)
  end
  return a
end

function M.apiserver_sans(ctx)
  local c = ctx.cluster
  local alt = {
    dns = { ctx.node.name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc." .. c.networking.dnsDomain },
    ip = { service_ip(ctx, 1), advertise_ip(ctx) },
  }
  local cpe = c.controlPlaneEndpoint
  if cpe and cpe ~= "" then
    local host = net.split_host_port(cpe)
    if not host or not (net.is_ip(host) or net.is_dns_subdomain(host)) then
      error(("controlPlaneEndpoint %q is not host[:port] with an IP address or DNS name"):format(cpe), 0)
    end
    if net.is_ip(host) then alt.ip[#alt.ip + 1] = host else alt.dns[#alt.dns + 1] = host end
  end
  append_sans(alt, c.apiServer and c.apiServer.certSANs, "apiserver.crt")
  return M.normalize_sans(alt)
end

local function etcd_sans(field, file)
  return function(ctx)
    local alt = { dns = { ctx.node.name, "localhost" }, ip = { advertise_ip(ctx), "127.0.0.1", "::1" } }
    local l = ctx.cluster.etcd and ctx.cluster.etcd["local"]
    if l then append_sans(alt, l[field], file) end
    return M.normalize_sans(alt)
  end
end
M.etcd_server_sans = etcd_sans("serverCertSANs", "etcd/server.crt")
M.etcd_peer_sans = etcd_sans("peerCertSANs", "etcd/peer.crt")

-- The table. name = kubeadm's cert name (phase certs/<name>), base = file base name under
-- certificatesDir, ca = name of the signing CA (nil for CAs), cn/o = subject (cn may be a
-- function of ctx), sans = function(ctx) -> {dns=, ip=}, ekus = extended key usages,
-- etcd = only with local etcd, pods = the static Pods that load a leaf (kboot certs renew names
-- the ones to restart; the healthcheck client certificate is for admins' etcdctl, no Pod reads it).
M.certs = {
  { name = "ca", base = "ca", cn = "kubernetes", is_ca = true,
    long = "self-signed Kubernetes CA to provision identities for other Kubernetes components" },
  { name = "apiserver", base = "apiserver", ca = "ca", cn = "kube-apiserver", ekus = { "server auth" },
    sans = M.apiserver_sans, pods = { "kube-apiserver" }, long = "certificate for serving the Kubernetes API" },
  { name = "apiserver-kubelet-client", base = "apiserver-kubelet-client", ca = "ca",
    cn = "kube-apiserver-kubelet-client", o = { "kubeadm:cluster-admins" }, ekus = { "client auth" },
    pods = { "kube-apiserver" }, long = "certificate for the API server to connect to kubelet" },
  { name = "front-proxy-ca", base = "front-proxy-ca", cn = "front-proxy-ca", is_ca = true,
    long = "self-signed CA to provision identities for front proxy" },
  { name = "front-proxy-client", base = "front-proxy-client", ca = "front-proxy-ca",
    cn = "front-proxy-client", ekus = { "client auth" }, pods = { "kube-apiserver" },
    long = "certificate for the front proxy client" },
  { name = "etcd-ca", base = "etcd/ca", cn = "etcd-ca", is_ca = true, etcd = true,
    long = "self-signed CA to provision identities for etcd" },
  -- etcd 3.2+ wants client auth on its serving certificate too (etcd-io/etcd#9785).
  { name = "etcd-server", base = "etcd/server", ca = "etcd-ca", cn = node_name, etcd = true,
    ekus = { "server auth", "client auth" }, sans = M.etcd_server_sans, pods = { "etcd" },
    long = "certificate for serving etcd" },
  { name = "etcd-peer", base = "etcd/peer", ca = "etcd-ca", cn = node_name, etcd = true,
    ekus = { "server auth", "client auth" }, sans = M.etcd_peer_sans,
    pods = { "etcd" }, long = "certificate for etcd nodes to communicate with each other" },
  { name = "etcd-healthcheck-client", base = "etcd/healthcheck-client", ca = "etcd-ca", etcd = true,
    cn = "kube-etcd-healthcheck-client", ekus = { "client auth" },
    pods = {}, long = "certificate for liveness probes to healthcheck etcd" },
  { name = "apiserver-etcd-client", base = "apiserver-etcd-client", ca = "etcd-ca", etcd = true,
    cn = "kube-apiserver-etcd-client", ekus = { "client auth" },
    pods = { "kube-apiserver" }, long = "certificate the apiserver uses to access etcd" },
}

-- The client certificates embedded in kubeconfig files that `kboot certs` checks and renews, as
-- kubeadm's renewal manager lists them (name = the file name, kubeconfig = the kboot.kubeconfigs
-- entry). kubelet.conf is not one: the kubelet rotates its own client certificate.
M.kubeconfig_certs = {
  { name = "admin.conf", kubeconfig = "admin", ca = "ca", pods = {},
    long = "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself" },
  { name = "controller-manager.conf", kubeconfig = "controller-manager", ca = "ca",
    pods = { "kube-controller-manager" },
    long = "certificate embedded in the kubeconfig file for the controller manager to use" },
  { name = "scheduler.conf", kubeconfig = "scheduler", ca = "ca", pods = { "kube-scheduler" },
    long = "certificate embedded in the kubeconfig file for the scheduler manager to use" },
  { name = "super-admin.conf", kubeconfig = "super-admin", ca = "ca", pods = {},
    long = "certificate embedded in the kubeconfig file for the super-admin" },
}

-- The service account signing key pair: sa.key (private) and sa.pub (public), no certificate.
M.sa = { name = "sa", base = "sa", long = "service account token signing key pair" }

local by_name = {}
for _, c in ipairs(M.certs) do by_name[c.name] = c end
function M.get(name) return by_name[name] end

function M.external_etcd(ctx)
  local e = ctx.cluster.etcd
  return e ~= nil and e.external ~= nil
end

-- The certificates this node needs: with external etcd kubeadm creates none of the etcd ones.
function M.list(ctx)
  local out, ext = {}, M.external_etcd(ctx)
  for _, c in ipairs(M.certs) do
    if not (ext and c.etcd) then out[#out + 1] = c end
  end
  return out
end

function M.algorithm(ctx)
  return ctx.cluster.encryptionAlgorithm or "RSA-2048"
end

-- The kboot.pki spec of a table entry for this ctx: validity runs from ctx.now - BACKDATE to
-- ctx.now + the configured period, as kubeadm's KubeadmCert.GetConfig does.
function M.spec(entry, ctx)
  local now = ctx.now or os.time()
  local period = entry.is_ca and (ctx.ca_validity or M.DEFAULT_CA_VALIDITY)
                 or (ctx.cert_validity or M.DEFAULT_CERT_VALIDITY)
  local cn = entry.cn
  if type(cn) == "function" then cn = cn(ctx) end
  local s = {
    cn = cn, o = entry.o or {},
    usages = entry.is_ca and M.CA_USAGES or M.LEAF_USAGES,
    ext_key_usages = entry.ekus or {},
    is_ca = entry.is_ca or false,
    not_before = now - M.BACKDATE, not_after = now + period,
  }
  if entry.is_ca then
    -- client-go/kubeadm put the CA's CN in a DNS SAN of every self-signed CA.
    s.dns, s.ip = { cn }, {}
  elseif entry.sans then
    local alt = entry.sans(ctx)
    s.dns, s.ip = alt.dns, alt.ip
  else
    s.dns, s.ip = {}, {}
  end
  return s
end

function M.paths(entry, ctx)
  local dir = ctx.cluster.certificatesDir
  return dir .. "/" .. entry.base .. ".crt", dir .. "/" .. entry.base .. ".key"
end

return M

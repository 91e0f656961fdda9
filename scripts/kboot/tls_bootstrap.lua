-- A joining node's kubelet client certificate, minted by kboot the way the kubelet's own TLS
-- bootstrap does it (pkg/kubelet/certificate/bootstrap): a key, a CSR for CN=system:node:NAME,
-- O=system:nodes with no SANs, the CertificateSigningRequest object named as the kubelet names it,
-- sent with the bootstrap token; once the cluster's csrapproving controller approved it and the
-- signer issued the certificate: /var/lib/kubelet/pki/kubelet-client-<time>.pem (certificate and
-- key), the kubelet-client-current.pem link, and kubelet.conf pointing at that link, so the
-- kubelet finds itself bootstrapped and rotates the certificate on its own from there.
local crypto = require("kboot.crypto")
local kerror = require("kboot.error")
local kubeconfig = require("kboot.kubeconfig")
local pki = require("kboot.pki")
local time = require("kboot.time")

local M = {}

M.PKI_DIR = "/var/lib/kubelet/pki"
M.CURRENT = M.PKI_DIR .. "/kubelet-client-current.pem"
M.KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
M.SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
-- exactly these, in this order: csrapproving leaves any other set Pending forever
M.USAGES = { "digital signature", "key encipherment", "client auth" }
M.ORG = "system:nodes"
local CSR_API = "certificates.k8s.io/v1"

local function fail(fmt, ...) return kerror.new("tls-bootstrap", fmt:format(...)) end
local function arr(t) return setmetatable(t, require("kboot.yaml").array_mt) end

function M.common_name(node_name) return "system:node:" .. node_name end

-- csr_name(spki_der, cn, orgs, usages) -> "node-csr-...": the kubelet's digestedName, SHA-512/256
-- over each field base64url-encoded and followed by "|", so a re-run by the kubelet itself with
-- the same key would find the same object.
function M.csr_name(spki_der, cn, orgs, usages)
  local parts = { crypto.base64url(spki_der), crypto.base64url(cn) }
  for _, o in ipairs(orgs) do parts[#parts + 1] = crypto.base64url(o) end
  for _, u in ipairs(usages) do parts[#parts + 1] = crypto.base64url(u) end
  return "node-csr-" .. crypto.base64url(crypto.sha512_256(table.concat(parts, "|") .. "|"))
end

local function spki_der(key)
  local blocks = assert(pki.pem_decode(key:public_pem()))
  return blocks[1].der
end

-- csr_object(node_name, key) -> the CertificateSigningRequest object kboot sends
function M.csr_object(node_name, key)
  local cn = M.common_name(node_name)
  local csr = assert(pki.csr(key, { cn = cn, o = { M.ORG } }))
  return {
    apiVersion = CSR_API, kind = "CertificateSigningRequest",
    metadata = { name = M.csr_name(spki_der(key), cn, { M.ORG }, M.USAGES) },
    spec = { request = crypto.base64(csr:pem()), signerName = M.SIGNER, usages = arr({ table.unpack(M.USAGES) }) },
  }
end

-- state(csr) -> "issued" | "denied" | "failed" | "approved" | "pending", and a condition's message
function M.state(csr)
  local st = csr.status or {}
  local approved
  for _, c in ipairs(st.conditions or {}) do
    if c.type == "Denied" then return "denied", c.message or c.reason end
    if c.type == "Failed" then return "failed", c.message or c.reason end
    if c.type == "Approved" then approved = true end
  end
  if type(st.certificate) == "string" and st.certificate ~= "" then return "issued" end
  return approved and "approved" or "pending"
end

-- Why a CSR in that state after the wait: the likely cause, for the one error line.
local WHY = {
  pending = "not approved: the controller-manager is not running, its csrapproving controller is off, "
    .. "or ClusterRoleBinding kubeadm:node-autoapprove-bootstrap is missing (kboot init phase bootstrap-token creates it)",
  approved = "approved but not signed: the controller-manager's csrsigning controller is not running "
    .. "(or has no --cluster-signing-cert-file/--cluster-signing-key-file)",
}

-- The re-check starts short and doubles: csrapproving and the signer answer within tens of ms on
-- a healthy cluster, and a fixed poll made the join wait out the whole first interval.
M.POLL_FIRST, M.POLL_MAX = 0.02, 1

-- wait(k, name, timeout) -> certificate PEM | nil, kboot.error naming the CSR's state
function M.wait(k, name, timeout)
  local deadline = time.now() + timeout
  local interval = M.POLL_FIRST
  local last, lerr
  while true do
    local csr, err = k:get(CSR_API, "CertificateSigningRequest", nil, name)
    if csr then
      last, lerr = csr, nil
      local s, why = M.state(csr)
      if s == "issued" then return crypto.unbase64(csr.status.certificate) end
      if s == "denied" or s == "failed" then
        return nil, fail("CertificateSigningRequest %s was %s: %s", name, s, tostring(why or "no reason given"))
      end
    else
      lerr = err
    end
    if time.now() >= deadline then
      if not last then
        return nil, fail("cannot read CertificateSigningRequest %s: %s", name, tostring(lerr))
      end
      local s = M.state(last)
      return nil, fail("CertificateSigningRequest %s is still %s after %s: %s", name, s,
                       time.format_duration(timeout), WHY[s] or s)
    end
    time.sleep(interval)
    interval = math.min(interval * 2, M.POLL_MAX)
  end
end

-- kubelet_conf(server, ca_pem) -> the kubeconfig the kubelet writes after its bootstrap
function M.kubelet_conf(server, ca_pem)
  return kubeconfig.build{ cluster_name = "default-cluster", server = server, ca_pem = ca_pem,
                           user = "default-auth", context = "default-context",
                           cert_file = M.CURRENT, key_file = M.CURRENT }
end

-- current(ctx, server, ca_pem) -> true when this node already has what mint would make: a
-- kubelet.conf for this server and CA whose certificate (its file or embedded) is this node's,
-- signed by that CA and valid for another hour. Else false and why.
function M.current(ctx, server, ca_pem)
  local fs = ctx.fs
  if not fs.exists(M.KUBELET_CONF) then return false, "no kubelet.conf" end
  local t = kubeconfig.parse(fs.read(M.KUBELET_CONF) or "", M.KUBELET_CONF)
  local cur = t and kubeconfig.current(t)
  if not cur then return false, "kubelet.conf does not load" end
  if cur.server ~= server or cur.ca_pem ~= ca_pem then return false, "kubelet.conf names another server or CA" end
  local pem = cur.cert_pem
  if not pem then return false, "kubelet.conf has no client certificate" end
  local cert, ca = pki.load_cert(pem), pki.load_cert(ca_pem)
  if not (cert and ca) then return false, "the client certificate does not load" end
  local info = cert:info()
  if info.subject.cn ~= M.common_name(ctx.node.name) then return false, "the client certificate is another node's" end
  if not cert:issued_by(ca) then return false, "the client certificate is not signed by the cluster CA" end
  if info.not_after < ctx.now + 3600 then return false, "the client certificate expires within the hour" end
  return true
end

local function pem_file_name(now)
  return ("%s/kubelet-client-%s.pem"):format(M.PKI_DIR, os.date("%Y-%m-%d-%H-%M-%S", now))
end

-- mint(ctx, { kube =, server =, ca_pem = }) -> true | nil, kboot.error. kube: the bootstrap-token
-- client. Files go through ctx.fs (root-aware, atomic; a dry run records them).
function M.mint(ctx, o)
  local log, fs = ctx.log, ctx.fs
  local ok, why = M.current(ctx, o.server, o.ca_pem)
  if ok then
    log.info("kubelet-start", "%s already holds a valid client certificate for this node; kept", fs.path(M.KUBELET_CONF))
    return true
  end
  log.debug("kubelet-start", "minting the kubelet's client certificate: %s", why)
  local key = pki.generate_key(require("kboot.certs_table").algorithm(ctx))
  local obj = M.csr_object(ctx.node.name, key)
  local name = obj.metadata.name
  log.info("kubelet-start", "Requesting the kubelet's client certificate (CertificateSigningRequest %s)", name)
  local r, err = o.kube:create(obj)
  if not r and not require("kboot.kube").already_exists(err) then
    return nil, fail("cannot create CertificateSigningRequest %s: %s", name, tostring(err))
  end
  local cert_pem
  if ctx.dry_run then
    log.info("kubelet-start", "dry run: would wait for the certificate and write %s", fs.path(M.CURRENT))
  else
    cert_pem, err = M.wait(o.kube, name, ctx.timeouts.tlsBootstrap)
    if not cert_pem then return nil, err end
    local cert = pki.load_cert(cert_pem)
    if not (cert and key:matches(cert)) then
      return nil, fail("the certificate issued for %s does not match its key", name)
    end
    -- as the kubelet's certificate store: the certificate, then the key, one file, 0600; the link
    -- relative (it stays right under --root)
    local file = pem_file_name(ctx.now)
    local wok, werr = fs.write(file, cert_pem .. key:pem("traditional"), "0600", { mkdir = true, dir_mode = 493 })
    if not wok then return nil, fail("cannot write %s: %s", fs.path(file), tostring(werr)) end
    fs.remove(M.CURRENT)
    local lok, lerr = fs.symlink(file:match("[^/]+$"), M.CURRENT)
    if not lok then return nil, fail("cannot link %s: %s", fs.path(M.CURRENT), tostring(lerr)) end
  end
  local kok, kerr = kubeconfig.write(M.KUBELET_CONF, M.kubelet_conf(o.server, o.ca_pem))
  if not kok then return nil, fail("cannot write %s: %s", fs.path(M.KUBELET_CONF), tostring(kerr)) end
  log.info("kubelet-start", "%s %s (the kubelet's client certificate, signed by the cluster)",
           ctx.dry_run and "dry run: would write" or "Wrote", fs.path(M.KUBELET_CONF))
  return true
end

return M

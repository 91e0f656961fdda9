-- A whole control-plane PKI (the certs and kubeconfig phases of kboot init) made through the Lua API
-- at a chosen time, and leaves re-signed with a chosen validity: what `kboot certs` tests check
-- expiry and renewal on.
--   local pki_ctx = certs_fixture.build{ root = DIR, age = 10 * 86400 }  -- made 10 days ago
--   certs_fixture.resign(pki_ctx, "apiserver", { not_after = os.time() + 30 * 86400 })
local fixture = require("ctx_fixture")
local pki = require("kboot.pki")
local fs = require("kboot.fs")
local tbl = require("kboot.certs_table")

local M = {}

local QUIET = { info = function() end, warn = function() end, debug = function() end, error = function() end }
M.QUIET = QUIET

-- build{ root, now (default os.time()), age (seconds before now the PKI is made, default 0),
-- alg ("ECDSA-P256": RSA keys would make the tests slow), cluster = {overrides}, external_etcd }
-- -> the ctx it was made with (ctx.now = the creation time; ctx.made_at too).
function M.build(o)
  local now = o.now or os.time()
  local made = now - (o.age or 0)
  local cluster = o.cluster or {}
  cluster.encryptionAlgorithm = cluster.encryptionAlgorithm or o.alg or "ECDSA-P256"
  local ctx = fixture.new({ root = o.root, cluster = cluster, now = made, external_etcd = o.external_etcd })
  ctx.log = QUIET
  require("kboot.certs").run_all(ctx)
  require("kboot.kubeconfigs").run_all(ctx)
  ctx.made_at = made
  return ctx
end

-- The config file (kubeadm v1beta4) the fixture's ctx was made from, for `--config`.
function M.config_text(o)
  o = o or {}
  return table.concat({
    "apiVersion: kubeadm.k8s.io/v1beta4", "kind: InitConfiguration",
    "localAPIEndpoint:", "  advertiseAddress: 10.0.0.10", "nodeRegistration:", "  name: node-1", "---",
    "apiVersion: kubeadm.k8s.io/v1beta4", "kind: ClusterConfiguration", "kubernetesVersion: v1.31.0",
    "encryptionAlgorithm: " .. (o.alg or "ECDSA-P256"),
    o.validity and ("certificateValidityPeriod: " .. o.validity) or "",
    o.cert_sans and ("apiServer:\n  certSANs:\n  - " .. table.concat(o.cert_sans, "\n  - ")) or "", "",
  }, "\n")
end

-- resign(ctx, name, {not_before=, not_after=}): the leaf (table name) or kubeconfig client
-- certificate (admin.conf, ...) signed again by its CA with the same key, subject and SANs and
-- the given validity. Returns the new certificate.
function M.resign(ctx, name, v)
  local lc = require("kboot.certs_lifecycle")
  local it = assert(lc.item(ctx, name), name)
  local ca = assert(lc.load_ca(ctx, it.ca))
  local r = lc.load_item(ctx, it)
  assert(r.cert and r.key, name .. ": " .. table.concat(r.problems, "; "))
  local spec = lc.renewal_spec(ctx, r.info)
  spec.not_before = v.not_before or (v.not_after - 365 * 86400)
  spec.not_after = v.not_after
  local cert = assert(pki.sign(spec, r.key, ca.cert, ca.key))
  if it.kind == "file" then
    assert(fs.write(r.path, cert:pem(), "0644"))
  else
    local user = lc.embedded_user(r.kc)
    user["client-certificate-data"] = require("kboot.crypto").base64(cert:pem())
    assert(require("kboot.kubeconfig").write(r.path, r.kc))
  end
  return cert
end

-- The certificate files of every item (cluster paths), name -> path.
function M.paths(ctx)
  local out = {}
  for _, it in ipairs(require("kboot.certs_lifecycle").items(ctx)) do
    out[it.name] = require("kboot.certs_lifecycle").path(ctx, it)
  end
  return out
end

M.tbl = tbl
return M

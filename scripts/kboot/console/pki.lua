-- The node's PKI as tables: certs() (the rows of `kboot certs check-expiration`: every certificate
-- of the table, the kubeconfigs' client certificates and the CAs, with expiry in human form and
-- problems flagged) and inspect(x) (a certificate, key, CSR, kubeconfig or PEM, from a file or a
-- string; private keys shown as <private key>).
local fs = require("kboot.fs")
local pki = require("kboot.pki")
local pretty = require("kboot.pretty")
local rows = require("kboot.rows")
local kerror = require("kboot.error")
local kubeconfig = require("kboot.kubeconfig")
local tbl = require("kboot.certs_table")
local node = require("kboot.console.node")

local M = {}

M.EXPIRING = 30 * 86400 -- less than this left: "expiring" (kubeadm warns 30 days ahead too)

-- The ctx the certificate table needs, from what is on the node: its certificates directory, local
-- or external etcd, its name and advertise address.
function M.node_ctx()
  local dir = node.cert_dir()
  local local_etcd = fs.exists(node.MANIFESTS .. "/etcd.yaml") or fs.exists(dir .. "/etcd/ca.crt")
  return {
    cluster = { certificatesDir = dir, etcd = local_etcd and { ["local"] = {} } or { external = { endpoints = {} } } },
    kubeconfig_dir = node.KUBERNETES_DIR, node = { name = node.node_name() }, fs = fs,
    endpoint = { address = node.advertise_address() }, now = os.time(),
  }
end

local function read_opt(path)
  local data, err = fs.read(path)
  if data then return data end
  if err and err.code == 2 then return nil end
  return nil, err
end

-- The rows, before presentation: kboot certs check-expiration's (kboot.certs_lifecycle.inspect: the
-- certificates and kubeconfigs sorted by name, then the CAs), each with its kind, file and
-- certificate for the checks only this node can make.
local function report(ctx)
  local lc = require("kboot.certs_lifecycle")
  local rep = lc.inspect(ctx, { config = false })
  local items = {}
  for _, it in ipairs(lc.items(ctx)) do items[it.name] = it end
  local out = {}
  for _, r in ipairs(rep.certificates) do
    local it = items[r.name]
    local loaded = it and lc.load_item(ctx, it)
    out[#out + 1] = { name = r.name, kind = it and it.kind == "kubeconfig" and "kubeconfig" or "certificate",
                      file = it and lc.path(ctx, it), cert = loaded and loaded.cert, not_after = r.not_after,
                      residual = r.residual, ca = r.ca, external = r.external, missing = r.missing, problems = r.problems }
  end
  for _, r in ipairs(rep.authorities) do
    local ca = lc.load_ca(ctx, r.name)
    out[#out + 1] = { name = r.name, kind = "ca", file = (tbl.paths(tbl.get(r.name), ctx)), cert = ca and ca.cert,
                      not_after = r.not_after, residual = r.residual, external = r.external, missing = r.missing,
                      problems = r.problems }
  end
  return out, rep.now
end
M.report = report

-- SANs a serving certificate must have on this node: the API server's advertise address (and
-- etcd's, which kubeadm puts in etcd's serving and peer certificates).
local function san_problems(r, ctx)
  local want = ctx.endpoint.address
  if not want or not r.cert then return end
  if r.name ~= "apiserver" and r.name ~= "etcd-server" and r.name ~= "etcd-peer" then return end
  if not require("kboot.console.tls").names_host(r.cert:info(), want) then
    r.problems[#r.problems + 1] = ("its SANs miss the advertise address %s"):format(want)
  end
end

local function date(t) return os.date("!%b %d, %Y %H:%M UTC", t) end

local CERT_COLUMNS = { "name", { "not_after", title = "EXPIRES", format = date }, { "expiry", title = "RESIDUAL" }, "ca",
                       "external", "status", { "problems", flex = true } }

-- certs() -> rows { name, kind, file, subject, not_after (epoch), residual (seconds), expiry ("in
-- 364d" | "EXPIRED 3d ago"), ca, external, status ("ok" | "expiring" | "expired" | "missing" |
-- "problem"), problems = { ... } }: check-expiration's certificates (and kubeconfigs) by name, then
-- its CAs.
function M.certs()
  local ctx = M.node_ctx()
  local list = report(ctx)
  local out = {}
  for _, r in ipairs(list) do
    san_problems(r, ctx)
    local row = { name = r.name, kind = r.kind, file = r.file, ca = r.ca, external = r.external or false,
                  problems = r.problems, not_after = r.not_after, residual = r.residual }
    if r.cert then row.subject = r.cert:info().subject_string end
    if r.residual then row.expiry = pretty.expiry(r.residual) end
    row.status = r.missing and "missing" or #r.problems > 0 and "problem" or not r.residual and "problem"
      or r.residual < 0 and "expired" or r.residual < M.EXPIRING and "expiring" or "ok"
    out[#out + 1] = row
  end
  return rows.rows(out, CERT_COLUMNS, { level = function(r)
    if r.status == "ok" then return nil end
    return r.status == "expiring" and "warn" or "error"
  end })
end

---------------------------------------------------------------------------------------------------
-- inspect

local function key_desc(info_or_key)
  local k = info_or_key
  if type(k) == "table" then
    return (k.key_type or "?") .. " " .. tostring(k.key_bits or "") .. (k.curve and (" " .. k.curve) or "")
  end
  return k:type() .. " " .. k:bits() .. (k:curve() and (" " .. k:curve()) or "")
end

-- Which CA of this node signed cert ("ca", "etcd-ca", ...), or nil.
local function signer(cert)
  for _, name in ipairs({ "ca", "etcd-ca", "front-proxy-ca" }) do
    local path = node.cert_dir() .. "/" .. tbl.get(name).base .. ".crt"
    local pem = read_opt(path)
    local ca = pem and pki.load_cert(pem)
    if ca and cert:issued_by(ca) then return ("%s (%s)"):format(name, path) end
  end
end

local CERT_FIELDS = { "type", "subject", "issuer", "signed_by", "serial", { "not_before", format = date },
                      { "not_after", format = date }, "expiry", "dns", "ip", "usages", "ext_key_usages", "is_ca", "key",
                      "signature_algorithm", "spki_pin" }

local function cert_record(c)
  local i = c:info()
  return rows.record({ type = i.is_ca and "CA certificate" or "certificate", subject = i.subject_string,
    issuer = i.issuer_string, signed_by = signer(c), serial = i.serial, not_before = i.not_before,
    not_after = i.not_after, expiry = pretty.expiry(i.not_after - os.time()), dns = i.dns, ip = i.ip,
    usages = i.usages, ext_key_usages = i.ext_key_usages, is_ca = i.is_ca, key = key_desc(i),
    signature_algorithm = i.signature_algorithm, spki_pin = i.spki_pin },
    CERT_FIELDS, { level = function(r) return r.not_after < os.time() and "error" or nil end })
end

local function key_record(k)
  return rows.record({ type = k:is_private() and "private key" or "public key", key = key_desc(k),
    spki_pin = k:spki_pin(), pem = k:is_private() and "<private key>" or k:public_pem() },
    { "type", "key", "spki_pin", "pem" })
end

local function csr_record(r)
  local i = r:info()
  return rows.record({ type = "CSR", subject = i.subject_string, dns = i.dns, ip = i.ip, key = key_desc(i),
    spki_pin = i.spki_pin, signature_algorithm = i.signature_algorithm },
    { "type", "subject", "dns", "ip", "key", "spki_pin", "signature_algorithm" })
end

local function kubeconfig_record(t, where)
  local cur, err = kubeconfig.current(t)
  if not cur then return nil, err end
  local r = { type = "kubeconfig", file = where, context = cur.context, server = cur.server, user = cur.user,
              insecure = cur.insecure }
  if cur.ca_pem then
    local ca = pki.load_cert(cur.ca_pem)
    if ca then local i = ca:info() r.ca = ("%s, expires %s"):format(i.subject_string, pretty.expiry(i.not_after - os.time())) end
  end
  if cur.cert_pem then
    local c = pki.load_cert(cur.cert_pem)
    if c then
      local i = c:info()
      r.client_certificate = ("%s, issuer %s, expires %s"):format(i.subject_string, i.issuer_string,
        pretty.expiry(i.not_after - os.time()))
      r.client_cert_expires = i.not_after
    end
    r.client_key = "<private key>"
  end
  if cur.token then r.token = cur.token:match("^(%w+)%.") and (cur.token:match("^(%w+)%.") .. ".<secret>") or "<token>" end
  return rows.record(r, { "type", "file", "context", "server", "user", "ca", "client_certificate", "client_key", "token", "insecure" })
end

local function from_text(text, where)
  if text:find("-----BEGIN", 1, true) then
    local blocks, err = pki.pem_decode(text)
    if not blocks then return nil, err end
    local out = {}
    for _, b in ipairs(blocks) do
      local pem = pki.pem_encode(b.type, b.der)
      if b.type == "CERTIFICATE" then out[#out + 1] = cert_record(assert(pki.load_cert(pem)))
      elseif b.type:find("PRIVATE KEY", 1, true) or b.type == "PUBLIC KEY" then
        local k, kerr = pki.load_key(pem)
        out[#out + 1] = k and key_record(k) or rows.record({ type = b.type, error = tostring(kerr) }, { "type", "error" })
      elseif b.type == "CERTIFICATE REQUEST" or b.type == "NEW CERTIFICATE REQUEST" then
        local r, rerr = pki.load_csr(pem)
        out[#out + 1] = r and csr_record(r) or rows.record({ type = b.type, error = tostring(rerr) }, { "type", "error" })
      else
        out[#out + 1] = rows.record({ type = b.type, bytes = #b.der }, { "type", "bytes" })
      end
    end
    if #out == 1 then return out[1] end
    local list = {}
    for i, r in ipairs(out) do
      list[i] = { type = r.type, subject = r.subject, issuer = r.issuer, key = r.key, not_after = r.not_after,
                  expiry = r.expiry }
    end
    return rows.rows(list, { "type", { "subject", flex = true }, { "issuer", flex = true }, "key", { "expiry", title = "EXPIRES" } }, { level = function(r)
      return r.not_after and r.not_after < os.time() and "error" or nil end })
  end
  local t, err = kubeconfig.parse(text, where)
  if t then return kubeconfig_record(t, where) end
  return nil, kerror.new("inspect", ("%s: neither PEM nor a kubeconfig (%s)"):format(where or "text", tostring(err)))
end

-- inspect(x) -> record (or rows for a bundle) | nil, err. x: a path (the node's, under --root, else
-- this machine's), PEM text, kubeconfig text or table, or a kboot.pki cert, key or CSR.
function M.inspect(x)
  local tx = type(x)
  if tx == "userdata" then
    local name = tostring(x)
    if name:find("^kboot.pki.cert") then return cert_record(x) end
    if name:find("^kboot.pki.key") then return key_record(x) end
    if name:find("^kboot.pki.csr") then return csr_record(x) end
    error("inspect: a kboot.pki certificate, key or CSR expected, got " .. name, 2)
  elseif tx == "table" then
    return kubeconfig_record(x, "(table)")
  elseif tx ~= "string" then
    error("inspect: a path, PEM or kubeconfig text, a kubeconfig table or a kboot.pki object expected", 2)
  end
  if x:find("\n", 1, true) or x:find("-----BEGIN", 1, true) then return from_text(x) end
  local text, where
  if x:sub(1, 1) == "/" then text, where = read_opt(x), fs.path(x) end
  if not text then
    local f = io.open(x, "rb")
    if not f then return nil, kerror.new("inspect", ("cannot read %s"):format(x)) end
    text, where = f:read("a"), x
    f:close()
  end
  return from_text(text, where)
end

return M

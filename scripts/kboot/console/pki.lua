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

-- The kubeconfigs whose client certificates kubeadm's check-expiration lists (super-admin.conf
-- only where it exists: kubeadm writes it on init, not on join).
M.KUBECONFIGS = { "admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf" }

-- The rows, before presentation: { name, kind = "ca" | "certificate" | "kubeconfig", file, cert,
-- not_after, ca, external, missing, problems }. This is check-expiration's row builder until
-- kboot.certs_lifecycle (its own) is in this build; only this function would change.
local function report(ctx)
  local out, cas = {}, {}
  local function load_ca(name)
    if cas[name] ~= nil then return cas[name] or nil end
    local crt, key = tbl.paths(tbl.get(name), ctx)
    local pem = read_opt(crt)
    local c = pem and pki.load_cert(pem)
    cas[name] = c and { cert = c, pem = pem, path = crt, external = not fs.exists(key) } or false
    return cas[name] or nil
  end
  local function add(r, ca_name)
    r.problems = r.problems or {}
    if r.cert and ca_name and r.kind ~= "ca" then
      local ca = load_ca(ca_name)
      if not ca then r.problems[#r.problems + 1] = ("its CA %s is missing"):format((tbl.paths(tbl.get(ca_name), ctx)))
      elseif not r.cert:issued_by(ca.cert) then r.problems[#r.problems + 1] = ("it is not signed by the %q CA (%s)"):format(ca_name, ca.path) end
    end
    out[#out + 1] = r
  end
  local function key_check(r, key_pem, key_path)
    if not key_pem then
      if r.kind ~= "ca" or not r.external then r.problems[#r.problems + 1] = ("its key %s is missing"):format(key_path) end
      return
    end
    local k = pki.load_key(key_pem)
    if not k then r.problems[#r.problems + 1] = ("%s is not a valid private key"):format(key_path)
    elseif not k:matches(r.cert) then r.problems[#r.problems + 1] = ("%s does not belong to it (different public key)"):format(key_path) end
  end
  for _, e in ipairs(tbl.list(ctx)) do
    local crt, key = tbl.paths(e, ctx)
    local r = { name = e.name, kind = e.is_ca and "ca" or "certificate", file = crt, ca = e.ca, problems = {} }
    local pem, err = read_opt(crt)
    if not pem then
      r.missing = true
      if err then r.problems[1] = tostring(err) end
    else
      r.cert = pki.load_cert(pem)
      if not r.cert then r.problems[1] = ("%s is not a valid PEM certificate"):format(crt)
      else
        if e.is_ca then
          r.external = not fs.exists(key)
          if not r.cert:info().is_ca then r.problems[#r.problems + 1] = "it is not a CA certificate" end
        end
        key_check(r, read_opt(key), key)
      end
    end
    add(r, e.ca)
  end
  for _, name in ipairs(M.KUBECONFIGS) do
    local path = ctx.kubeconfig_dir .. "/" .. name
    if fs.exists(path) or name ~= "super-admin.conf" then
      local r = { name = name, kind = "kubeconfig", file = path, ca = "ca", problems = {} }
      local t, err = kubeconfig.load(path)
      local cur, cerr = t and kubeconfig.current(t)
      if not fs.exists(path) then r.missing = true
      elseif not cur then r.problems[1] = tostring(cerr or err)
      elseif not cur.cert_pem then r.problems[1] = "it holds no client certificate"
      else
        r.cert = pki.load_cert(cur.cert_pem)
        if not r.cert then r.problems[1] = "its client certificate is not valid PEM"
        else
          key_check(r, cur.key_pem, "its client key")
          local ca = load_ca("ca")
          local kc_ca = cur.ca_pem and pki.load_cert(cur.ca_pem)
          if ca and not (kc_ca and kc_ca == ca.cert) then
            r.problems[#r.problems + 1] = ("its certificate-authority-data is not %s"):format(ca.path)
          end
        end
      end
      add(r, "ca")
    end
  end
  for _, r in ipairs(out) do
    if r.cert then r.not_after = r.cert:info().not_after end
    if r.kind == "ca" then r.ca = nil end
  end
  return out
end
M.report = report

-- SANs a serving certificate must have on this node: the API server's advertise address (and
-- etcd's, which kubeadm puts in etcd's serving and peer certificates).
local function san_problems(r, ctx)
  local want = ctx.endpoint.address
  if not want or not r.cert then return end
  if r.name ~= "apiserver" and r.name ~= "etcd-server" and r.name ~= "etcd-peer" then return end
  if not require("kboot.console.connect").names_host(r.cert:info(), want) then
    r.problems[#r.problems + 1] = ("its SANs miss the advertise address %s"):format(want)
  end
end

local function date(t) return os.date("!%b %d, %Y %H:%M UTC", t) end

local CERT_COLUMNS = { "name", { "not_after", title = "EXPIRES", format = date }, { "expiry", title = "RESIDUAL" }, "ca",
                       { "external", title = "EXTERNALLY-MANAGED" }, "status", "problems" }

-- certs() -> rows { name, kind, file, subject, not_after (epoch), residual (seconds), expiry ("in
-- 364d" | "EXPIRED 3d ago"), ca, external, status ("ok" | "expiring" | "expired" | "missing" |
-- "problem"), problems = { ... } }: certificates, then kubeconfigs, then CAs, each sorted by name.
function M.certs()
  local ctx = M.node_ctx()
  local now = os.time()
  local list = report(ctx)
  local order = { certificate = 1, kubeconfig = 2, ca = 3 }
  table.sort(list, function(a, b)
    if a.kind ~= b.kind then return order[a.kind] < order[b.kind] end
    return a.name < b.name
  end)
  local out = {}
  for _, r in ipairs(list) do
    san_problems(r, ctx)
    local row = { name = r.name, kind = r.kind, file = r.file, ca = r.ca, external = r.external or false,
                  problems = r.problems, not_after = r.not_after }
    if r.cert then row.subject = r.cert:info().subject_string end
    if r.not_after then
      row.residual = r.not_after - now
      row.expiry = pretty.expiry(row.residual)
    end
    row.status = r.missing and "missing" or #r.problems > 0 and "problem" or not r.not_after and "problem"
      or row.residual < 0 and "expired" or row.residual < M.EXPIRING and "expiring" or "ok"
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
    return rows.rows(list, { "type", "subject", "issuer", "key", { "expiry", title = "EXPIRES" } }, { level = function(r)
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

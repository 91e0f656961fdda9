-- The certificate lifecycle after init, as `kubeadm certs` has it: check-expiration (kubeadm's two
-- tables, plus the problems kubeadm does not look for), renew (same subject, SANs and usages, a new
-- key, a new validity; kubeconfigs' client certificates in place; optionally only what expires
-- within a duration) and generate-csr (keys and CSRs for an external CA). Which certificates there
-- are comes from kboot.certs_table alone: its leaves and its kubeconfig_certs.
local pki = require("kboot.pki")
local tbl = require("kboot.certs_table")
local certs = require("kboot.certs")
local kubeconfigs = require("kboot.kubeconfigs")
local crypto = require("kboot.crypto")
local time = require("kboot.time")

local M = {}

local fail = certs.fail

---------------------------------------------------------------------------------------------------
-- The rows: every leaf of the table and every kubeconfig client certificate, sorted by name as
-- kubeadm's renewal manager sorts them; the CAs that sign them, sorted too.

-- items(ctx) -> { {name=, kind="file"|"kubeconfig", entry= (table entry) | kc= (kboot.kubeconfigs
-- spec), ca=, pods=, long=}, ... }. With external etcd the etcd certificates are not there.
function M.items(ctx)
  local out = {}
  for _, e in ipairs(tbl.list(ctx)) do
    if not e.is_ca then
      out[#out + 1] = { name = e.name, kind = "file", entry = e, ca = e.ca, pods = e.pods or {}, long = e.long }
    end
  end
  for _, k in ipairs(tbl.kubeconfig_certs) do
    local s = kubeconfigs.get(k.kubeconfig)
    if not s then error(("certs_table.kubeconfig_certs: %s: no kubeconfig %q in kboot.kubeconfigs"):format(k.name, k.kubeconfig), 0) end
    out[#out + 1] = { name = k.name, kind = "kubeconfig", kc = s, ca = k.ca, pods = k.pods or {}, long = k.long }
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

function M.item(ctx, name)
  for _, it in ipairs(M.items(ctx)) do if it.name == name then return it end end
end

function M.authorities(ctx)
  local out = {}
  for _, e in ipairs(tbl.list(ctx)) do if e.is_ca then out[#out + 1] = e end end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- The file an item lives in (its certificate, or the kubeconfig).
function M.path(ctx, it)
  if it.kind == "kubeconfig" then return kubeconfigs.path(ctx, it.kc) end
  return (tbl.paths(it.entry, ctx))
end

---------------------------------------------------------------------------------------------------
-- Reading

local function read_opt(ctx, path)
  local data, err = ctx.fs.read(path)
  if data then return data end
  if err and err.code == 2 then return nil end -- ENOENT
  return nil, ("cannot read %s: %s"):format(path, tostring(err))
end

-- A CA as found on disk: { name, path, cert, pem (its first certificate), key | nil, problems }
-- or nil when its certificate does not exist. Never raises.
local function load_ca(ctx, name, cache)
  if cache[name] ~= nil then return cache[name] or nil end
  local e = tbl.get(name)
  local crt, key_path = tbl.paths(e, ctx)
  local ca = { name = name, path = crt, key_path = key_path, problems = {} }
  local pem, err = read_opt(ctx, crt)
  if not pem then
    if not err then cache[name] = false return nil end
    ca.problems[#ca.problems + 1] = err
    ca.invalid = true
    cache[name] = ca
    return ca
  end
  local cert, perr = pki.load_cert(pem)
  if not cert then
    ca.problems[#ca.problems + 1] = ("%s is not a PEM certificate: %s"):format(crt, tostring(perr))
    ca.invalid = true
  else
    ca.cert, ca.pem, ca.file_pem = cert, cert:pem(), pem
    local kpem, kerr = read_opt(ctx, key_path)
    if kerr then ca.problems[#ca.problems + 1] = kerr end
    if kpem then
      local k, lerr = pki.load_key(kpem)
      if not k or not k:is_private() then
        ca.problems[#ca.problems + 1] = ("%s is not a PEM private key%s"):format(key_path, lerr and (": " .. tostring(lerr)) or "")
      elseif not k:matches(cert) then
        ca.problems[#ca.problems + 1] = ("its key %s does not match it"):format(key_path)
      else
        ca.key = k
      end
    end
    -- a CA certificate without its key: an external CA, which signs nothing here
    ca.external = not ctx.fs.exists(key_path)
  end
  cache[name] = ca
  return ca
end
M.load_ca = function(ctx, name) return load_ca(ctx, name, {}) end

-- The certificate (and key) an item holds now: { cert, info, key | nil, pem, problems, kc (the
-- loaded kubeconfig table), embedded (kubeconfig: the client certificate is in the file) }, or
-- { missing = true } / { invalid = true, problems }.
local function load_item(ctx, it)
  local path = M.path(ctx, it)
  local r = { problems = {}, path = path }
  if it.kind == "file" then
    local pem, err = read_opt(ctx, path)
    if not pem then
      if not err then r.missing = true return r end
      r.invalid = true; r.problems[1] = err
      return r
    end
    local cert, perr = pki.load_cert(pem)
    if not cert then
      r.invalid = true; r.problems[1] = ("%s is not a PEM certificate: %s"):format(path, tostring(perr))
      return r
    end
    r.cert = cert
    local _, key_path = tbl.paths(it.entry, ctx)
    r.key_path = key_path
    local kpem, kerr = read_opt(ctx, key_path)
    if kerr then r.problems[#r.problems + 1] = kerr
    elseif not kpem then r.problems[#r.problems + 1] = ("its key %s is missing"):format(key_path)
    else
      local k, lerr = pki.load_key(kpem)
      if not k or not k:is_private() then
        r.problems[#r.problems + 1] = ("%s is not a PEM private key%s"):format(key_path, lerr and (": " .. tostring(lerr)) or "")
      elseif not k:matches(cert) then
        r.problems[#r.problems + 1] = ("its key %s does not match it"):format(key_path)
      else r.key = k end
    end
  else
    if not ctx.fs.exists(path) then r.missing = true return r end
    local kubeconfig = require("kboot.kubeconfig")
    local t, err = kubeconfig.load(path)
    local cur
    if t then cur, err = kubeconfig.current(t) end
    if not cur then
      r.invalid = true; r.problems[1] = tostring(err)
      return r
    end
    if not cur.cert_pem then
      r.invalid = true; r.problems[1] = ("%s has no client certificate"):format(path)
      return r
    end
    local cert, perr = pki.load_cert(cur.cert_pem)
    if not cert then
      r.invalid = true; r.problems[1] = ("%s: its client certificate cannot be parsed: %s"):format(path, tostring(perr))
      return r
    end
    r.cert, r.kc, r.cur = cert, t, cur
    local k = cur.key_pem and pki.load_key(cur.key_pem)
    if not k or not k:is_private() then r.problems[#r.problems + 1] = "its client key cannot be parsed"
    elseif not k:matches(cert) then r.problems[#r.problems + 1] = "its client key does not match its client certificate"
    else r.key = k end
    r.embedded = M.embedded_user(t) ~= nil
  end
  r.info = r.cert:info()
  return r
end
M.load_item = load_item

-- The current context's user entry of a kubeconfig table when its client certificate and key are
-- embedded (kubeadm renews only those), and its cluster entry.
function M.embedded_user(t)
  local name = t["current-context"]
  local function find(list, n)
    for _, x in ipairs(list or {}) do if x.name == n then return x end end
  end
  local c = find(t.contexts, name)
  if not c then return nil end
  local u, cl = find(t.users, c.context.user), find(t.clusters, c.context.cluster)
  if not (u and cl and u.user and u.user["client-certificate-data"] and u.user["client-key-data"]) then return nil end
  return u.user, cl.cluster
end

---------------------------------------------------------------------------------------------------
-- What kubeadm does not check: the key, the signature, the configuration

local function canon_ip(s)
  local net = require("kboot.net")
  local p = net.parse_ip(s:lower())
  return p and net.format_ip(p) or s
end

-- SANs the certificate has that the configuration no longer lists (certs.differences gives the
-- missing ones).
local function extra_sans(info, spec)
  local d, want_dns, want_ip = {}, {}, {}
  for _, n in ipairs(spec.dns or {}) do want_dns[n] = true end
  for _, ip in ipairs(spec.ip or {}) do want_ip[canon_ip(ip)] = true end
  for _, n in ipairs(info.dns or {}) do
    if not want_dns[n] then d[#d + 1] = ("DNS SAN %s is no longer in the configuration"):format(n) end
  end
  for _, ip in ipairs(info.ip or {}) do
    if not want_ip[canon_ip(ip)] then d[#d + 1] = ("IP SAN %s is no longer in the configuration"):format(ip) end
  end
  return d
end

local function check(ctx, it, r, ca, with_config)
  local p = r.problems
  if not ca then
    p[#p + 1] = ("its CA certificate %s is missing"):format((tbl.paths(tbl.get(it.ca), ctx)))
  elseif ca.cert and not r.cert:issued_by(ca.cert) then
    p[#p + 1] = ("it is not signed by the %q CA (%s)"):format(it.ca, ca.path)
  end
  if it.kind == "kubeconfig" and ca and ca.pem and r.cur and r.cur.ca_pem then
    -- as kubeadm compares them: the bytes, whitespace-trimmed (parsed only when they differ)
    local function trim(x) return (x:match("^%s*(.-)%s*$")) end
    local first = trim(r.cur.ca_pem) == trim(ca.file_pem) or pki.load_cert(r.cur.ca_pem)
    if not first or (first ~= true and first ~= ca.cert) then
      p[#p + 1] = ("its certificate-authority-data is not %s"):format(ca.path)
    end
  end
  if with_config then
    local ok, spec = pcall(function()
      if it.kind == "file" then return tbl.spec(it.entry, ctx) end
      return kubeconfigs.client_spec(ctx, it.kc)
    end)
    if not ok then
      p[#p + 1] = ("the configuration gives no spec for it: %s"):format(tostring(spec))
    else
      for _, d in ipairs(certs.differences(r.info, spec)) do p[#p + 1] = d end
      for _, d in ipairs(extra_sans(r.info, spec)) do p[#p + 1] = d end
    end
  end
end

---------------------------------------------------------------------------------------------------
-- check-expiration

-- inspect(ctx, {config = bool}) -> report: { now, certificates = { row... }, authorities = { row... } }
-- row: { name, missing, invalid, not_after, residual, ca (leaves), external, problems = {...} }.
-- config: compare subjects and SANs with ctx's configuration (only when one was given).
function M.inspect(ctx, o)
  o = o or {}
  local now = ctx.now or os.time()
  local cache = {}
  local report = { now = now, certificates = {}, authorities = {} }
  for _, it in ipairs(M.items(ctx)) do
    local r = load_item(ctx, it)
    local ca = load_ca(ctx, it.ca, cache)
    local row = { name = it.name, ca = it.ca, missing = r.missing == true, invalid = r.invalid == true,
                  problems = r.problems, external = ca ~= nil and ca.external == true }
    if r.cert then
      check(ctx, it, r, ca, o.config)
      row.not_after = r.info.not_after
      row.residual = M.residual(r.info.not_after, now)
    end
    report.certificates[#report.certificates + 1] = row
  end
  for _, e in ipairs(M.authorities(ctx)) do
    local ca = load_ca(ctx, e.name, cache)
    local row = { name = e.name, missing = ca == nil, invalid = ca ~= nil and ca.invalid == true,
                  problems = ca and ca.problems or {}, external = ca ~= nil and ca.external == true }
    if ca and ca.cert then
      local info = ca.cert:info()
      row.not_after, row.residual = info.not_after, M.residual(info.not_after, now)
      if not info.is_ca then row.problems[#row.problems + 1] = "it is not a CA certificate" end
    end
    report.authorities[#report.authorities + 1] = row
  end
  return report
end

-- residual(not_after, now) -> seconds left (a float): the wall clock is, on average, half a second
-- past os.time(), so a certificate renewed this second has 364d and some hours left, as kubeadm
-- (which counts nanoseconds) shows it, not 365d.
function M.residual(not_after, now) return not_after - now - 0.5 end

-- apimachinery's ShortHumanDuration (what kubeadm prints as RESIDUAL TIME) of a float: Go truncates
-- the seconds toward zero, and for whole seconds every larger unit is the same (kboot.tokens has it).
local function trunc(x) return math.tointeger(x < 0 and math.ceil(x) or math.floor(x)) end
function M.short_duration(d) return require("kboot.tokens").short_duration(trunc(d)) end

-- Go's "Jan 02, 2006 15:04 MST" for a UTC time (x509 times are UTC).
function M.format_date(t) return os.date("!%b %d, %Y %H:%M UTC", t) end

-- Go's text/tabwriter as kubeadm sets it up (minwidth 10, padding 3, spaces): lines is a list of
-- cell lists; every cell but a line's last is padded to its column's width; a line with fewer
-- cells ends the column blocks above it.
function M.tabwrite(lines)
  local out, i = {}, 1
  while i <= #lines do
    local n = #lines[i]
    local j = i
    while j + 1 <= #lines and #lines[j + 1] == n do j = j + 1 end
    local widths = {}
    for c = 1, n - 1 do
      local w = 10
      for l = i, j do w = math.max(w, #lines[l][c] + 3) end
      widths[c] = w
    end
    for l = i, j do
      local cells = {}
      for c = 1, n - 1 do cells[c] = lines[l][c] .. (" "):rep(widths[c] - #lines[l][c]) end
      cells[n] = lines[l][n] or ""
      out[#out + 1] = table.concat(cells) .. "\n"
    end
    i = j + 1
  end
  return table.concat(out)
end

local function yes_no(b) return b and "yes" or "no" end
local function pad8(s) return s .. (" "):rep(8 - #s) end -- Go's %-8v

-- The text kubeadm prints (byte for byte), then, when something is wrong, a PROBLEMS table.
function M.format_text(report)
  local lines = { { "CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED" } }
  for _, r in ipairs(report.certificates) do
    if r.not_after then
      lines[#lines + 1] = { r.name, M.format_date(r.not_after), M.short_duration(r.residual), r.ca, pad8(yes_no(r.external)) }
    else
      lines[#lines + 1] = { (r.invalid and "!INVALID! " or "!MISSING! ") .. r.name, "", "", "", "" }
    end
  end
  lines[#lines + 1] = { "" }
  lines[#lines + 1] = { "CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED" }
  for _, r in ipairs(report.authorities) do
    if r.not_after then
      lines[#lines + 1] = { r.name, M.format_date(r.not_after), M.short_duration(r.residual), pad8(yes_no(r.external)) }
    else
      lines[#lines + 1] = { (r.invalid and "!INVALID! " or "!MISSING! ") .. r.name, "", "", "" }
    end
  end
  local problems = {}
  for _, list in ipairs({ report.certificates, report.authorities }) do
    for _, r in ipairs(list) do
      for _, p in ipairs(r.problems) do problems[#problems + 1] = { r.name, p } end
    end
  end
  if #problems > 0 then
    lines[#lines + 1] = { "" }
    lines[#lines + 1] = { "CERTIFICATE", "PROBLEM" }
    for _, p in ipairs(problems) do lines[#lines + 1] = p end
  end
  return M.tabwrite(lines)
end

-- kubeadm's output.kubeadm.k8s.io/v1alpha3 CertificateExpirationInfo, plus `problems` on an entry
-- that has some. Fields in kubeadm's order (kind, apiVersion first, as its JSON printer writes).
local function rfc3339(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end
local function entry(r, leaf)
  local e = { { "name", r.name } }
  local null = require("kboot.yaml").null
  local found = r.not_after ~= nil -- kubeadm gives a missing one its name and missing: true only
  e[#e + 1] = { "expirationDate", found and rfc3339(r.not_after) or null }
  -- int64(d / time.Second): toward zero
  e[#e + 1] = { "residualTime", found and trunc(r.residual) or 0 }
  e[#e + 1] = { "externallyManaged", found and r.external == true }
  if found and leaf and r.ca and r.ca ~= "" then e[#e + 1] = { "caName", r.ca } end -- omitempty
  e[#e + 1] = { "missing", not found }
  if #r.problems > 0 then e[#e + 1] = { "problems", r.problems } end
  return e
end
local function info_object(report)
  local c, a = {}, {}
  for _, r in ipairs(report.certificates) do c[#c + 1] = entry(r, true) end
  for _, r in ipairs(report.authorities) do a[#a + 1] = entry(r, false) end
  return { { "kind", "CertificateExpirationInfo" }, { "apiVersion", "output.kubeadm.k8s.io/v1alpha3" },
           { "certificates", c }, { "certificateAuthorities", a } }
end

-- Go's encoding/json string escaping (HTML-safe, as json.Marshal).
local function json_string(s)
  return '"' .. s:gsub('[%c"\\<>&]', function(ch)
    if ch == '"' then return '\\"' elseif ch == "\\" then return "\\\\"
    elseif ch == "\n" then return "\\n" elseif ch == "\t" then return "\\t" elseif ch == "\r" then return "\\r" end
    return ("\\u%04x"):format(ch:byte())
  end) .. '"'
end

-- Ordered pairs { {k, v}, ... } are objects; other tables arrays. MarshalIndent("", "    ").
local function is_pairs(v) return type(v) == "table" and type(v[1]) == "table" and type(v[1][1]) == "string" and #v[1] == 2 end
local function json(v, ind)
  local null = require("kboot.yaml").null
  if v == null then return "null" end
  local ty = type(v)
  if ty == "string" then return json_string(v) end
  if ty == "boolean" or ty == "number" then return tostring(v) end
  local inner = ind .. "    "
  local parts = {}
  if is_pairs(v) then
    for _, kv in ipairs(v) do parts[#parts + 1] = inner .. json_string(kv[1]) .. ": " .. json(kv[2], inner) end
    return "{\n" .. table.concat(parts, ",\n") .. "\n" .. ind .. "}"
  end
  if #v == 0 then return "[]" end
  for _, x in ipairs(v) do parts[#parts + 1] = inner .. json(x, inner) end
  return "[\n" .. table.concat(parts, ",\n") .. "\n" .. ind .. "]"
end

function M.format_json(report) return json(info_object(report), "") .. "\n" end

-- As kubeadm's YAML printer (JSON then YAML): keys sorted.
function M.format_yaml(report)
  local yaml = require("kboot.yaml")
  local function plain(v)
    if is_pairs(v) then
      local t = setmetatable({}, yaml.map_mt)
      for _, kv in ipairs(v) do t[kv[1]] = plain(kv[2]) end
      return t
    elseif type(v) == "table" then
      local t = setmetatable({}, yaml.array_mt)
      for i, x in ipairs(v) do t[i] = plain(x) end
      return t
    end
    return v
  end
  return yaml.encode(plain(info_object(report)))
end

---------------------------------------------------------------------------------------------------
-- renew

-- parse_duration(s) -> seconds | nil, why: a Go duration ("2160h", "1h30m") or days ("90d",
-- "1d12h"), not negative.
function M.parse_duration(s)
  if type(s) ~= "string" or s == "" then return nil, "empty (want e.g. 90d, 720h, 1d12h)" end
  local go = s:gsub("(%d*%.?%d+)d", function(n) return ("%.17gh"):format(tonumber(n) * 24) end)
  local secs, err = time.parse_duration(go)
  if not secs then return nil, ("not a duration (want e.g. 90d, 720h, 1d12h): %s"):format(tostring(err):gsub("^invalid duration \"[^\"]*\": ", "")) end
  if secs < 0 then return nil, "negative" end
  return secs
end

-- plan_renew(ctx, names, o) -> plan: { renew = { {item, old (load_item result), ca}, ... },
-- left = { {item, residual}, ... }, missing = { item, ... } }. names: item names, or { "all" }.
-- o.within: renew only what expires within that many seconds; o.algorithm: the key algorithm
-- (default: each certificate's own). Raises a kboot.error (exit 1), before anything is written,
-- for a named certificate that is missing, a CA without its key (external CA), a file it cannot
-- read or a kubeconfig whose client certificate is not embedded. Unknown names raise too.
function M.plan_renew(ctx, names, o)
  o = o or {}
  local op = "certs renew"
  local all = #names == 1 and names[1] == "all"
  local selected = {}
  if all then selected = M.items(ctx)
  else
    for _, n in ipairs(names) do
      local it = M.item(ctx, n)
      if not it then fail(op, "unknown certificate %q", tostring(n)) end
      selected[#selected + 1] = it
    end
  end
  local now = ctx.now or os.time()
  local plan = { renew = {}, left = {}, missing = {}, within = o.within }
  local cache, external = {}, {}
  for _, it in ipairs(selected) do
    local r = load_item(ctx, it)
    if r.missing then
      if not all then fail(op, "%s: %s does not exist; nothing was renewed", it.name, r.path) end
      plan.missing[#plan.missing + 1] = it
    elseif r.invalid then
      fail(op, "%s: %s; nothing was renewed", it.name, r.problems[1])
    elseif o.within and r.info.not_after - now > o.within then
      plan.left[#plan.left + 1] = { item = it, residual = M.residual(r.info.not_after, now) }
    else
      if it.kind == "kubeconfig" and not r.embedded then
        fail(op, "%s: %s does not embed its client certificate and key (client-certificate-data, client-key-data); nothing was renewed",
          it.name, r.path)
      end
      local ca = load_ca(ctx, it.ca, cache)
      if not ca then
        fail(op, "%s: its CA certificate %s does not exist; nothing was renewed", it.name, (tbl.paths(tbl.get(it.ca), ctx)))
      end
      if ca.invalid or (not ca.external and not ca.key) then
        fail(op, "%s: the %q CA cannot be used: %s; nothing was renewed", it.name, it.ca, table.concat(ca.problems, "; "))
      end
      if ca.external then
        external[#external + 1] = it.name
        plan.external_ca = plan.external_ca or ca
      end
      plan.renew[#plan.renew + 1] = { item = it, old = r, ca = ca,
        algorithm = o.algorithm or r.cert:public_key():algorithm() or tbl.algorithm(ctx) }
    end
  end
  if #external > 0 then
    local ca = plan.external_ca
    fail(op, "cannot renew %s: the %q CA key %s is absent (external CA: the CA is managed outside this node); "
      .. "sign new certificates with that CA instead; nothing was renewed", table.concat(external, ", "), ca.name, ca.key_path)
  end
  return plan
end

-- The spec of a renewed certificate: the old one's subject, SANs and usages, a new validity.
function M.renewal_spec(ctx, info)
  local now = ctx.now or os.time()
  return {
    cn = info.subject.cn, o = info.subject.o or {}, dns = info.dns or {}, ip = info.ip or {},
    usages = info.usages or tbl.LEAF_USAGES, ext_key_usages = info.ext_key_usages or {}, is_ca = false,
    not_before = now - tbl.BACKDATE, not_after = now + (ctx.cert_validity or tbl.DEFAULT_CERT_VALIDITY),
  }
end

local function write(ctx, path, data, mode)
  local ok, err = ctx.fs.write(path, data, mode, { mkdir = true, dir_mode = certs.DIR_MODE })
  if not ok then fail("certs renew", "cannot write %s: %s", path, tostring(err)) end
end

-- renew(ctx, plan) -> { {item, cert, key}, ... }: new keys (one batch, every core), new
-- certificates signed by the local CAs, written through ctx.fs (the caller's batch makes them land
-- together). A kubeconfig keeps everything but its client certificate, key and CA data.
function M.renew(ctx, plan)
  local algs = {}
  for i, p in ipairs(plan.renew) do algs[i] = p.algorithm end
  local keys = #algs > 0 and pki.generate_batch(algs) or {}
  local done = {}
  for i, p in ipairs(plan.renew) do
    local it, key = p.item, keys[i]
    local spec = M.renewal_spec(ctx, p.old.info)
    local cert, err = pki.sign(spec, key, p.ca.cert, p.ca.key)
    if not cert then fail("certs renew", "%s: cannot sign: %s", it.name, tostring(err)) end
    if spec.not_after > p.ca.cert:info().not_after then
      local log = ctx.log or require("kboot.log")
      log.warn("certs", "the renewed %s certificate outlives its %q CA (%s): it stops working when the CA expires",
        it.name, it.ca, M.format_date(p.ca.cert:info().not_after))
    end
    local kpem = assert(certs.key_pem(key))
    if it.kind == "file" then
      write(ctx, p.old.key_path, kpem, certs.KEY_MODE)
      write(ctx, p.old.path, cert:pem(), certs.CERT_MODE)
    else
      local user, cluster = M.embedded_user(p.old.kc)
      user["client-certificate-data"] = crypto.base64(cert:pem())
      user["client-key-data"] = crypto.base64(kpem)
      cluster["certificate-authority-data"] = crypto.base64(p.ca.pem)
      local ok, werr = require("kboot.kubeconfig").write(p.old.path, p.old.kc)
      if not ok then fail("certs renew", "cannot write %s: %s", p.old.path, tostring(werr)) end
    end
    done[#done + 1] = { item = it, cert = cert, key = key }
  end
  return done
end

-- The static Pods that load the renewed certificates, in kubeadm's order.
local POD_ORDER = { "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd" }
function M.pods(done)
  local want = {}
  for _, d in ipairs(done) do for _, p in ipairs(d.item.pods or {}) do want[p] = true end end
  local out = {}
  for _, p in ipairs(POD_ORDER) do if want[p] then out[#out + 1] = p; want[p] = nil end end
  local rest = {}
  for p in pairs(want) do rest[#rest + 1] = p end
  table.sort(rest)
  for _, p in ipairs(rest) do out[#out + 1] = p end
  return out
end

local function and_list(l)
  if #l <= 1 then return l[1] or "" end
  return table.concat(l, ", ", 1, #l - 1) .. " and " .. l[#l]
end

-- The last line of a renewal: which static Pods must restart (kubeadm's sentence for `all`).
function M.restart_line(done)
  if #done == 0 then return "Nothing was renewed." end
  local pods = M.pods(done)
  if #pods == 0 then
    return "Done renewing certificates. No static Pod loads them: only their users (kubectl) read them, at their next call."
  end
  return ("Done renewing certificates. You must restart the %s, so that %s can use the new certificates.")
    :format(and_list(pods), #pods == 1 and "it" or "they")
end

---------------------------------------------------------------------------------------------------
-- generate-csr (kubeadm's External CA mode)

-- plan_csr(ctx) -> { leaves = { entry... }, kubeconfigs = { spec... } }; raises (nothing written)
-- when a key, CSR or kubeconfig it would write already exists.
function M.plan_csr(ctx)
  local op = "certs generate-csr"
  local p = { leaves = {}, kubeconfigs = {} }
  local dir = ctx.cluster.certificatesDir
  for _, e in ipairs(tbl.list(ctx)) do
    if not e.is_ca then
      local base = dir .. "/" .. e.base
      if ctx.fs.exists(base .. ".key") or ctx.fs.exists(base .. ".csr") then
        fail(op, "file already exists: key or CSR %s; nothing was written", base)
      end
      local ok, err = pcall(tbl.spec, e, ctx)
      if not ok then fail(op, "%s: %s", e.name, tostring(err)) end
      p.leaves[#p.leaves + 1] = e
    end
  end
  for _, s in ipairs(kubeconfigs.specs) do
    local path = kubeconfigs.path(ctx, s)
    if ctx.fs.exists(path) then fail(op, "file already exists: kubeconfig %s; nothing was written", path) end
    if ctx.fs.exists(path .. ".csr") then fail(op, "file already exists: CSR %s.csr; nothing was written", path) end
    p.kubeconfigs[#p.kubeconfigs + 1] = s
  end
  return p
end

-- generate_csr(ctx, plan) -> lines kubeadm prints. Keys (0600) and CSRs (0644) beside where the
-- certificates go; partial kubeconfigs (server, user, client-key-data only) and NAME.conf.csr.
function M.generate_csr(ctx, plan)
  local yaml = require("kboot.yaml")
  local n = #plan.leaves + #plan.kubeconfigs
  local keys = n > 0 and pki.generate_batch(n, tbl.algorithm(ctx)) or {}
  local dir = ctx.cluster.certificatesDir
  local out = { ("generating keys and CSRs in %s"):format(dir) }
  for i, e in ipairs(plan.leaves) do
    local spec = tbl.spec(e, ctx)
    local csr = assert(pki.csr(keys[i], { cn = spec.cn, o = spec.o, dns = spec.dns, ip = spec.ip }))
    local base = dir .. "/" .. e.base
    write(ctx, base .. ".key", assert(certs.key_pem(keys[i])), certs.KEY_MODE)
    write(ctx, base .. ".csr", csr:pem(), certs.CERT_MODE)
    out[#out + 1] = "  " .. e.base
  end
  out[#out + 1] = ("generating keys and CSRs in %s"):format(ctx.kubeconfig_dir or kubeconfigs.DIR)
  local cluster = ctx.cluster.clusterName or "kubernetes"
  for j, s in ipairs(plan.kubeconfigs) do
    local key = keys[#plan.leaves + j]
    local spec = kubeconfigs.client_spec(ctx, s)
    local csr = assert(pki.csr(key, { cn = spec.cn, o = spec.o }))
    local t = {
      apiVersion = "v1", kind = "Config",
      clusters = { { name = cluster, cluster = { server = kubeconfigs.server(ctx, s) } } },
      contexts = { { name = spec.cn .. "@" .. cluster, context = { cluster = cluster, user = spec.cn } } },
      ["current-context"] = spec.cn .. "@" .. cluster,
      preferences = setmetatable({}, yaml.map_mt),
      users = { { name = spec.cn, user = { ["client-key-data"] = crypto.base64(assert(certs.key_pem(key))) } } },
    }
    local path = kubeconfigs.path(ctx, s)
    local ok, err = require("kboot.kubeconfig").write(path, t)
    if not ok then fail("certs generate-csr", "cannot write %s: %s", path, tostring(err)) end
    write(ctx, path .. ".csr", csr:pem(), certs.CERT_MODE)
    out[#out + 1] = "  " .. s.file
  end
  return out
end

return M

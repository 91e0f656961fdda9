-- The certs phases of `kboot init`: create, reuse or check every certificate of the kubeadm
-- table (kboot.certs_table) and the service-account key pair, as kubeadm v1.31 does, with
-- two differences that make re-runs safe: an existing file is never replaced silently (a
-- mismatch is reported with what differs) and an orphan key left by an interrupted run is
-- reused instead of regenerated.
local pki = require("kboot.pki")
local tbl = require("kboot.certs_table")
local errors = require("kboot.error")
local net = require("kboot.net")

local M = {}

M.CERT_MODE = 420      -- 0644, as certutil.WriteCert
M.KEY_MODE = 384       -- 0600, as keyutil.WriteKey (sa.pub too: kubeadm writes it with WriteKey)
M.DIR_MODE = 493       -- 0755, as certutil/keyutil MkdirAll

-- A phase failure: an error object (same metatable as the bindings' errors) the host prints
-- as one line; raised, so a phase runner cannot ignore it.
function M.fail(op, fmt, ...)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  error(setmetatable({ op = op, msg = msg, exit = 1 }, errors.meta), 0)
end
local fail = M.fail

-- returning(fn) -> a phase run: fn's raised kboot.error comes back as nil, err (the phase convention);
-- anything else raised (a bug) is raised on.
function M.returning(fn)
  return function(...)
    local ok, r, e = pcall(fn, ...)
    if ok then return r, e end
    if errors.is(r) then return nil, r end
    error(r, 0)
  end
end

local function log(ctx) return ctx.log or require("kboot.log") end

local function read_opt(ctx, path)
  local data, err = ctx.fs.read(path)
  if data then return data end
  if err and err.code == 2 then return nil end -- ENOENT
  if not ctx.fs.exists(path) then return nil end
  fail("certs", "cannot read %s: %s", path, tostring(err))
end

local function write(ctx, op, path, data, mode)
  local ok, err = ctx.fs.write(path, data, mode, { mkdir = true, dir_mode = M.DIR_MODE })
  if not ok then fail(op, "cannot write %s: %s", path, tostring(err)) end
end

function M.key_pem(key) return key:pem("traditional") end

local function load_cert(op, path, pem)
  local c, err = pki.load_cert(pem)
  if not c then fail(op, "%s is not a valid PEM certificate: %s", path, tostring(err)) end
  return c
end

local function load_key(op, path, pem)
  local k, err = pki.load_key(pem)
  if not k then fail(op, "%s is not a valid PEM private key: %s", path, tostring(err)) end
  if not k:is_private() then fail(op, "%s holds a public key, a private key is expected", path) end
  return k
end

---------------------------------------------------------------------------------------------
-- Keys: every key this run needs is generated in one pki.generate_batch call (all cores).

-- Is phase `name` going to run? The phase runner may set ctx.phase_enabled(name) -> truthy.
local function enabled(ctx, name)
  return ctx.phase_enabled == nil or not not ctx.phase_enabled(name)
end

-- Ids of the certificate keys the certs phases will have to create.
function M.keys_needed(ctx)
  local ids = {}
  local cas_with_key = {}
  for _, e in ipairs(tbl.list(ctx)) do
    local crt, key = tbl.paths(e, ctx)
    if e.is_ca then
      cas_with_key[e.name] = ctx.fs.exists(key) or not ctx.fs.exists(crt)
    end
    local signable = e.is_ca or cas_with_key[e.ca]
    if signable and enabled(ctx, "certs/" .. e.name) and not ctx.fs.exists(crt) and not ctx.fs.exists(key) then
      ids[#ids + 1] = "cert:" .. e.name
    end
  end
  local dir = ctx.cluster.certificatesDir
  if enabled(ctx, "certs/sa") and not ctx.fs.exists(dir .. "/sa.key") and not ctx.fs.exists(dir .. "/sa.pub") then
    ids[#ids + 1] = "sa"
  end
  return ids
end

-- Fill ctx.keypool once with fresh keys for the certs phases and, when kboot.kubeconfigs is
-- there, the kubeconfig phases: one batch keeps every core busy until the last key.
function M.pregenerate(ctx)
  if ctx.keypool then return ctx.keypool end
  local ids = M.keys_needed(ctx)
  local ok, kc = pcall(require, "kboot.kubeconfigs")
  if ok and kc.keys_needed then
    for _, id in ipairs(kc.keys_needed(ctx)) do ids[#ids + 1] = id end
  end
  ctx.keypool = {}
  if #ids > 0 then
    local alg = tbl.algorithm(ctx)
    log(ctx).debug("certs", "generating %d %s keys in one batch", #ids, alg)
    local keys = pki.generate_batch(#ids, alg)
    for i, id in ipairs(ids) do ctx.keypool[id] = keys[i] end
  end
  return ctx.keypool
end

-- The pre-generated key for id, or a fresh one when the pool has none (a phase run alone).
function M.take_key(ctx, id)
  local pool = ctx.keypool or {}
  local k = pool[id]
  if k then pool[id] = nil; return k end
  return pki.generate_key(tbl.algorithm(ctx))
end

---------------------------------------------------------------------------------------------
-- Comparing an existing certificate with its spec (kubeadm's validateCertificateWithConfig,
-- extended to the subject): returns a list of differences, empty when it matches.

local function canon_ip(s)
  local p = net.parse_ip(s:lower())
  return p and net.format_ip(p) or s
end

local function set_of(list, f)
  local s = {}
  for _, v in ipairs(list or {}) do s[f and f(v) or v] = true end
  return s
end

function M.differences(info, spec)
  local d = {}
  if info.subject.cn ~= spec.cn then
    d[#d + 1] = ("CN is %q, want %q"):format(tostring(info.subject.cn), spec.cn)
  end
  local have_o, want_o = table.concat(info.subject.o or {}, ","), table.concat(spec.o or {}, ",")
  if have_o ~= want_o then d[#d + 1] = ("O is %q, want %q"):format(have_o, want_o) end
  local dns = set_of(info.dns)
  for _, n in ipairs(spec.dns or {}) do
    if not dns[n] then d[#d + 1] = ("missing DNS SAN %s"):format(n) end
  end
  local ips = set_of(info.ip, canon_ip)
  for _, ip in ipairs(spec.ip or {}) do
    if not ips[canon_ip(ip)] then d[#d + 1] = ("missing IP SAN %s"):format(ip) end
  end
  local ekus = set_of(info.ext_key_usages)
  for _, u in ipairs(spec.ext_key_usages or {}) do
    if not ekus[u] then d[#d + 1] = ("missing extended key usage %q"):format(u) end
  end
  if (info.is_ca or false) ~= (spec.is_ca or false) then
    d[#d + 1] = spec.is_ca and "is not a CA" or "is a CA, want a leaf certificate"
  end
  return d
end

---------------------------------------------------------------------------------------------
-- CAs

-- ctx.cas[name] = { cert=, key= (nil in external CA mode), pem= }
local function cas(ctx)
  ctx.cas = ctx.cas or {}
  return ctx.cas
end

local function check_period(ctx, op, path, cert)
  local left = cert:expires_in()
  if left < 0 then
    log(ctx).warn("certs", "%s has expired; renew it before the cluster depends on it", path)
  elseif left < 30 * 24 * 3600 then
    log(ctx).warn("certs", "%s expires in %d days", path, left // 86400)
  end
end

-- Load a CA from disk (existing files only); nil when ca.crt does not exist.
function M.load_ca(ctx, name)
  local c = cas(ctx)[name]
  if c then return c end
  local e = tbl.get(name)
  local crt_path, key_path = tbl.paths(e, ctx)
  local op = "certs/" .. name
  local pem = read_opt(ctx, crt_path)
  if not pem then return nil end
  local cert = load_cert(op, crt_path, pem)
  if not cert:info().is_ca then fail(op, "certificate %s is not a CA", crt_path) end
  local kpem = read_opt(ctx, key_path)
  local key
  if kpem then
    key = load_key(op, key_path, kpem)
    if not key:matches(cert) then
      fail(op, "%s does not match %s (different public key); restore the right pair", key_path, crt_path)
    end
  end
  c = { cert = cert, key = key, pem = pem, name = name }
  cas(ctx)[name] = c
  return c
end

-- The key for a certificate about to be issued: one an interrupted run already wrote (kept, so
-- the certificate matches it), else a fresh key from the batch, written now.
local function key_for(ctx, op, e, key_path, kpem)
  if kpem then
    log(ctx).info("certs", "Generating %q certificate for the existing key %s", e.name, key_path)
    return load_key(op, key_path, kpem)
  end
  local key = M.take_key(ctx, "cert:" .. e.name)
  log(ctx).info("certs", "Generating %q certificate and key", e.name)
  write(ctx, op, key_path, M.key_pem(key), M.KEY_MODE)
  return key
end

local function ensure_ca(ctx, e)
  local op = "certs/" .. e.name
  local crt_path, key_path = tbl.paths(e, ctx)
  local c = M.load_ca(ctx, e.name)
  if c then
    check_period(ctx, op, crt_path, c.cert)
    if c.key then
      log(ctx).info("certs", "Using the existing %q certificate and key", e.name)
    else
      log(ctx).info("certs", "External CA mode: using the existing %q certificate; its key %s is absent, so it is "
        .. "externally managed: kboot signs nothing with it and never replaces it", e.name, key_path)
    end
    return c
  end
  local spec = tbl.spec(e, ctx)
  local key = key_for(ctx, op, e, key_path, read_opt(ctx, key_path))
  local cert = pki.self_signed_ca(key, spec)
  local pem = cert:pem()
  write(ctx, op, crt_path, pem, M.CERT_MODE)
  c = { cert = cert, key = key, pem = pem, name = e.name }
  cas(ctx)[e.name] = c
  return c
end

---------------------------------------------------------------------------------------------
-- Leaves

local function log_serving(ctx, e, spec)
  for _, u in ipairs(spec.ext_key_usages) do
    if u == "server auth" then
      log(ctx).info("certs", "%s serving cert is signed for DNS names [%s] and IPs [%s]", e.name,
        table.concat(spec.dns, " "), table.concat(spec.ip, " "))
      return
    end
  end
end

local function ensure_leaf(ctx, e)
  local op = "certs/" .. e.name
  local crt_path, key_path = tbl.paths(e, ctx)
  local ca = M.load_ca(ctx, e.ca)
  if not ca then
    fail(op, "the %q CA does not exist at %s; run phase certs/%s first", e.ca, (tbl.paths(tbl.get(e.ca), ctx)), e.ca)
  end
  local spec = tbl.spec(e, ctx)
  local pem = read_opt(ctx, crt_path)
  local kpem = read_opt(ctx, key_path)
  if pem then
    local cert = load_cert(op, crt_path, pem)
    local problems = {}
    if not kpem then
      problems[#problems + 1] = ("its key %s is missing"):format(key_path)
    elseif not load_key(op, key_path, kpem):matches(cert) then
      problems[#problems + 1] = ("%s does not belong to it (different public key)"):format(key_path)
    end
    local ok, verr = cert:verify(ca.cert)
    if not ok then
      problems[#problems + 1] = ("it does not verify against the %q CA: %s"):format(e.ca, tostring(verr))
    end
    for _, d in ipairs(M.differences(cert:info(), spec)) do problems[#problems + 1] = d end
    if #problems > 0 then
      fail(op, "existing certificate %s does not match its spec: %s. Remove %s and %s to have them regenerated, or fix the configuration",
        crt_path, table.concat(problems, "; "), crt_path, key_path)
    end
    check_period(ctx, op, crt_path, cert)
    log(ctx).info("certs", "Using the existing %q certificate and key", e.name)
    return cert
  end
  if not ca.key then
    fail(op, "external CA mode: %s is missing and there is no %q CA key to sign it; provide %s and %s signed by %s",
      crt_path, e.ca, crt_path, key_path, (tbl.paths(tbl.get(e.ca), ctx)))
  end
  local key = key_for(ctx, op, e, key_path, kpem)
  log_serving(ctx, e, spec)
  local cert = pki.sign(spec, key, ca.cert, ca.key)
  write(ctx, op, crt_path, cert:pem(), M.CERT_MODE)
  return cert
end

-- Run the phase of one table entry (by kubeadm name).
function M.ensure(ctx, name)
  local e = tbl.get(name)
  if not e then fail("certs", "unknown certificate %q", tostring(name)) end
  if e.etcd and tbl.external_etcd(ctx) then
    log(ctx).info("certs", "External etcd mode: skipping %s certificate generation", e.base)
    return true
  end
  -- a configuration the table cannot use (bad address, subnet, endpoint) fails before any write
  local ok, err = pcall(tbl.spec, e, ctx)
  if not ok then fail("certs/" .. name, "%s", tostring(err)) end
  M.pregenerate(ctx)
  if e.is_ca then ensure_ca(ctx, e) else ensure_leaf(ctx, e) end
  return true
end

---------------------------------------------------------------------------------------------
-- sa.key / sa.pub

function M.ensure_sa(ctx)
  local op = "certs/sa"
  local dir = ctx.cluster.certificatesDir
  local key_path, pub_path = dir .. "/sa.key", dir .. "/sa.pub"
  local kpem, ppem = read_opt(ctx, key_path), read_opt(ctx, pub_path)
  if kpem then
    local key = load_key(op, key_path, kpem)
    if ppem then
      local pub, err = pki.load_key(ppem)
      if not pub then fail(op, "%s is not a valid PEM public key: %s", pub_path, tostring(err)) end
      if not key:matches(pub) then
        fail(op, "%s does not match %s (different key pair); remove both to have them regenerated", pub_path, key_path)
      end
      log(ctx).info("certs", "Using the existing \"sa\" key")
    else
      log(ctx).info("certs", "%s the missing public key %s for the existing \"sa\" key",
                    ctx.dry_run and "dry run: would write" or "Writing", pub_path)
      write(ctx, op, pub_path, key:public_pem(), M.KEY_MODE)
    end
    return true
  end
  if ppem then
    fail(op, "%s exists without its private key %s; restore sa.key or remove sa.pub", pub_path, key_path)
  end
  M.pregenerate(ctx)
  local key = M.take_key(ctx, "sa")
  log(ctx).info("certs", "Generating \"sa\" key and public key")
  write(ctx, op, key_path, M.key_pem(key), M.KEY_MODE)
  write(ctx, op, pub_path, key:public_pem(), M.KEY_MODE)
  return true
end

---------------------------------------------------------------------------------------------

-- The ordered phase entries certs/ca ... certs/sa (kubeadm's names and order).
function M.phases()
  local out = {}
  for _, e in ipairs(tbl.certs) do
    out[#out + 1] = {
      name = "certs/" .. e.name,
      help = ("Generate the %s"):format(e.long),
      run = M.returning(function(ctx) return M.ensure(ctx, e.name) end),
    }
  end
  out[#out + 1] = { name = "certs/sa", help = "Generate a private key for signing service account tokens along with its public key",
                    run = M.returning(M.ensure_sa) }
  return out
end

-- What this node's reset removes: the contents of the certificates directory (the config's, else
-- kubeadm's default), which stays. Needs no full configuration.
M.DEFAULT_DIR = "/etc/kubernetes/pki"
function M.clean(ctx)
  local dir = ctx.cluster and ctx.cluster.certificatesDir or M.DEFAULT_DIR
  return require("kboot.component").empty_dir(ctx, dir)
end

-- Everything at once (what `kboot init` does through the phases).
-- Raises the first failure as a kboot.error.
function M.run_all(ctx)
  for _, e in ipairs(tbl.certs) do M.ensure(ctx, e.name) end
  M.ensure_sa(ctx)
  return true
end

return M

--- check, renew and request certificates (kubeadm certs check-expiration|renew|certificate-key|generate-csr)
local cli = require("kboot.cli")
local log = require("kboot.log")
local fs = require("kboot.fs")
local lc = require("kboot.certs_lifecycle")

local argv = { ... }
local LOCK = "/etc/kubernetes/.kboot.lock" -- the one kboot init and join hold

local commands = {
  { "check-expiration", "kubeadm's expiry tables of every certificate and CA, then the problems kubeadm does not look for" },
  { "renew NAME...|all", "renew certificates with their subject, SANs and usages, a new key and a new validity" },
  { "certificate-key", "print a new key (64 hex characters) for init --upload-certs / join --certificate-key" },
  { "generate-csr", "write keys and CSRs for every certificate and kubeconfig, for an external CA to sign" },
}
local top = { name = "certs", usage = "kboot certs COMMAND [options]", commands = commands,
              summary = "Commands about the control plane's certificates (kubeadm certs)." }

local function common(extra)
  local out = {
    { "config", arg = "FILE", help = "kubeadm configuration (certificatesDir, etcd, certificateValidityPeriod, encryptionAlgorithm, SANs)" },
    { "cert-dir", arg = "DIR", help = "where the certificates are (default /etc/kubernetes/pki, or the config's)" },
    { "kubeconfig-dir", arg = "DIR", default = "/etc/kubernetes", help = "where the kubeconfig files are" },
    { "root", arg = "DIR", help = "treat DIR as the file system root (a sandbox)" },
  }
  for _, o in ipairs(extra or {}) do out[#out + 1] = o end
  return out
end

-- The host facts of `kboot config`: without a config file the commands that copy SANs from the
-- certificates on disk need none of this machine's.
local NO_HOST = { hostname = "node", default_address = "127.0.0.1", systemd_resolved = false, proxy_env = {} }

-- ctx for the command: --root, the configuration (the file, else kubeadm's defaults), --cert-dir,
-- --kubeconfig-dir. o.existing (a command about a node's existing PKI): without --config, external
-- etcd is assumed when this node has neither the etcd CA nor an etcd static Pod manifest. o.host:
-- this machine's facts even without --config (the SANs come from them). Bad input ends here (exit
-- 2), before anything is read.
local function setup(name, opts, o)
  if opts.root then
    local ok, err = fs.set_root(opts.root)
    if not ok then cli.usage_error(name, "--root %s: %s", opts.root, tostring(err)) end
  end
  for _, k in ipairs({ "cert_dir", "kubeconfig_dir" }) do
    if opts[k] then cli.path(name, "--" .. k:gsub("_", "-"), opts[k]) end
  end
  local context = require("kboot.context")
  local host = (o.host or opts.config) and context.host_facts() or NO_HOST
  local parts, errs, warnings = require("kboot.config").load({ file = opts.config, flags = opts, host = host })
  -- kubeadm's defaults alone warn about nothing of the admin's
  if opts.config then for _, w in ipairs(warnings or {}) do log.warn("config", "%s", w) end end
  if not parts then
    if #errs == 1 then cli.exit(2, ("%s: invalid configuration: %s; nothing was read or written"):format(name, errs[1])) end
    for _, e in ipairs(errs) do io.stderr:write(e, "\n") end
    cli.exit(2, ("%s: invalid configuration (%d problems); nothing was read or written"):format(name, #errs))
  end
  if o.existing and not opts.config then
    local dir = parts.cluster.certificatesDir
    if not fs.exists(dir .. "/etcd/ca.crt") and not fs.exists("/etc/kubernetes/manifests/etcd.yaml") then
      parts.cluster.etcd = { external = { endpoints = {} } }
    end
  end
  local ctx = context.new({ flow = "init", parts = parts, opts = opts, host = host, fs = fs, log = log })
  ctx.kubeconfig_dir = opts.kubeconfig_dir
  ctx.config_given = opts.config ~= nil
  return ctx
end

-- A kboot.error raised by the lifecycle module becomes its one line and exit 1.
local function raise_on(r)
  if type(r) == "table" and r.msg then cli.exit(r.exit or 1, r.msg) end
  error(r, 0)
end

-- Writes in one batch (everything lands together, or nothing when fn fails half-way); with
-- o.lock, under the node lock kboot init and join hold, its file removed while held so a run leaves
-- no trace but its files (a node without /etc/kubernetes has nothing to lock).
local function batched(ctx, fn, o)
  if ctx.dry_run then
    local r = table.pack(pcall(fn))
    if not r[1] then raise_on(r[2]) end
    return table.unpack(r, 2, r.n)
  end
  local lock
  if o and o.lock and fs.exists("/etc/kubernetes") then lock = require("kboot.runner").lock() end
  fs.begin()
  local r = table.pack(pcall(fn))
  -- a failure half-way leaves every old file as it was (a new key beside an old certificate
  -- would be worse than either)
  local cok, cerr = true, nil
  if r[1] then cok, cerr = fs.commit() else fs.discard() end
  if lock then
    fs.remove(LOCK)
    lock:close()
  end
  if not r[1] then raise_on(r[2]) end
  if not cok then cli.fail("cannot write the files: %s", tostring(cerr)) end
  return table.unpack(r, 2, r.n)
end

local function dry_run_report(cmd)
  for _, r in ipairs(fs.recorded()) do
    if r.op == "write" then
      io.stdout:write(("--- %s (mode %04o, %d bytes)\n"):format(r.path, r.mode or 0, #(r.data or "")))
    elseif r.op == "mkdir" then
      io.stdout:write(("--- %s/ (directory, mode %04o)\n"):format(r.path, r.mode or 0))
    end
  end
  log.info("dry-run", "Nothing was written; the files above are what kboot %s would write", cmd)
end

local function check_expiration(args)
  local name = "certs check-expiration"
  local opts = cli.parse(args, { name = name, usage = "kboot certs check-expiration [options]",
    summary = "Print when every certificate and CA expires, as kubeadm certs check-expiration does (same rows, columns "
      .. "and format; exit 0), then a PROBLEMS table when a key does not match its certificate, a certificate is not "
      .. "signed by its CA, or (with --config) its subject or SANs no longer match the configuration.",
    options = common({ { "output", short = "o", arg = "FORMAT", default = "text", help = "text, json or yaml" } }),
    max_args = 0, examples = { "kboot certs check-expiration", "kboot certs check-expiration --config kubeadm.yaml -o json" } })
  local fmt = ({ text = lc.format_text, json = lc.format_json, yaml = lc.format_yaml })[opts.output]
  if not fmt then cli.usage_error(name, "invalid --output %q: want text, json or yaml", opts.output) end
  local ctx = setup(name, opts, { existing = true })
  io.stdout:write(fmt(lc.inspect(ctx, { config = ctx.config_given })))
end

local function renew_names()
  local out = {}
  for _, it in ipairs(lc.items({ cluster = { etcd = {} } })) do out[#out + 1] = { it.name, "Renew the " .. it.long } end
  out[#out + 1] = { "all", "Renew all available certificates" }
  return out
end

local function renew(args)
  local name = "certs renew"
  local opts, pos = cli.parse(args, { name = name, usage = "kboot certs renew NAME...|all [options]",
    summary = "Renew certificates as kubeadm certs renew does: the subject, SANs and usages of the existing certificate, "
      .. "a new key, a validity of certificateValidityPeriod (default 8760h), signed by the local CA; the kubeconfigs' "
      .. "client certificates are renewed in place. With --expiring-within only what expires within DURATION is renewed "
      .. "(safe to run every day). A CA whose key is absent (external CA) is refused. The last line names the static "
      .. "Pods to restart.",
    commands = renew_names, args = "NAME...|all", min_args = 1,
    options = common({
      { "expiring-within", arg = "DURATION", help = "renew only certificates that expire within DURATION (90d, 720h, 1d12h)" },
      { "dry-run", help = "write nothing; list the files that would be written" },
    }),
    examples = { "kboot certs renew all", "kboot certs renew apiserver --config kubeadm.yaml",
                 "kboot certs renew all --expiring-within 90d" } })
  local all = false
  for _, n in ipairs(pos) do if n == "all" then all = true end end
  if all and #pos > 1 then cli.usage_error(name, "give NAME... or all, not both") end
  local within
  if opts.expiring_within then
    local why
    within, why = lc.parse_duration(opts.expiring_within)
    if not within then cli.usage_error(name, "invalid --expiring-within %q: %s", opts.expiring_within, why) end
  end
  local ctx = setup(name, opts, { existing = true })
  for _, n in ipairs(pos) do
    if n ~= "all" and not lc.item(ctx, n) then
      local names = {}
      for _, it in ipairs(lc.items(ctx)) do names[#names + 1] = it.name end
      local known = lc.item({ cluster = { etcd = {} } }, n) -- a name of a cluster with local etcd
      cli.usage_error(name, "unknown certificate %q%s; want one of %s, or all", n,
        known and " (this cluster's etcd is external)" or "", table.concat(names, ", "))
    end
  end
  if opts.dry_run then fs.set_dry_run(true); ctx.dry_run = true end
  local algorithm = ctx.config_given and require("kboot.certs_table").algorithm(ctx) or nil
  local plan = batched(ctx, function()
    local p = lc.plan_renew(ctx, pos, { within = within, algorithm = algorithm })
    lc.renew(ctx, p)
    return p
  end, { lock = true })
  local out = io.stdout
  for _, m in ipairs(plan.missing) do out:write(("MISSING! %s\n"):format(m.long)) end
  for _, p in ipairs(plan.renew) do out:write(("%s %s\n"):format(p.item.long, ctx.dry_run and "would be renewed" or "renewed")) end
  for _, l in ipairs(plan.left) do
    out:write(("%s: %s left, more than %s: not renewed\n"):format(l.item.name, lc.short_duration(l.residual), opts.expiring_within))
  end
  if ctx.dry_run then dry_run_report(name) end
  local last = lc.restart_line(plan.renew)
  if #plan.renew == 0 and within then
    last = ("Nothing was renewed: no certificate expires within %s."):format(opts.expiring_within)
  end
  out:write("\n", last, "\n")
end

local function certificate_key(args)
  cli.parse(args, { name = "certs certificate-key", usage = "kboot certs certificate-key",
    summary = "Print a new random certificate key (32 bytes as 64 hex characters) for kboot init --upload-certs "
      .. "--certificate-key and kboot join --control-plane --certificate-key.", max_args = 0 })
  io.stdout:write(require("kboot.crypto").certificate_key(), "\n")
end

local function generate_csr(args)
  local name = "certs generate-csr"
  local opts = cli.parse(args, { name = name, usage = "kboot certs generate-csr [options]",
    summary = "Write a key and a CSR for every certificate of the control plane (under --cert-dir) and a partial "
      .. "kubeconfig (client-key-data only) with a NAME.conf.csr for each kubeconfig (under --kubeconfig-dir), for an "
      .. "external CA to sign (kubeadm's External CA mode). Put each signed certificate beside its key as .crt; in a "
      .. "kubeconfig, add client-certificate-data and certificate-authority-data. Nothing is written if any of these "
      .. "files exists.",
    options = common({ { "dry-run", help = "write nothing; list the files that would be written" } }), max_args = 0,
    examples = { "kboot certs generate-csr --kubeconfig-dir /tmp/etc-k8s --cert-dir /tmp/etc-k8s/pki" } })
  local ctx = setup(name, opts, { host = true })
  if opts.dry_run then fs.set_dry_run(true); ctx.dry_run = true end
  local lines = batched(ctx, function() return lc.generate_csr(ctx, lc.plan_csr(ctx)) end)
  io.stdout:write(table.concat(lines, "\n"), "\n")
  if ctx.dry_run then dry_run_report(name) end
end

local sub = table.remove(argv, 1)
if sub == "check-expiration" then return check_expiration(argv) end
if sub == "renew" then return renew(argv) end
if sub == "certificate-key" then return certificate_key(argv) end
if sub == "generate-csr" then return generate_csr(argv) end
cli.group_help(top, sub)
cli.usage_error("certs", "unknown command %q", sub)

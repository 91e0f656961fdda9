--- manage bootstrap tokens (kubeadm token create|list|delete|generate)
local cli = require("kboot.cli")
local log = require("kboot.log")
local fs = require("kboot.fs")
local crypto = require("kboot.crypto")
local tokens = require("kboot.tokens")

local argv = { ... }
local ADMIN = "/etc/kubernetes/admin.conf"

local commands = {
  { "create [TOKEN]", "create a bootstrap token on the cluster and print it (or the join command)" },
  { "list", "list bootstrap tokens: TOKEN TTL EXPIRES USAGES DESCRIPTION EXTRA GROUPS" },
  { "delete ID|TOKEN...", "delete bootstrap tokens by token ID or whole token" },
  { "generate", "print a random token of the form [a-z0-9]{6}.[a-z0-9]{16}; nothing is sent" },
}
local top = { name = "token", usage = "kboot token COMMAND [options]", commands = commands,
              summary = "Manage bootstrap tokens, which let new nodes join the cluster (kubeadm token)." }

local common = {
  { "kubeconfig", arg = "FILE", default = ADMIN, help = "kubeconfig to talk to the cluster (read under --root)" },
  { "root", arg = "DIR", help = "treat DIR as the file system root (a sandbox)" },
  { "dry-run", help = "send nothing; print the objects that would be sent" },
}
local function with_common(list)
  local out = {}
  for _, o in ipairs(list) do out[#out + 1] = o end
  for _, o in ipairs(common) do out[#out + 1] = o end
  return out
end

-- kubeconfig table and API client; everything is checked before this, so bad input sends nothing.
-- need_kubeconfig false: a dry run that reads nothing of the kubeconfig goes on without one.
-- err as one line naming the kubeconfig once (kboot.kubeconfig's own errors already name it)
local function about(path, err)
  local msg = tostring(err)
  return msg:find(path, 1, true) and msg or (path .. ": " .. msg)
end

local function connect(name, opts, need_kubeconfig)
  if opts.root then
    local ok, err = fs.set_root(opts.root)
    if not ok then cli.usage_error(name, "--root %s: %s", opts.root, tostring(err)) end
  end
  -- kboot.fs takes absolute paths only; a relative --kubeconfig is relative to the working directory
  opts.kubeconfig = cli.path(name, "--kubeconfig", opts.kubeconfig, true)
  local kc, err = require("kboot.kubeconfig").load(opts.kubeconfig)
  if not kc and opts.dry_run and need_kubeconfig == false then
    log.debug("token", "dry run without %s (%s): nothing is read from or sent to a cluster", opts.kubeconfig, tostring(err))
  elseif not kc then
    cli.fail("%s", tostring(err))
  end
  local okk, kube = pcall(require, "kboot.kube")
  if not okk then cli.fail("the token commands need kboot.kube, which is not in this build") end
  local k, kerr = kube.new(kc, { dry_run = opts.dry_run == true })
  if not k then cli.fail("%s", about(opts.kubeconfig, kerr)) end
  return k, kc, kube
end

-- Sign cluster-info for a new token at once, as the controller-manager's bootstrap signer will a
-- few seconds later, so a join can start the moment the token exists. The token works without it:
-- a failure here is a warning.
local function sign_cluster_info(k, kube, t)
  if not tokens.can_sign(t) then return end
  local cm, err = k:get("v1", "ConfigMap", "kube-public", "cluster-info")
  if k.dry_run and kube.not_found(err) then cm, err = nil, nil end
  local ids
  if cm then ids, err = require("kboot.online.bootstrap_token").sign_cluster_info(k, cm, { t }) end
  if err then
    io.stderr:write(("kboot: warning: could not sign cluster-info for the new token (the controller-manager's "
      .. "bootstrap signer will): %s\n"):format(tostring(err)))
  elseif ids and #ids > 0 then
    log.debug("token", "Signed cluster-info for token %s", ids[1])
  end
end

local function create(args)
  local name = "token create"
  local opts, pos = cli.parse(args, { name = name, usage = "kboot token create [TOKEN] [options]",
    summary = "Create a bootstrap token Secret in kube-system and print the token. TOKEN is generated when not given.",
    options = with_common({
      { "ttl", arg = "DURATION", default = "24h0m0s", help = "lifetime, e.g. 2h, 1h30m; 0 never expires" },
      { "usages", arg = "LIST", list = true, default = { "signing", "authentication" }, help = "signing, authentication (default both)" },
      { "groups", arg = "LIST", list = true, default = { tokens.DEFAULT_GROUP }, help = "extra groups, system:bootstrappers:... (default " .. tokens.DEFAULT_GROUP .. ")" },
      { "description", arg = "TEXT", help = "human-readable note stored with the token" },
      { "print-join-command", help = "print the whole join command instead of only the token" },
      { "certificate-key", arg = "HEX", help = "with --print-join-command: print the control-plane join command with this key" },
    }), max_args = 1,
    examples = { "kboot token create", "kboot token create --ttl 2h --description ci --print-join-command",
                 "kboot token create abcdef.0123456789abcdef --ttl 0" } })
  local token = pos[1] or crypto.token()
  local ok, why = tokens.parse(token)
  if not ok then cli.usage_error(name, "invalid TOKEN: %s", why) end
  local ttl, terr = tokens.ttl(opts.ttl)
  if not ttl then cli.usage_error(name, "invalid --ttl: %s", terr) end
  if #opts.usages == 0 then opts.usages = { "signing", "authentication" } end -- kubeadm defaults an empty list too
  ok, why = tokens.check_usages(opts.usages)
  if not ok then cli.usage_error(name, "invalid --usages: %s", why) end
  ok, why = tokens.check_groups(opts.groups, opts.usages)
  if not ok and not opts._given.groups then
    -- kubeadm's check fails on its own default here, which the user never typed: name it
    cli.usage_error(name, "--usages %s has no authentication, which the default --groups %s needs (kubeadm refuses it too): "
      .. "add authentication, or give --groups '' for a token that only signs", table.concat(opts.usages, ","), tokens.DEFAULT_GROUP)
  end
  if not ok then cli.usage_error(name, "invalid --groups %s: %s", table.concat(opts.groups, ","), why) end
  if opts.certificate_key then
    local key = crypto.unhex(opts.certificate_key)
    if not key or #key ~= 32 then cli.usage_error(name, "invalid --certificate-key: want 64 hex characters") end
    if not opts.print_join_command then cli.usage_error(name, "cannot use --certificate-key without --print-join-command") end
  end
  local t = { token = token, ttl = ttl, usages = opts.usages, groups = opts.groups, description = opts.description }

  -- a dry run prints the Secret as kboot.kube's dry run "sends" it: a kubeconfig is needed only
  -- for the join command's endpoint and CA pin
  local k, kc, kube = connect(name, opts, opts.print_join_command == true)
  local join
  if opts.print_join_command then
    local p, perr = tokens.join_params(kc)
    if not p then cli.fail("%s", about(opts.kubeconfig, perr)) end
    join = tokens.join_command{ endpoint = p.endpoint, token = token, hashes = p.hashes,
                                control_plane = opts.certificate_key ~= nil, certificate_key = opts.certificate_key }
    join = join:gsub(" \\\n\t", " ")
  end
  local _, err = k:create(tokens.secret(t, os.time()))
  if err then
    if kube.already_exists and kube.already_exists(err) or err.status == 409 then
      cli.fail("a token with id %q already exists", (tokens.parse(token)))
    end
    cli.fail("%s", tostring(err))
  end
  sign_cluster_info(k, kube, t)
  io.stdout:write((join or token), "\n")
end

local function list(args)
  local name = "token list"
  local opts = cli.parse(args, { name = name, usage = "kboot token list [options]",
    summary = "List the bootstrap tokens in kube-system, as kubeadm token list does.",
    options = common, max_args = 0 })
  local k = connect(name, opts)
  local items, err = k:list("v1", "Secret", tokens.NAMESPACE, { field_selector = "type=" .. tokens.SECRET_TYPE })
  if not items then cli.fail("%s", tostring(err)) end
  local out = {}
  for _, s in ipairs(items) do
    local p, why = tokens.from_secret(s)
    if p then out[#out + 1] = p else log.warn("token", "skipping %s", why) end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  io.stdout:write(tokens.list_table(out, os.time()))
end

local function delete(args)
  local name = "token delete"
  local opts, pos = cli.parse(args, { name = name, usage = "kboot token delete ID|TOKEN... [options]",
    summary = "Delete bootstrap tokens; each argument is a token ID ([a-z0-9]{6}) or a whole token.",
    options = common, min_args = 1, args = "ID|TOKEN..." })
  local ids = {}
  for i, a in ipairs(pos) do
    local id, why = tokens.id_of(a)
    if not id then cli.usage_error(name, "argument %d: %s", i, why) end
    ids[#ids + 1] = id
  end
  local k, _, kube = connect(name, opts)
  for _, id in ipairs(ids) do
    -- kubeadm's wording; a missing token is an error (a typo should not look like success)
    local _, gerr = k:get("v1", "Secret", tokens.NAMESPACE, tokens.secret_name(id))
    if gerr and kube.not_found(gerr) and not opts.dry_run then cli.fail("bootstrap token %q not found", id) end
    local ok, err = k:delete("v1", "Secret", tokens.NAMESPACE, tokens.secret_name(id))
    if not ok then cli.fail("failed to delete bootstrap token %q: %s", id, tostring(err)) end
    -- its cluster-info signature goes too (the bootstrap signer would remove it a little later)
    local cm = k:get("v1", "ConfigMap", "kube-public", "cluster-info")
    if cm and cm.data and cm.data[tokens.JWS_PREFIX .. id] then
      local _, perr = k:patch("v1", "ConfigMap", "kube-public", "cluster-info",
                              { data = { [tokens.JWS_PREFIX .. id] = require("cjson").null } }, "merge")
      if perr then io.stderr:write(("kboot: warning: could not remove the token's signature from cluster-info: %s\n"):format(tostring(perr))) end
    end
    io.stdout:write(("bootstrap token %q deleted%s\n"):format(id, opts.dry_run and " (dry run: nothing sent)" or ""))
  end
end

local function generate(args)
  cli.parse(args, { name = "token generate", usage = "kboot token generate",
    summary = "Print a new random bootstrap token; nothing is sent to the cluster.", max_args = 0 })
  io.stdout:write(crypto.token(), "\n")
end

local sub = table.remove(argv, 1)
if sub == "create" then return create(argv) end
if sub == "list" then return list(argv) end
if sub == "delete" then return delete(argv) end
if sub == "generate" then return generate(argv) end
cli.group_help(top, sub)
cli.usage_error("token", "unknown command %q", sub)

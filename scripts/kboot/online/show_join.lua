-- Phase show-join-command: how to use the cluster and the join commands, with the CA pin taken
-- from admin.conf (read through ctx.fs) as kubeadm does; the control-plane command only when the
-- certificates were uploaded.
local tokens = require("kboot.tokens")

local kerror = require("kboot.error")

local M = {}

local function log(ctx) return ctx.log or require("kboot.log") end

-- text(ctx) -> the closing message, or nil, err
function M.text(ctx)
  local kubeconfig = require("kboot.kubeconfig")
  local kc, err = kubeconfig.load("/etc/kubernetes/admin.conf")
  if not kc then return nil, err end
  local admin = ctx.fs.path("/etc/kubernetes/admin.conf")
  local p, perr = tokens.join_params(kc)
  if not p then return nil, admin .. ": " .. tostring(perr) end
  -- --skip-token-print / --skip-certificate-key-print: kubeadm's placeholder instead of the secret
  local withheld = "<value withheld>"
  local token = ctx.skip_token_print and withheld or ctx.token or "<no bootstrap token: run 'kboot token create'>"
  local base = { endpoint = p.endpoint, token = token, hashes = p.hashes }
  local out = {
    "Your Kubernetes control-plane has initialized successfully!", "",
    "To start using your cluster, you need to run the following as a regular user:", "",
    "  mkdir -p $HOME/.kube",
    "  sudo cp -i " .. admin .. " $HOME/.kube/config",
    "  sudo chown $(id -u):$(id -g) $HOME/.kube/config", "",
    "Alternatively, if you are the root user, you can run:", "",
    "  export KUBECONFIG=" .. admin, "",
    "You should now deploy a pod network to the cluster.",
    'Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:',
    "  https://kubernetes.io/docs/concepts/cluster-administration/addons/", "",
  }
  local function add(s) out[#out + 1] = s end
  if ctx.upload_certs and ctx.certificate_key then
    add("You can now join any number of control-plane nodes running the following command on each as root:")
    add("")
    base.control_plane = true
    base.certificate_key = ctx.skip_certificate_key_print and withheld or ctx.certificate_key
    add("  " .. tokens.join_command(base):gsub("\n\t", "\n\t  "))
    base.control_plane, base.certificate_key = nil, nil
    add("")
    add("Please note that the certificate-key gives access to cluster sensitive data, keep it secret!")
    add("As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use")
    add('"kboot init phase upload-certs --upload-certs" to reload certs afterward.')
  else
    add("You can now join any number of control-plane nodes by copying certificate authorities")
    add("and service account keys on each node and then running the following as root:")
    add("")
    base.control_plane = true
    add("  " .. tokens.join_command(base):gsub("\n\t", "\n\t  "))
    base.control_plane = nil
  end
  add("")
  add("Then you can join any number of worker nodes by running the following on each as root:")
  add("")
  add(tokens.join_command(base))
  add("")
  add("(the flags are kubeadm join's: `kubeadm join` with the same arguments works too)")
  return table.concat(out, "\n") .. "\n"
end

-- A token of the cluster's that a node can join with (authentication and signing, not expiring in
-- the next minute), asked once with a short timeout: a show-join-command run alone needs no API
-- server, so one that does not answer is said at once instead of after a minute of retries.
-- -> token | nil, why
local function cluster_token(ctx)
  local kube = require("kboot.kube")
  local kc, err = require("kboot.kubeconfig").load("/etc/kubernetes/admin.conf")
  local k
  if kc then k, err = kube.new(kc, { retries = 0, timeout = 5, connect_timeout = 3 }) end
  if not k then return nil, tostring(err) end
  local items, lerr = k:list("v1", "Secret", tokens.NAMESPACE, { field_selector = "type=" .. tokens.SECRET_TYPE })
  k:close()
  if not items then return nil, ("cannot list the bootstrap tokens: %s"):format(tostring(lerr)) end
  local now = ctx.now or os.time()
  local found = {}
  for _, sec in ipairs(items) do
    local t = tokens.from_secret(sec)
    if t and (t.expires == nil or t.expires > now + 60) then
      local u = table.concat(t.usages, ",")
      if u:find("authentication", 1, true) and u:find("signing", 1, true) then found[#found + 1] = t end
    end
  end
  -- the one that lasts longest (no expiry first)
  table.sort(found, function(a, b) return (a.expires or math.huge) > (b.expires or math.huge) end)
  if not found[1] then return nil, "the cluster has no bootstrap token a node can join with" end
  return found[1].token
end

-- The token of the commands: this run's (given, or made and sent by its bootstrap-token phase),
-- else one of the cluster's; without either, a placeholder that says what to run.
local function resolve_token(ctx)
  if ctx.skip_token_print or ctx.dry_run then return end
  local ran = ctx.phase_enabled and ctx.phase_enabled("bootstrap-token")
  if ctx.token and (not ctx.token_generated or ran) then return end
  local tok, why = cluster_token(ctx)
  if tok then
    log(ctx).info("show-join-command", "Using the cluster's bootstrap token %s", (tokens.parse(tok)))
  else
    log(ctx).warn("show-join-command", "%s: the commands below carry a placeholder for the token (see 'kboot token list', 'kboot token create')", why)
  end
  ctx.token = tok
end

-- run(ctx) -> true | nil, kboot.error
function M.run(ctx)
  resolve_token(ctx)
  local text, err = M.text(ctx)
  if not text then return nil, kerror.wrap("show-join-command", err) end
  io.stdout:write("\n", text)
  return true
end

function M.phases()
  -- no_api: it needs admin.conf's server and CA, not a connected client (see resolve_token)
  return { { name = "show-join-command", help = "Show the join command for control-plane and worker nodes", run = M.run, no_api = true } }
end

return M

-- Phase show-join-command: how to use the cluster and the join commands, with the CA pin taken
-- from admin.conf (read through ctx.fs) as kubeadm does; the control-plane command only when the
-- certificates were uploaded.
local tokens = require("kboot.tokens")

local kerror = require("kboot.error")

local M = {}

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

-- run(ctx) -> true | nil, kboot.error
function M.run(ctx)
  local text, err = M.text(ctx)
  if not text then return nil, kerror.wrap("show-join-command", err) end
  io.stdout:write("\n", text)
  return true
end

function M.phases()
  return { { name = "show-join-command", help = "Show the join command for control-plane and worker nodes", run = M.run } }
end

return M

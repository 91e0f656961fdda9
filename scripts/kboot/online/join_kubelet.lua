-- kubeadm join's kubelet-start (and kubelet-wait-bootstrap), kboot's way: the cluster's CA at
-- caCertPath, no clash with a Ready Node of the same name, the kubelet's files (config.yaml from
-- the cluster's kubelet-config, kubeadm-flags.env) through the kubelet component, then the
-- kubelet's client certificate: minted by kboot (kboot.tls_bootstrap: the join finishes and says
-- why when it cannot, whether or not a kubelet runs here) or, with --kubelet-bootstrap, left to
-- the kubelet through bootstrap-kubelet.conf as kubeadm does. Then the kubelet is (re)started.
local kerror = require("kboot.error")
local kubeconfig = require("kboot.kubeconfig")
local tls = require("kboot.tls_bootstrap")

local M = {}

M.BOOTSTRAP_CONF = "/etc/kubernetes/bootstrap-kubelet.conf"
local P = "kubelet-start"

local function fail(fmt, ...) return kerror.new(P, fmt:format(...)) end

local function ready(node)
  for _, c in ipairs((node.status or {}).conditions or {}) do
    if c.type == "Ready" and c.status == "True" then return true end
  end
  return false
end

-- A Ready Node of this name that is not this node (this node has a current kubelet.conf for it):
-- joining would take over another machine's registration.
local function name_clash(ctx, b)
  local name = ctx.node.name
  local node, err = b.read:get("v1", "Node", nil, name)
  if not node then
    if require("kboot.kube").not_found(err) then return nil end
    return fail("cannot check for an existing Node %q: %s", name, tostring(err))
  end
  if not ready(node) or tls.current(ctx, b.server, b.ca_pem) then return nil end
  return fail("a Node named %q is already Ready in the cluster: give this machine another --node-name, "
    .. "or delete the old registration (kubectl delete node %s) if it was this machine's", name, name)
end

local function write_ca(ctx, b)
  local path = ctx.join.caCertPath
  if ctx.fs.exists(path) then return true end
  local ok, err = ctx.fs.write(path, b.ca_pem, "0644", { mkdir = true, dir_mode = 493 })
  if not ok then return nil, fail("cannot write %s: %s", ctx.fs.path(path), tostring(err)) end
  return true
end

local function bootstrap_conf(ctx, b)
  local t = kubeconfig.build{ server = b.server, ca_pem = b.ca_pem, user = "tls-bootstrap-token-user",
                              token = ctx.join.discovery.tlsBootstrapToken }
  local ok, err = kubeconfig.write(M.BOOTSTRAP_CONF, t)
  if not ok then return nil, fail("cannot write %s: %s", ctx.fs.path(M.BOOTSTRAP_CONF), tostring(err)) end
  ctx.log.info(P, "%s %s (the kubelet requests its own certificate with it)", ctx.dry_run and "dry run: would write" or "Wrote", ctx.fs.path(M.BOOTSTRAP_CONF))
  return true
end

-- run(ctx) -> true | nil, kboot.error. ctx.cache.bootstrap (the flow's connect): { kube = the
-- bootstrap-token client, read = a client for reads even in a dry run, server =, ca_pem = }.
function M.run(ctx)
  local b = ctx.cache.bootstrap
  if ctx.role == "control-plane" then
    -- a control-plane node's kubelet talks to its own API server (kubeadm's
    -- ControlPlaneKubeletLocalMode); the certificate request still goes through the join endpoint
    b = setmetatable({ server = require("kboot.kubeconfigs").local_endpoint(ctx) }, { __index = b })
  end
  local err = name_clash(ctx, b)
  if err then return nil, err end
  local kubelet = require("kboot.components.kubelet")
  local a, ok
  a, err = require("kboot.component").render(ctx, kubelet)
  if not a then return nil, err end
  -- the certificate first: a CSR that is denied or never approved leaves this node as it was
  if not ctx.opts.kubelet_bootstrap then
    ok, err = tls.mint(ctx, b)
    if not ok then return nil, err end
  end
  ok, err = write_ca(ctx, b)
  if not ok then return nil, err end
  ok, err = kubelet.save(ctx, a)
  if not ok then return nil, err end
  if ctx.opts.kubelet_bootstrap then
    ok, err = bootstrap_conf(ctx, b)
    if not ok then return nil, err end
  end
  ok, err = kubelet.start(ctx)
  if ok == nil then return nil, err end
  return true
end

-- wait_bootstrap(ctx) (--kubelet-bootstrap): the kubelet's own kubelet.conf, then
-- bootstrap-kubelet.conf removed, as kubeadm's kubelet-start does.
function M.wait_bootstrap(ctx)
  local fs, time = ctx.fs, require("kboot.time")
  if ctx.dry_run then
    ctx.log.info("kubelet-wait-bootstrap", "dry run: would wait for the kubelet to write %s", fs.path(tls.KUBELET_CONF))
    return true
  end
  local deadline = time.now() + ctx.timeouts.tlsBootstrap
  ctx.log.info("kubelet-wait-bootstrap", "Waiting for the kubelet to perform the TLS Bootstrap (up to %s)",
    time.format_duration(ctx.timeouts.tlsBootstrap))
  while not fs.exists(tls.KUBELET_CONF) do
    if time.now() >= deadline then
      return nil, kerror.new("kubelet-wait-bootstrap", ("the kubelet did not write %s within %s: check 'journalctl -xeu kubelet' "
        .. "(is it running, and does it read %s?)"):format(fs.path(tls.KUBELET_CONF),
        time.format_duration(ctx.timeouts.tlsBootstrap), fs.path(M.BOOTSTRAP_CONF)))
    end
    time.sleep(1)
  end
  local ok, err = fs.remove(M.BOOTSTRAP_CONF)
  if not ok then return nil, kerror.new("kubelet-wait-bootstrap", tostring(err)) end
  return true
end

return M

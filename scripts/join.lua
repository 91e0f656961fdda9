--- join this machine to a Kubernetes cluster (kubeadm join compatible)
local cli = require("kboot.cli")
local log = require("kboot.log")
local fs = require("kboot.fs")
local phases = require("kboot.phases")
local context = require("kboot.context")
local runner = require("kboot.runner")
local join_config = require("kboot.join_config")

local argv = { ... }

-- kubeadm join's flags (same names), plus kboot's --root, --kubelet-bootstrap and
-- --use-cluster-info-endpoint.
local options = {
  { "config", arg = "FILE", help = "kubeadm configuration file (JoinConfiguration, v1beta3 or v1beta4)" },
  { "token", arg = "TOKEN", help = "bootstrap token for both discovery and TLS bootstrap" },
  { "discovery-token", arg = "TOKEN", help = "bootstrap token that proves cluster-info (default: --token)" },
  { "discovery-token-ca-cert-hash", arg = "sha256:HEX", list = true,
    help = "pin of the cluster CA's public key; repeatable, any one may match" },
  { "discovery-token-unsafe-skip-ca-verification", help = "trust cluster-info's CA without a pin (insecure)" },
  { "discovery-file", arg = "FILE|URL", help = "kubeconfig (path or https URL) naming the cluster and its CA, instead of token discovery" },
  { "tls-bootstrap-token", arg = "TOKEN", help = "bootstrap token the node's certificate request is made with (default: --token)" },
  { "node-name", arg = "NAME", help = "node name (default: the host name)" },
  { "cri-socket", arg = "PATH", help = "container runtime socket (default unix:///var/run/containerd/containerd.sock)" },
  { "ignore-preflight-errors", arg = "LIST", list = true, help = "preflight checks to report as warnings, or 'all'" },
  { "skip-phases", arg = "LIST", list = true, help = "phases to skip" },
  { "patches", arg = "DIR", help = "directory of kubeadm patch files TARGET[SUFFIX][+PATCHTYPE].{yaml,json}, applied to what this node writes (see docs/customising.md)" },
  { "control-plane", help = "join as a control-plane node" },
  { "certificate-key", arg = "HEX", help = "key that decrypts the control-plane certificates (with --control-plane)" },
  { "apiserver-advertise-address", arg = "IP", help = "this control-plane node's API server address (with --control-plane)" },
  { "apiserver-bind-port", arg = "PORT", help = "this control-plane node's API server port (with --control-plane; default 6443)" },
  { "use-cluster-info-endpoint", help = "write cluster-info's server into the kubeconfigs (kubeadm's choice), not the endpoint given" },
  { "kubelet-bootstrap", help = "let the kubelet request its certificate (bootstrap-kubelet.conf), as kubeadm does" },
  { "dry-run", help = "write and send nothing; print every file and object that would be" },
  { "root", arg = "DIR", help = "treat DIR as the file system root (a sandbox: no root user needed)" },
}

local flow = require("kboot.flows.join")
local list = phases.expand(flow.phases)
local only = runner.phase_argv(argv, "join", flow, options)
local name = only and "join phase" or "join"

local opts, pos = cli.parse(argv, {
  name = name,
  usage = only and ("kboot join phase %s [ENDPOINT] [options]"):format(only) or "kboot join [ENDPOINT] [options]",
  summary = only and phases.summary(list, only, flow.parents)
    or "Join this machine to a cluster, writing what kubeadm join writes. ENDPOINT (host:port) is the "
       .. "API server to join through (a VIP or load balancer is fine): kboot writes it into this node's kubeconfigs.",
  commands = runner.commands(flow, only), options = options, max_args = 1, args = "[ENDPOINT]",
  examples = not only and {
    "kboot join 10.0.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:<hex>",
    "kboot join --discovery-file /root/discovery.conf --tls-bootstrap-token abcdef.0123456789abcdef",
    "kboot join --config join.yaml --dry-run" } or nil,
})
opts.endpoint = pos[1]
if opts.endpoint then opts._given.endpoint = true end

runner.set_root(name, opts)
local host = context.host_facts()
local parts, errs, warnings = join_config.load({ file = opts.config, flags = opts, host = host })
runner.config_result(parts, errs, warnings)
runner.check_ignored(name, parts.join.nodeRegistration.ignorePreflightErrors, opts.ignore_preflight_errors,
  "JoinConfiguration.nodeRegistration.ignorePreflightErrors")
if parts.join.discovery.bootstrapToken and parts.join.discovery.bootstrapToken.unsafeSkipCAVerification then
  log.warn("join", "the cluster CA will not be checked against a pin (--discovery-token-unsafe-skip-ca-verification): "
    .. "whoever answers for %s is trusted", parts.join.discovery.bootstrapToken.apiServerEndpoint)
end

if parts.join.dryRun then opts.dry_run = true end
if opts.dry_run then fs.set_dry_run(true) end

local selected, serr = phases.select(list, { only = only, skip = parts.join.skipPhases })
if not selected then cli.usage_error(name, "%s", serr) end

local ctx, perr = flow.prepare(context.new({ flow = "join", parts = parts, opts = opts, host = host, fs = fs, log = log }))
if not ctx then cli.fail("%s", tostring(perr)) end

-- discovery and the cluster's configuration first: they only read, so a join that cannot reach
-- or trust the cluster leaves this node exactly as it was
local cok, cerr = flow.connect(ctx)
if not cok then cli.fail("%s", phases.error_line({ phase = "discovery", msg = tostring(cerr) })) end
-- kubeadm's patches: read and tried on what this join renders (it knows the cluster's configuration
-- now) before anything is written
local pok, perr = require("kboot.patches").prepare(ctx, selected)
if not pok then cli.fail("%s", tostring(perr)) end
local lock = runner.start(ctx)
runner.run(ctx, selected, flow, lock)
runner.finish(ctx, lock, "join")
if not (only or ctx.dry_run) then
  log.info("join", "This node has joined the cluster as %s (%s); see it with 'kubectl get nodes' on a control-plane node",
    ctx.node.name, ctx.role)
end
runner.summary(ctx, "join")
return 0

--- set up a Kubernetes control-plane node (kubeadm init compatible)
local cli = require("kboot.cli")
local log = require("kboot.log")
local fs = require("kboot.fs")
local config = require("kboot.config")
local phases = require("kboot.phases")
local context = require("kboot.context")
local runner = require("kboot.runner")

local argv = { ... }

-- kubeadm init's flags (same names), plus kboot's --root.
local options = {
  { "config", arg = "FILE", help = "kubeadm configuration file (InitConfiguration, ClusterConfiguration, v1beta3 or v1beta4)" },
  { "apiserver-advertise-address", arg = "IP", help = "address the API server advertises (default: the default-route interface address)" },
  { "apiserver-bind-port", arg = "PORT", help = "port the API server binds to (default 6443)" },
  { "apiserver-cert-extra-sans", arg = "LIST", list = true, help = "extra SANs (IPs or DNS names) for the API server certificate" },
  { "cert-dir", arg = "DIR", help = "where certificates are stored (default /etc/kubernetes/pki)" },
  { "control-plane-endpoint", arg = "HOST[:PORT]", help = "stable address for all control-plane nodes (load balancer)" },
  { "kubernetes-version", arg = "VERSION", help = "Kubernetes version of the control plane (default " .. require("kboot.versions").default_version .. ")" },
  { "node-name", arg = "NAME", help = "node name (default: the host name)" },
  { "cri-socket", arg = "PATH", help = "container runtime socket (default unix:///var/run/containerd/containerd.sock)" },
  { "pod-network-cidr", arg = "CIDR", help = "pod network range; set it when the CNI plugin needs node CIDRs" },
  { "service-cidr", arg = "CIDR", help = "service IP range (default 10.96.0.0/12)" },
  { "service-dns-domain", arg = "DOMAIN", help = "service DNS domain (default cluster.local)" },
  { "image-repository", arg = "REPO", help = "registry for control-plane images (default registry.k8s.io)" },
  { "skip-phases", arg = "LIST", list = true, help = "phases to skip (a parent such as certs skips all its children)" },
  { "patches", arg = "DIR", help = "directory of kubeadm patch files TARGET[SUFFIX][+PATCHTYPE].{yaml,json}, applied to what this node writes (see docs/customising.md)" },
  { "ignore-preflight-errors", arg = "LIST", list = true, help = "preflight checks to report as warnings, or 'all'" },
  { "dry-run", help = "write nothing; print every file that would be written" },
  { "token", arg = "TOKEN", help = "bootstrap token [a-z0-9]{6}.[a-z0-9]{16} (used by the online phases)" },
  { "token-ttl", arg = "DURATION", help = "bootstrap token lifetime (default 24h0m0s)" },
  { "upload-certs", help = "upload control-plane certificates to the kubeadm-certs Secret (online phase)" },
  { "certificate-key", arg = "HEX", help = "key (64 hex characters) that encrypts the uploaded certificates" },
  { "kube-proxy-server", arg = "URL", help = "API server URL in kube-proxy's kubeconfig.conf (default: the control-plane endpoint)" },
  { "skip-token-print", help = "do not print the bootstrap token in the join command" },
  { "root", arg = "DIR", help = "treat DIR as the file system root (a sandbox: no root user needed)" },
  { "offline", help = "run only the phases that need no API server: write this node's files and stop" },
}

local flow = require("kboot.flows.init")
local list = phases.expand(flow.phases)
local only = runner.phase_argv(argv, "init", flow, options)

local opts = cli.parse(argv, {
  name = only and "init phase" or "init",
  usage = only and ("kboot init phase %s [options]"):format(only) or "kboot init [options]",
  summary = only and phases.summary(list, only, flow.parents)
    or "Set up this machine as the first Kubernetes control-plane node, writing what kubeadm init writes.",
  commands = runner.commands(flow, only), options = options, max_args = 0,
  examples = not only and { "kboot init --config kubeadm.yaml",
               "kboot init --root /tmp/node --apiserver-advertise-address 127.0.0.1 --ignore-preflight-errors=all",
               "kboot init phase certs --config kubeadm.yaml", "kboot init --dry-run" } or nil,
})

-- file system: the root prefix first, then dry run
runner.set_root("init", opts)
if opts.kube_proxy_server then
  local ok, err = require("kboot.components.kube_proxy").check_server(opts.kube_proxy_server)
  if not ok then cli.usage_error("init", "--kube-proxy-server %s", err) end
end
-- the config file is the admin's, on this host, and so are the host facts (never under --root)
local host = context.host_facts()
local parts, errs, warnings = config.load({ file = opts.config, flags = opts, host = host })
runner.config_result(parts, errs, warnings)
runner.check_ignored(only and "init phase" or "init", parts.init.nodeRegistration.ignorePreflightErrors,
  opts.ignore_preflight_errors, "InitConfiguration.nodeRegistration.ignorePreflightErrors")

-- InitConfiguration.dryRun (v1beta4) means the same as --dry-run
if parts.init.dryRun then opts.dry_run = true end
if opts.dry_run then fs.set_dry_run(true) end

local selected, serr = phases.select(list, { only = only, skip = parts.init.skipPhases, offline = opts.offline })
if not selected then cli.usage_error(only and "init phase" or "init", "%s", serr) end

local ctx = flow.prepare(context.new({ flow = "init", parts = parts, opts = opts, host = host, fs = fs, log = log }))

-- kubeadm's patches: read and tried on what this run renders before anything is written
local pok, perr = require("kboot.patches").prepare(ctx, selected)
if not pok then cli.fail("%s", tostring(perr)) end

local lock = runner.start(ctx)
log.info("init", "Using Kubernetes version: %s", ctx.cluster.kubernetesVersion)
runner.run(ctx, selected, flow, lock)
runner.finish(ctx, lock, "init")
if not (only or ctx.dry_run or ctx.phase_enabled("show-join-command")) then
  -- the paths the admin acts on: under --root, the sandbox's
  if ctx.phase_enabled("wait-control-plane") then
    log.info("init", "Your Kubernetes control-plane has initialized; use %s with kubectl", fs.path("/etc/kubernetes/admin.conf"))
  else
    log.info("init", "This node's files are written: certificates in %s, kubeconfigs in %s, static Pod manifests in %s",
      fs.path(ctx.cluster.certificatesDir), fs.path("/etc/kubernetes"), fs.path("/etc/kubernetes/manifests"))
    log.info("init", "Once the kubelet runs these manifests, `kboot init` without --offline (or with --skip-phases) finishes the online phases")
  end
end
runner.summary(ctx, "init")
return 0

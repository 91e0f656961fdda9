--- revert what kboot init or kboot join did to this node (kubeadm reset compatible)
local cli = require("kboot.cli")
local log = require("kboot.log")
local fs = require("kboot.fs")
local phases = require("kboot.phases")
local context = require("kboot.context")
local runner = require("kboot.runner")
local reset_config = require("kboot.reset_config")

local argv = { ... }

-- kubeadm reset's flags (same names), plus kboot's --root.
local options = {
  { "config", arg = "FILE", help = "kubeadm configuration file (ResetConfiguration v1beta4; a ClusterConfiguration in it says where the certificates and etcd data are)" },
  { "cert-dir", arg = "DIR", help = "the certificates directory to empty (default: what this node's manifests and kubelet config name, else /etc/kubernetes/pki)" },
  { "cri-socket", arg = "PATH", help = "container runtime socket crictl removes the pods through (default: the kubelet's, else the one found)" },
  { "force", short = "f", help = "reset without asking for confirmation" },
  { "ignore-preflight-errors", arg = "LIST", list = true, help = "preflight checks to report as warnings (IsPrivilegedUser), or 'all'" },
  { "skip-phases", arg = "LIST", list = true, help = "phases to skip" },
  { "kubeconfig", arg = "FILE", help = "kubeconfig named in the `kubectl delete node` line printed at the end (kboot reset itself makes no API call)" },
  { "cleanup-tmp-dir", help = "also empty /etc/kubernetes/tmp" },
  { "dry-run", help = "remove, unmount, stop and send nothing; print every path and call it would" },
  { "root", arg = "DIR", help = "treat DIR as the file system root (a sandbox: nothing of the host is touched)" },
}

local flow = require("kboot.flows.reset")
local list = phases.expand(flow.phases)
local only = runner.phase_argv(argv, "reset", flow, options)
local name = only and "reset phase" or "reset"

local opts = cli.parse(argv, {
  name = name,
  usage = only and ("kboot reset phase %s [options]"):format(only) or "kboot reset [options]",
  summary = only and phases.summary(list, only, flow.parents)
    or "Revert what kboot init or kboot join (or kubeadm's) did to this node: its etcd member leaves the cluster, "
       .. "the kubelet stops, its mounts, pods, certificates, kubeconfigs, manifests and kubelet files go. "
       .. "Best effort: every step is tried, failures are listed at the end (exit 1).",
  commands = runner.commands(flow, only), options = options, max_args = 0,
  examples = not only and { "kboot reset", "kboot reset --force --cleanup-tmp-dir",
               "kboot reset --dry-run", "kboot reset --root /tmp/node -f", "kboot reset phase remove-etcd-member -f" } or nil,
})

runner.set_root(name, opts)
local parts, errs, warnings = reset_config.load({ file = opts.config, flags = opts })
runner.config_result(parts, errs, warnings)
runner.check_ignored(name, parts.reset.ignorePreflightErrors, opts.ignore_preflight_errors,
  "ResetConfiguration.ignorePreflightErrors")
if parts.reset.dryRun then opts.dry_run = true end
if opts.dry_run then fs.set_dry_run(true) end

local selected, serr = phases.select(list, { only = only, skip = parts.reset.skipPhases })
if not selected then cli.usage_error(name, "%s", serr) end

local role = fs.exists("/etc/kubernetes/manifests/kube-apiserver.yaml") and "control-plane" or "worker"
local ctx = context.new({ flow = "reset", parts = parts, opts = opts, fs = fs, log = log, role = role })

-- the question before anything, whichever phases run
local ok, why = require("kboot.reset.preflight").confirm(ctx)
if not ok then cli.fail("%s", tostring(why)) end

-- one kboot at a time on a node: the lock beside what it protects (a node with no
-- /etc/kubernetes has nothing of kboot's to protect, and reset does not create it)
local lock
if not ctx.dry_run and fs.exists("/etc/kubernetes") then lock = runner.lock() end
local function release()
  if not lock then return end
  fs.remove(runner.LOCK)
  lock:close()
end

flow.prepare(ctx, parts)
ctx.run_selected = selected
local failures, stopped = flow.run(ctx, selected)
if stopped then
  release()
  runner.summary(ctx, "reset", "debug")
  cli.fail("%s", phases.error_line(failures[1]))
end
release()
local n = flow.report(ctx, failures)
if n > 0 then
  runner.summary(ctx, "reset", "debug")
  cli.fail("reset: %d step(s) failed (listed above); everything else was done", n)
end
if not ctx.dry_run then log.info("reset", "This node is reset; `kboot init` or `kboot join` can set it up again") end
runner.summary(ctx, "reset")
return 0

-- The `kboot reset` flow as data: kubeadm reset's phases and names (kboot.phases runs them, best
-- effort), prepare (what the node's files say, read before anything goes; the guard every removal
-- passes through), and the report: what a dry run would remove and run, what reset leaves on the
-- node with the command that removes each, and every failure. It makes no API call: a node is
-- reset whether or not its cluster answers.
local node = require("kboot.reset.node")

local M = { name = "reset" }

M.phases = {
  { name = "preflight", help = "Run reset pre-flight checks",
    run = function(ctx) return require("kboot.reset.preflight").run(ctx) end },
  { name = "remove-etcd-member", help = "Remove a local etcd member",
    run = function(ctx) return require("kboot.reset.etcd_member").run(ctx) end },
  { name = "cleanup-node", help = "Run cleanup node",
    run = function(ctx) return require("kboot.reset.cleanup_node").run(ctx) end },
}
M.parents = {}

-- prepare(ctx, parts) -> ctx: ctx.reset_node (kboot.reset.node.facts, the directories checked
-- with sane_dir), a ctx.cluster of those facts (what the components' clean read), ctx.fs the
-- guard, and ctx.reset_call / ctx.reset_leave, which note a call a dry run would make and
-- something reset leaves.
function M.prepare(ctx, parts)
  local f = node.facts(ctx, parts and parts.cluster)
  f.cert_dir_ok, f.cert_dir_why = node.sane_dir(f.cert_dir)
  if f.etcd.kind == "local" then f.etcd.data_dir_ok, f.etcd.data_dir_why = node.sane_dir(f.etcd.data_dir) end
  ctx.reset_node = f
  local cluster = { certificatesDir = f.cert_dir, etcd = {} }
  if f.etcd.kind == "local" then cluster.etcd["local"] = { dataDir = f.etcd.data_dir }
  elseif f.etcd.kind == "external" then cluster.etcd.external = {} end
  ctx.cluster = cluster
  ctx.plan, ctx.left = {}, {}
  ctx.reset_call = function(text) ctx.plan[#ctx.plan + 1] = { call = text } end
  ctx.reset_leave = function(what, command) ctx.left[#ctx.left + 1] = { what = what, command = command } end

  local dirs = { node.MANIFESTS, node.KUBELET_DIR }
  if f.cert_dir_ok then dirs[#dirs + 1] = f.cert_dir end
  if f.etcd.data_dir_ok then dirs[#dirs + 1] = f.etcd.data_dir end
  if ctx.reset.cleanupTmpDir then dirs[#dirs + 1] = node.TMP_DIR end
  local files = {}
  for _, n in ipairs(node.KUBECONFIGS) do files[#files + 1] = "/etc/kubernetes/" .. n end
  ctx.fs = node.guard(ctx.fs, { dirs = dirs, files = files }, ctx.plan)
  ctx.log.info("reset", "This node: %s%s; certificates in %s (from %s); etcd: %s", tostring(f.node_name),
    f.control_plane and " (a control-plane node)" or "", ctx.fs.path(f.cert_dir), f.cert_dir_from,
    f.etcd.kind == "local" and ("a local member, data in " .. ctx.fs.path(f.etcd.data_dir)) or f.etcd.kind == "external"
      and "external" or "none on this node")
  return ctx
end

-- run(ctx, selected) -> failures ({ phase=, msg=, err= }, ...): preflight first, whose failure
-- ends the run before anything is removed; then the rest, every phase tried.
function M.run(ctx, selected)
  local phases = require("kboot.phases")
  local first, rest = {}, {}
  for _, p in ipairs(selected) do
    if p.name == "preflight" then first[#first + 1] = p else rest[#rest + 1] = p end
  end
  if #first > 0 then
    local ok, failures = phases.run(ctx, first)
    if not ok then return failures, true end
  end
  local _, failures = phases.run(ctx, rest, { best_effort = true })
  return failures or {}
end

local function exists(ctx, p) return ctx.fs.exists(p) end

-- What kboot reset never removes (kubeadm's list, with the commands), plus what this run noted.
function M.leftovers(ctx)
  local f, out = ctx.reset_node, {}
  local function add(what, command) out[#out + 1] = { what = what, command = command } end
  local cni = "/etc/cni/net.d"
  if exists(ctx, cni) then
    add(("CNI configuration in %s"):format(ctx.fs.path(cni)), ("rm -rf %s/* (then restart the container runtime)"):format(ctx.fs.path(cni)))
  end
  add("iptables rules of kube-proxy and the CNI plugin",
    "iptables -F && iptables -t nat -F && iptables -t mangle -F && iptables -X (every rule, not only Kubernetes'; or 'kube-proxy --cleanup' for kube-proxy's own)")
  add("nftables tables of kube-proxy (nftables mode)", "nft delete table ip kube-proxy; nft delete table ip6 kube-proxy")
  add("IPVS tables (kube-proxy in IPVS mode)", "ipvsadm --clear")
  add("your kubeconfig $HOME/.kube/config (check it first: it may name other clusters)", "rm $HOME/.kube/config")
  if f.etcd.kind == "external" then
    add("the data of the cluster's external etcd (other control-plane nodes may still use it)",
      "only when the whole cluster goes: etcdctl --endpoints=<etcd servers> --cacert=... --cert=... --key=... del \"\" --prefix")
  elseif f.etcd.kind == "none" and exists(ctx, node.DEFAULT_DATA_DIR) and #(ctx.fs.list(node.DEFAULT_DATA_DIR) or {}) > 0 then
    add(("%s, which no etcd manifest on this node names"):format(ctx.fs.path(node.DEFAULT_DATA_DIR)),
      ("rm -rf %s/* (if it is this node's old etcd data)"):format(ctx.fs.path(node.DEFAULT_DATA_DIR)))
  end
  for _, l in ipairs(ctx.left) do out[#out + 1] = l end
  local name = f.node_name or "NAME"
  add(("the Node object %s in the cluster"):format(name),
    ("kubectl%s delete node %s (with cluster-admin credentials; this node's admin.conf is removed)"):format(
      ctx.opts.kubeconfig and (" --kubeconfig " .. ctx.opts.kubeconfig) or "", name))
  return out
end

-- report(ctx, failures): the dry-run plan, what is left, then every failure (stderr) with the
-- command that finishes its job. Returns the number of failures.
function M.report(ctx, failures)
  local out = io.stdout
  if ctx.dry_run then
    for _, p in ipairs(ctx.plan) do
      if p.call then out:write(("--- would run: %s\n"):format(p.call))
      else out:write(("--- would remove %s%s\n"):format(ctx.fs.path(p.remove), p.type == "dir" and "/ (directory)"
        or p.type == "link" and " (a symlink: removed as a link, its target kept)" or "")) end
    end
  end
  out:write(("\n[reset] %s on this node, each with the command that removes it:\n"):format(
    ctx.dry_run and "What kboot reset would leave" or "What kboot reset left"))
  for _, l in ipairs(M.leftovers(ctx)) do out:write(("  - %s:\n      %s\n"):format(l.what, l.command)) end
  out:flush()
  for _, fl in ipairs(failures) do
    local items = type(fl.err) == "table" and fl.err.items or { fl.msg }
    for _, it in ipairs(items) do io.stderr:write(("error execution phase %s: %s\n"):format(fl.phase, it)) end
    local e = type(fl.err) == "table" and fl.err or {}
    if e.hint then io.stderr:write("    ", e.hint, ":\n") end
    if e.find then io.stderr:write("    ", e.find, "\n") end
    if e.command then io.stderr:write("    ", e.command, "\n") end
  end
  if ctx.dry_run then
    require("kboot.log").info("dry-run", "Nothing was removed, unmounted, stopped or sent; the paths and calls above are what kboot reset would remove and make")
  end
  return #failures
end

return M

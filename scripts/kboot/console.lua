-- kboot.console: the helpers of `kboot repl` as plain functions a script can call too. Each returns
-- data (kboot.rows lists of rows, or records) or nil, err; the REPL prints rows as a table.
--   connect, disconnect, client, nodes, pods, events, components, watch, certs, inspect, etcd.*,
--   diagnose, probe, set_root
-- Their reference is docs/api/console.md (help("nodes") at the prompt shows it).
local fs = require("kboot.fs")
local yaml = require("kboot.yaml")
local rows = require("kboot.rows")
local node = require("kboot.console.node")
local connect = require("kboot.console.connect")
local probe = require("kboot.console.probe")
local cluster = require("kboot.console.cluster")
local pki = require("kboot.console.pki")

local M = {}

M.state = connect.state
M.connect, M.disconnect, M.client, M.probe = connect.connect, connect.disconnect, connect.client, probe.probe
M.nodes, M.pods, M.events, M.components, M.watch = cluster.nodes, cluster.pods, cluster.events, cluster.components, cluster.watch
M.certs, M.inspect = pki.certs, pki.inspect
M.etcd = require("kboot.console.etcd")
M.node = node

-- set_root(dir): look at the node whose files are under dir (what --root does); drops the session.
function M.set_root(dir)
  local ok, err = fs.set_root(dir)
  if not ok then return nil, err end
  connect.disconnect()
  return true
end

-- set_kubeconfig(spec): what connect() and the helpers use when given none (what --kubeconfig does).
function M.set_kubeconfig(spec)
  connect.disconnect()
  connect.state.spec = spec
  return true
end

---------------------------------------------------------------------------------------------------
-- diagnose

-- The container runtime endpoint the kubelet uses: kubeadm-flags.env, else the one known socket.
local function cri_socket()
  local env = fs.read("/var/lib/kubelet/kubeadm-flags.env") or ""
  local s = env:match("%-%-container%-runtime%-endpoint=([^%s\"]+)")
  if s then return s end
  return (require("kboot.context").cri_socket())
end

-- The port the API server listens on: its manifest's --secure-port, else admin.conf's server's.
local function api_port()
  local _, cmd = node.manifest("kube-apiserver")
  local p = type(cmd) == "table" and tonumber(node.flag(cmd, "secure-port"))
  if p then return p end
  local t = require("kboot.kubeconfig").load(node.KUBERNETES_DIR .. "/admin.conf")
  local cur = t and require("kboot.kubeconfig").current(t)
  return cur and tonumber(cur.server:match(":(%d+)$")) or 6443
end

-- The ctx wait_control_plane.diagnose reads this node through.
function M.diagnose_ctx()
  local kcfg = yaml.decode(fs.read("/var/lib/kubelet/config.yaml") or "") or {}
  if type(kcfg) ~= "table" then kcfg = {} end
  return {
    fs = node.view, kubelet = kcfg, node = { criSocket = cri_socket() or "" }, endpoint = { port = api_port() },
    cluster = { etcd = { external = not fs.exists(node.MANIFESTS .. "/etcd.yaml") and {} or nil } },
    kubeconfig_dir = node.KUBERNETES_DIR,
  }
end

local SKIPPED = {
  kubelet = "cannot look", swap = "no /proc/swaps to read", ["cgroup-driver"] = "no container runtime configuration found",
  crictl = "crictl is not installed",
}

-- diagnose() -> rows { check, status ("ok" | "fail" | "info" | "skipped"), problem, fix, cause }: the
-- checks wait-control-plane runs when it times out (kboot.online.wait_control_plane.diagnose),
-- on demand, one row per finding and one "ok" row per check that found nothing.
function M.diagnose()
  local wcp = require("kboot.online.wait_control_plane")
  local findings, ran = wcp.diagnose(M.diagnose_ctx())
  local did, by = {}, {}
  for _, c in ipairs(ran or {}) do did[c] = true end
  for _, f in ipairs(findings) do
    by[f.check or "?"] = by[f.check or "?"] or {}
    table.insert(by[f.check or "?"], f)
  end
  local out = {}
  for _, c in ipairs(wcp.CHECKS) do
    if by[c] then
      for _, f in ipairs(by[c]) do
        out[#out + 1] = { check = c, status = c == "crictl" and "info" or "fail", problem = f.problem or f.detail,
                          fix = f.fix, cause = f.cause }
      end
    elseif did[c] then
      out[#out + 1] = { check = c, status = "ok" }
    else
      out[#out + 1] = { check = c, status = "skipped", problem = SKIPPED[c] }
    end
  end
  return rows.rows(out, { "check", "status", { "problem", flex = true }, { "fix", flex = true } }, { level = function(r)
    return r.status == "fail" and "error" or nil
  end })
end

return M

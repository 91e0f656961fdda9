-- Online init phases against a real v1.20.2 control plane (tests/lib/controlplane.lua): wall time and
-- API request count of the first full `kboot init` (offline files already written), then of re-runs
-- (median of RUNS), beside an offline-only re-run (--offline) in the same invocation as the baseline.
-- Usage: LUA_PATH="tests/lib/?.lua;;" KBOOT_BIN=build/kboot build/kboot bench/bench_online.lua [RUNS]
local t = require("testlib")
local controlplane = require("controlplane")
local runs = tonumber(arg[1]) or 5

local why = controlplane.missing()
if why then io.stderr:write("bench_online: ", why, "\n"); return 1 end

local now = t.now_ms
local median = t.median

local root = t.tmpdir()
local plan = controlplane.plan{ root = root }
t.write(plan.config, table.concat({
  "apiVersion: kubeadm.k8s.io/v1beta4", "kind: InitConfiguration",
  "localAPIEndpoint:", "  advertiseAddress: 127.0.0.1", "  bindPort: " .. plan.api_port,
  "nodeRegistration:", "  name: " .. plan.node_name, "---",
  "apiVersion: kubeadm.k8s.io/v1beta4", "kind: ClusterConfiguration", "kubernetesVersion: v1.20.2", "---",
  "apiVersion: kubelet.config.k8s.io/v1beta1", "kind: KubeletConfiguration",
  "healthzBindAddress: 127.0.0.1", "healthzPort: " .. plan.kubelet_port, "",
}, "\n"))

local function init(extra)
  local t0 = now()
  local ok, out = t.sh(("%s init %s --skip-phases=preflight %s"):format(t.q(t.bin), plan.init_args, extra or ""))
  local ms = now() - t0
  if not ok then error("kboot init failed:\n" .. out) end
  local req, conn = out:match("API requests: (%d+) over (%d+) connection")
  return ms, tonumber(req) or 0, tonumber(conn) or 0
end

init("--offline")
local cp = controlplane.start{ root = root, kubelet_port = plan.kubelet_port }
local ok, err = pcall(function()
  local first, freq, fconn = init()
  local re, off, rreq, rconn = {}, {}, 0, 0
  for _ = 1, runs do
    local ms, r, c = init()
    re[#re + 1], rreq, rconn = ms, r, c
    off[#off + 1] = (init("--offline"))
  end
  local m_re, m_off = median(re), median(off)
  print(("kboot init online phases vs a real v1.20.2 control plane (median of %d runs, ms):"):format(runs))
  print(("  %-44s %8.1f"):format("offline-only re-run (--offline, baseline)", m_off))
  print(("  %-44s %8.1f  %d requests over %d connection(s)"):format("first full init (objects created)", first, freq, fconn))
  print(("  %-44s %8.1f  %d requests over %d connection(s)"):format("full re-run (nothing to change)", m_re, rreq, rconn))
  print(("  %-44s %8.1f  (%.2fx the offline re-run)"):format("online phases alone in a re-run", m_re - m_off, m_re / m_off))
end)
cp:stop()
t.cleanup()
if not ok then io.stderr:write("bench_online: ", tostring(err), "\n"); return 1 end
return 0

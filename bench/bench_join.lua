-- Worker join against a real v1.20.2 control plane (tests/lib/controlplane.lua), brought up once.
-- Per round (RUNS rounds, median printed):
--   token:     `kboot init phase bootstrap-token --token NEW` (a fresh token each round)
--   discovery: from that command returning to a worker's token discovery succeeding (kboot.discovery,
--              as `kboot join` calls it: default 1 s poll), i.e. mostly the bootstrapsigner's delay
--   discovery (signed): the same once the signature is there (the floor of discovery)
--   join:      a whole `kboot join` of a fresh node name into a fresh root, with that token
--   join via VIP: the same through tests/lib/tcp_forward.py (connections counted there)
-- plus a join that leaves the certificate to the kubelet (--kubelet-bootstrap), and the request counts of each (discovery's own count; the join's "API requests" line, which
-- covers what follows discovery).
-- Usage: bench/bench_join.sh [RUNS] (or LUA_PATH="tests/lib/?.lua;;" KBOOT_BIN=build/kboot build/kboot bench/bench_join.lua [RUNS])
local t = require("testlib")
local controlplane = require("controlplane")
local crypto = require("kboot.crypto")
local discovery = require("kboot.discovery")
local runs = tonumber(arg and arg[1]) or 7
local VIP = "127.0.0.3"

local why = controlplane.missing()
if why then io.stderr:write("bench_join: ", why, "\n"); os.exit(1) end

local now = t.now_ms
local median = t.median

local root = t.tmpdir()
local plan = controlplane.plan{ root = root, cert_sans = { VIP } }
local cp = assert(controlplane.init_offline_and_start(plan))
local ok, err = pcall(function()
  t.must(t.q(t.bin) .. " init phase upload-config " .. plan.init_args)
  local pin = "sha256:" .. t.must("openssl x509 -in " .. t.q(root .. "/etc/kubernetes/pki/ca.crt")
    .. " -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum"):match("^(%x+)")
  local ep = "127.0.0.1:" .. cp.api_port
  -- the VIP
  local fport, flog = t.free_port(), t.tmpdir() .. "/fwd.log"
  local self_pid = io.open("/proc/self/stat"):read("a"):match("^(%d+)")
  local fpid = t.must(("/usr/bin/python3 %s %s %d 127.0.0.1 %d %s %s >/dev/null 2>&1 </dev/null & echo $!"):format(
    t.q(t.src .. "/tests/lib/tcp_forward.py"), VIP, fport, cp.api_port, t.q(flog), self_pid)):match("%d+")
  os.execute("sleep 0.5")
  local function conns() return select(2, t.read(flog):gsub("\nconn %d+", "")) end

  local m = { token = {}, disc = {}, disc_req = {}, signed = {}, signed_req = {}, join = {}, join_req = {},
              join_conn = {}, vip = {}, vip_conn = {}, nomint = {}, nomint_req = {} }
  local function add(k, v) m[k][#m[k] + 1] = v end
  for i = 1, runs do
    local token = crypto.token()
    local t0 = now()
    t.must(("%s init phase bootstrap-token %s --token %s"):format(t.q(t.bin), plan.init_args, token))
    local t1 = now()
    add("token", t1 - t0)
    local found = assert(discovery.token{ endpoint = ep, token = token, pins = { pin }, timeout = 120 })
    add("disc", now() - t1)
    add("disc_req", found.requests)
    local t2 = now()
    found = assert(discovery.token{ endpoint = ep, token = token, pins = { pin }, timeout = 120 })
    add("signed", now() - t2)
    add("signed_req", found.requests)
    local r = t.tmpdir()
    local t3 = now()
    local out = t.must(("%s join %s --token %s --discovery-token-ca-cert-hash %s --node-name bench-%d --root %s "
      .. "--ignore-preflight-errors=all"):format(t.q(t.bin), ep, token, pin, i, t.q(r)))
    add("join", now() - t3)
    local req, conn = out:match("API requests: (%d+) over (%d+) connection")
    add("join_req", tonumber(req))
    add("join_conn", tonumber(conn))
    r = t.tmpdir()
    local t5 = now()
    out = t.must(("%s join %s --token %s --discovery-token-ca-cert-hash %s --node-name bench-kb-%d --root %s "
      .. "--ignore-preflight-errors=all --kubelet-bootstrap --skip-phases kubelet-wait-bootstrap"):format(
      t.q(t.bin), ep, token, pin, i, t.q(r)))
    add("nomint", now() - t5)
    add("nomint_req", tonumber(out:match("API requests: (%d+)")))
    r = t.tmpdir()
    local c0, t4 = conns(), now()
    t.must(("%s join %s:%d --token %s --discovery-token-ca-cert-hash %s --node-name bench-vip-%d --root %s "
      .. "--ignore-preflight-errors=all"):format(t.q(t.bin), VIP, fport, token, pin, i, t.q(r)))
    add("vip", now() - t4)
    add("vip_conn", conns() - c0)
  end
  os.execute("kill " .. fpid)
  local M = {}
  for k, v in pairs(m) do M[k] = median(v) end
  print(("kboot join (worker) vs a real v1.20.2 control plane: median of %d rounds; %d cores; load %s"):format(
    runs, tonumber(t.must("nproc")), t.must("cut -d' ' -f1-3 /proc/loadavg"):gsub("%s+$", "")))
  local function row(label, ms, extra) print(("  %-52s %9.1f ms  %s"):format(label, ms, extra or "")) end
  row("init phase bootstrap-token (new token)", M.token)
  row("bootstrap-token returned -> discovery succeeded", M.disc, ("%g requests (polls of cluster-info + 1 verified)"):format(M.disc_req))
  row("discovery, signature already there (floor)", M.signed, ("%g requests"):format(M.signed_req))
  row("whole kboot join (fresh root, fresh node name)", M.join,
      ("%g + %g requests (discovery + after) over %g connection(s) after discovery"):format(M.signed_req, M.join_req, M.join_conn))
  row("kboot join --kubelet-bootstrap (no key, no CSR)", M.nomint, ("%g + %g requests"):format(M.signed_req, M.nomint_req))
  row("  so minting kubelet.conf (key, CSR, approval wait)", M.join - M.nomint)
  row("whole kboot join through the VIP forwarder", M.vip, ("%g TCP connections at the forwarder"):format(M.vip_conn))
  print(("  %-52s %9.2f x"):format("ratio discovery-after-token / discovery floor", M.disc / M.signed))
  print(("  %-52s %9.2f x"):format("ratio join / discovery floor", M.join / M.signed))
  print(("  %-52s %9.2f x"):format("ratio join via VIP / join direct", M.vip / M.join))
  print(("  %-52s %9.2f x"):format("ratio join / join --kubelet-bootstrap", M.join / M.nomint))
  print(("  %-52s %9.2f x"):format("ratio (token + wait + join) / join", (M.token + M.disc + M.join) / M.join))
  local spread = {}
  for _, k in ipairs({ "disc", "join" }) do
    local s = { table.unpack(m[k]) }
    table.sort(s)
    spread[#spread + 1] = ("%s %.0f..%.0f"):format(k, s[1], s[#s])
  end
  print("  range (ms): " .. table.concat(spread, ", "))
  print(("  round 1 (controller-manager just started): bootstrap-token returned -> discovery %.1f ms, %d requests")
    :format(m.disc[1], m.disc_req[1]))
end)
cp:stop()
t.cleanup()
if not ok then io.stderr:write("bench_join: ", tostring(err), "\n"); os.exit(1) end

-- Control-plane join against a real v1.20.2 control plane (tests/lib/controlplane.lua) with real
-- etcd, brought up once. Per round (RUNS rounds, median printed), a fresh root and node name on
-- 127.0.0.2:
--   prepare:   `kboot join phase control-plane-prepare` (discovery, kubeadm-certs downloaded and
--              decrypted, this node's leaf certificates, kubeconfigs and manifests)
--   etcd-join: `kboot join phase etcd-join` from the moment this node's etcd process is started
--              (from the manifest the phase wrote, as a kubelet would) to the phase returning with
--              the learner promoted, i.e. the member's start and catch-up plus kboot's polling
--   etcd-join (kboot's part): the same minus etcd's own start-up, measured as the time etcd takes
--              to answer /health after its start
-- then the member is removed again (kboot.etcd_members.remove) for the next round.
-- Usage: bench/bench_join.sh runs this too (or LUA_PATH="tests/lib/?.lua;;" KBOOT_BIN=build/kboot
-- build/kboot bench/bench_join_cp.lua [RUNS])
local t = require("testlib")
local json = require("cjson")
local controlplane = require("controlplane")
local yaml = require("kboot.yaml")
local http = require("kboot.http")
local em = require("kboot.etcd_members")
local runs = tonumber(arg and arg[1]) or 5

local why = controlplane.missing()
if why then io.stderr:write("bench_join_cp: ", why, "\n"); os.exit(1) end

local now = t.now_ms
local median = t.median

local KEY = ("5a"):rep(32)
local TOKEN = "bcpj00.q7w8e9r0t1y2u3i4"
local A = t.tmpdir()
local plan = controlplane.plan{ root = A, token = TOKEN, certificate_key = KEY }
local cp = assert(controlplane.init_offline_and_start(plan))
local ok, err = pcall(function()
  for _, phase in ipairs({ "upload-config", "upload-certs --upload-certs", "bootstrap-token" }) do
    t.must(("%s init phase %s %s"):format(t.q(t.bin), phase, plan.init_args))
  end
  local pin = "sha256:" .. t.must("openssl x509 -in " .. t.q(A .. "/etc/kubernetes/pki/ca.crt")
    .. " -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum"):match("^(%x+)")
  -- the mirror Pod of A's etcd, as A's kubelet would post it (where etcd really listens)
  local pod = { apiVersion = "v1", kind = "Pod", metadata = { name = "etcd-" .. cp.node_name, namespace = "kube-system",
    labels = { component = "etcd", tier = "control-plane" },
    annotations = { ["kubernetes.io/config.mirror"] = "bench",
                    ["kubeadm.kubernetes.io/etcd.advertise-client-urls"] = "https://127.0.0.1:" .. cp.etcd_port } },
    spec = { nodeName = cp.node_name, containers = { { name = "etcd", image = "k8s.gcr.io/etcd:3.4.13-0" } } } }
  local pf = t.tmpdir() .. "/pod.json"
  t.write(pf, json.encode(pod))
  t.sh(cp.kubectl .. " create -f " .. t.q(pf)) -- the harness may have posted it already
  local pkidir = A .. "/etc/kubernetes/pki"
  local ec = assert(em.client{ urls = { "https://127.0.0.1:" .. cp.etcd_port }, ca_pem = t.read(pkidir .. "/etcd/ca.crt"),
                               cert_pem = t.read(pkidir .. "/apiserver-etcd-client.crt"),
                               key_pem = t.read(pkidir .. "/apiserver-etcd-client.key") })

  local m = { prepare = {}, join = {}, floor = {}, prep_req = {} }
  for i = 1, runs do
    local B = t.tmpdir()
    local args = ("127.0.0.1:%d --token %s --discovery-token-ca-cert-hash %s --control-plane --certificate-key %s "
      .. "--apiserver-advertise-address 127.0.0.2 --node-name bcp%d --root %s --ignore-preflight-errors=all")
      :format(cp.api_port, TOKEN, pin, KEY, i, t.q(B))
    local t0 = now()
    local out = t.must(("%s join phase control-plane-prepare %s"):format(t.q(t.bin), args))
    m.prepare[#m.prepare + 1] = now() - t0
    m.prep_req[#m.prep_req + 1] = tonumber(out:match("API requests: (%d+)")) or 0
    -- etcd-join in the background; it writes the manifest, then waits for the member
    t.must(("(%s join phase etcd-join %s >%s/ej.log 2>&1; echo $? >%s/ej.rc) </dev/null >/dev/null 2>&1 &"):format(
      t.q(t.bin), args, B, B))
    local mf
    for _ = 1, 400 do
      local f = io.open(B .. "/etc/kubernetes/manifests/etcd.yaml")
      if f then mf = yaml.decode(f:read("a")); f:close() break end
      os.execute("sleep 0.02")
    end
    assert(mf, "no etcd manifest: " .. t.read(B .. "/ej.log"))
    local cport, mport = t.free_port(), t.free_port()
    local cmd = {}
    for j, a in ipairs(mf.spec.containers[1].command) do
      if j > 1 then
        a = a:gsub("=/", "=" .. B .. "/"):gsub("127%.0%.0%.1:2379", "127.0.0.1:" .. cport):gsub("127%.0%.0%.1:2381", "127.0.0.1:" .. mport)
        cmd[#cmd + 1] = t.q(a)
      end
    end
    t.must("mkdir -p " .. B .. "/var/lib/etcd && chmod 700 " .. B .. "/var/lib/etcd")
    local t1 = now()
    local pid = t.must(("/usr/bin/etcd %s >%s/etcd.log 2>&1 </dev/null & echo $!"):format(table.concat(cmd, " "), B)):match("%d+")
    local health = http.client{ server = "http://127.0.0.1:" .. mport, retries = 0, timeout = 1, connect_timeout = 1 }
    local healthy
    while not t.sh("test -s " .. B .. "/ej.rc") do
      if not healthy then
        local r = health:request("GET", "/health")
        if r and r.status == 200 then healthy = now() - t1 end
      end
      os.execute("sleep 0.01")
    end
    local dt = now() - t1
    health:close()
    assert(t.read(B .. "/ej.rc"):match("^0"), "etcd-join failed: " .. t.read(B .. "/ej.log"))
    m.join[#m.join + 1] = dt
    m.floor[#m.floor + 1] = dt - (healthy or dt)
    -- out again for the next round
    local me = em.find(assert(em.list(ec)), "https://127.0.0.2:2380")
    assert(em.remove(ec, me.id))
    os.execute("kill " .. pid .. "; sleep 0.3; kill -9 " .. pid .. " 2>/dev/null")
  end
  ec:close()
  print(("control-plane join, %d rounds, medians (RSA-2048 keys, kboot %s)"):format(runs, t.bin))
  print(("  prepare (discovery + download-certs + certs + kubeconfigs + manifests): %8.1f ms, %d requests"):format(
    median(m.prepare), median(m.prep_req)))
  print(("  etcd-join after this node's etcd starts:                            %8.1f ms"):format(median(m.join)))
  print(("  of which after etcd answers /health (kboot's promote polling):      %8.1f ms (%.2f of it)"):format(
    median(m.floor), median(m.floor) / median(m.join)))
end)
cp:stop()
if not ok then io.stderr:write(tostring(err), "\n"); os.exit(1) end

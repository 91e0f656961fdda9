-- kubeadm's wait-control-plane phase: poll the kubelet's healthz, then the API server's /livez
-- (/healthz on servers without it). On timeout it does not guess: it checks what can be checked on
-- this node (kubelet installed and running, swap, cgroup driver of kubelet vs runtime, ports taken by
-- something else, the API server's TLS/auth answer, crictl's view of the static pods) and prints
-- each finding. Every file is read through ctx.fs, so a --root sandbox gets its own /proc and /etc.
local kerror = require("kboot.error")
local time = require("kboot.time")

local M = {}

local function log(ctx) return ctx.log or require("kboot.log") end
local now, sleep, fmt = time.now, time.sleep, time.format_duration

-- http://<healthzBindAddress>:<healthzPort>/healthz from the KubeletConfiguration (kubeadm polls
-- 127.0.0.1:10248); a bind address of 0.0.0.0/:: is reached on loopback.
function M.kubelet_healthz_url(ctx)
  local k = ctx.kubelet or {}
  local host = k.healthzBindAddress
  if host == nil or host == "" or host == "0.0.0.0" then host = "127.0.0.1" end
  if host == "::" then host = "::1" end
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  local port = k.healthzPort
  if port == nil or port == 0 then port = 10248 end
  return ("http://%s:%d/healthz"):format(host, port)
end

-- timeout(ctx) -> control plane, kubelet: the v1beta4 timeouts in seconds
function M.timeout(ctx)
  return ctx.timeouts.controlPlaneComponentHealthCheck, ctx.timeouts.kubeletHealthCheck
end

-- One GET; returns status, body or nil, err. The client makes one attempt: this loop does the retries.
local function probe(client, path)
  local r, err = client:request("GET", path, { retries = 0, timeout = 5 })
  if not r then return nil, err end
  return r.status, r.body
end

local function kubelet_client(ctx)
  local url = M.kubelet_healthz_url(ctx)
  local server, path = url:match("^(http://[^/]+)(/.*)$")
  return require("kboot.http").client({ server = server, retries = 0, timeout = 5, connect_timeout = 3 }), path, url
end

-- The API server client: admin.conf's cluster and credentials (health endpoints need no RBAC, but
-- the TLS handshake checks the CA and client certificate, which is what a diagnosis wants to see).
local function apiserver_client(ctx)
  local dir = ctx.kubeconfig_dir or "/etc/kubernetes"
  local text, err = ctx.fs.read(dir .. "/admin.conf")
  if not text then return nil, err end
  local kc = require("kboot.kubeconfig")
  local t, perr = kc.parse(text, dir .. "/admin.conf")
  if not t then return nil, perr end
  local o = { retries = 0, timeout = 5, connect_timeout = 3 }
  if not ctx.api_check_server then return kc.client(t, o) end
  -- a joining control-plane node checks its own API server, whatever server admin.conf names
  local cur, cerr = kc.current(t)
  if not cur then return nil, cerr end
  o.server, o.ca_pem, o.cert_pem, o.key_pem = ctx.api_check_server, cur.ca_pem, cur.cert_pem, cur.key_pem
  return require("kboot.http").client(o)
end

-- livez(client) -> true | nil, why. 404 on /livez (servers before v1.16 or with it off) -> /healthz.
function M.livez(client)
  local st, body = probe(client, "/livez")
  if st == 404 then st, body = probe(client, "/healthz") end
  if st == 200 then return true end
  if not st then return nil, tostring(body) end
  return nil, ("HTTP %d: %s"):format(st, (body or ""):sub(1, 200):gsub("%s+$", ""))
end

local function fail(stage, text) return kerror.new("wait-control-plane", text, { stage = stage }) end

-- wait(ctx, o) -> true | nil, kboot.error (its stage: "kubelet" or "apiserver", what did not come
-- up). o: { timeout=, kubelet_timeout=, interval= } (seconds).
function M.wait(ctx, o)
  o = o or {}
  local cp_t, kl_t = M.timeout(ctx)
  cp_t, kl_t = o.timeout or cp_t, o.kubelet_timeout or o.timeout or kl_t
  local interval = o.interval or 0.5
  local kc, kpath, kurl = kubelet_client(ctx)
  log(ctx).info("wait-control-plane", "Waiting for the kubelet to boot up the control plane as static Pods from directory \"/etc/kubernetes/manifests\"")
  log(ctx).info("kubelet-check", "Waiting for a healthy kubelet at %s. This can take up to %s", kurl, fmt(kl_t))
  local deadline, last = now() + kl_t, nil
  while true do
    local st, body = probe(kc, kpath)
    if st == 200 then break end
    last = st and ("HTTP %d: %s"):format(st, (body or ""):sub(1, 100)) or tostring(body)
    if now() >= deadline then
      kc:close()
      return nil, fail("kubelet", ("the kubelet is not healthy after %s (%s: %s)"):format(fmt(kl_t), kurl, last))
    end
    sleep(interval)
  end
  kc:close()
  log(ctx).info("kubelet-check", "The kubelet is healthy")
  local ac, aerr = apiserver_client(ctx)
  if not ac then return nil, fail("apiserver", ("cannot reach the API server: %s"):format(tostring(aerr))) end
  log(ctx).info("api-check", "Waiting for a healthy API server%s. This can take up to %s",
    ctx.api_check_server and (" at " .. ctx.api_check_server) or "", fmt(cp_t))
  deadline = now() + cp_t
  while true do
    local ok, why = M.livez(ac)
    if ok then break end
    last = why
    if now() >= deadline then
      ac:close()
      return nil, fail("apiserver", ("the API server is not healthy after %s: %s"):format(fmt(cp_t), last))
    end
    sleep(interval)
  end
  ac:close()
  log(ctx).info("api-check", "The API server is healthy")
  return true
end

---------------------------------------------------------------------------------------------------
-- diagnosis

local function read(ctx, p) return ctx.fs.read(p) end

local KUBELET_BINS = { "/usr/bin/kubelet", "/usr/local/bin/kubelet", "/bin/kubelet", "/opt/bin/kubelet" }

-- Running processes named `name` from /proc/<pid>/comm (nil when /proc cannot be listed).
local function processes(ctx, name)
  local pids = ctx.fs.list("/proc")
  if not pids then return nil end
  local out = {}
  for _, p in ipairs(pids) do
    if p:match("^%d+$") then
      local comm = read(ctx, "/proc/" .. p .. "/comm")
      if comm and comm:gsub("%s+$", "") == name then out[#out + 1] = tonumber(p) end
    end
  end
  return out
end

-- The kubelet's config as the node has it (the file kubelet-start wrote), else ctx's.
local function kubelet_config(ctx)
  local text = read(ctx, "/var/lib/kubelet/config.yaml")
  local t = text and require("kboot.yaml").decode(text)
  if type(t) == "table" then return t end
  return ctx.kubelet or {}
end

-- The container runtime's cgroup driver: containerd's runc SystemdCgroup, CRI-O's cgroup_manager.
-- Returns driver, source file, or nil when no runtime config is found.
function M.runtime_cgroup_driver(ctx)
  local c = read(ctx, "/etc/containerd/config.toml")
  if c then
    local v = c:match("\n%s*SystemdCgroup%s*=%s*(%a+)") or c:match("^%s*SystemdCgroup%s*=%s*(%a+)")
    return v == "true" and "systemd" or "cgroupfs", "/etc/containerd/config.toml"
           .. (v and (" (SystemdCgroup = " .. v .. ")") or " (no SystemdCgroup: containerd uses cgroupfs)")
  end
  local files = { "/etc/crio/crio.conf" }
  for _, f in ipairs(ctx.fs.list("/etc/crio/crio.conf.d") or {}) do files[#files + 1] = "/etc/crio/crio.conf.d/" .. f end
  local driver, src
  for _, f in ipairs(files) do
    local t = read(ctx, f)
    local v = t and t:match('cgroup_manager%s*=%s*"(%a+)"')
    if v then driver, src = v, f end
  end
  if driver then return driver, src .. (' (cgroup_manager = "%s")'):format(driver) end
  return nil
end

local function crictl_path(ctx)
  if ctx.crictl ~= nil then return ctx.crictl or nil end
  local ok, out = pcall(function()
    local p = io.popen("command -v crictl 2>/dev/null")
    local s = p:read("a"); p:close(); return s
  end)
  out = ok and out and out:gsub("%s+$", "") or ""
  return out ~= "" and out or nil
end

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  if not p then return nil end
  local out = p:read("a")
  p:close()
  return out
end

-- crictl's list of control-plane containers, and the last log lines of those that exited.
local function crictl_findings(ctx, add, ran)
  local crictl = crictl_path(ctx)
  if not crictl then return end
  ran("crictl")
  local ep = shell_quote(ctx.node.criSocket or "")
  local base = shell_quote(crictl) .. " --runtime-endpoint " .. ep
  local ps = run(base .. " ps -a") or ""
  local failing = {}
  for line in ps:gmatch("[^\n]+") do
    local id = line:match("^(%x+)%s")
    if id then
      for _, n in ipairs({ "kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler" }) do
        if line:find(" " .. n .. " ", 1, true) and line:find("Exited", 1, true) then failing[#failing + 1] = { id = id, name = n } end
      end
    end
  end
  add("crictl", "`crictl ps -a`:\n" .. ps:gsub("%s+$", ""), nil, "crictl")
  for _, f in ipairs(failing) do
    local logs = run(base .. " logs --tail 15 " .. shell_quote(f.id)) or ""
    add("crictl", ("%s exited; `crictl logs --tail 15 %s`:\n%s"):format(f.name, f.id, logs:gsub("%s+$", "")), nil, "crictl")
  end
end

-- The checks diagnose runs, in order (a finding's `check`); crictl only where crictl is installed.
M.CHECKS = { "kubelet", "swap", "cgroup-driver", "kubelet-healthz", "apiserver", "manifests", "crictl" }

-- diagnose(ctx, o) -> findings, checks: findings = list of { cause=, detail=, problem=, fix=, check= }
-- (detail = problem .. ": " .. fix, the line wait-control-plane prints; crictl's have no fix), checks
-- = the names of M.CHECKS that ran (a check missing there could not look: no /proc, no crictl).
-- o.stage = "kubelet" | "apiserver" (what timed out). A finding never contradicts what was
-- measured: a kubelet that answers its healthz (or that the wait saw healthy before the API server
-- stage) is neither missing, nor stopped, nor kept down by swap, wherever its binary is.
function M.diagnose(ctx, o)
  o = o or {}
  local out, ran, check = {}, {}, nil
  local function run_check(name) check = name; ran[#ran + 1] = name end
  local function add(cause, problem, fix, which)
    out[#out + 1] = { cause = cause, detail = fix and (problem .. ": " .. fix) or problem, problem = problem,
                      fix = fix, check = which or check }
  end
  local kcfg = kubelet_config(ctx)

  local kurl = M.kubelet_healthz_url(ctx)
  local kport = tonumber(kurl:match(":(%d+)/"))
  local kc = kubelet_client(ctx)
  local kst, kbody = probe(kc, "/healthz")
  kc:close()
  local healthy = kst == 200
  local was_up = healthy or o.stage == "apiserver"

  local installed = false
  for _, b in ipairs(KUBELET_BINS) do if ctx.fs.exists(b) then installed = true end end
  local procs = processes(ctx, "kubelet")
  run_check("kubelet")
  if healthy then
    -- measured healthy: nothing to say about its binary or process
  elseif not installed and not was_up and not (procs and #procs > 0) then
    add("kubelet-missing", ("the kubelet is not installed (none of %s exists)"):format(table.concat(KUBELET_BINS, ", ")),
      "install the kubelet package (and its systemd unit)")
  elseif procs and #procs == 0 then
    add("kubelet-not-running", "the kubelet is installed but not running",
      "check 'systemctl status kubelet' and 'journalctl -xeu kubelet'")
  end

  local swaps = read(ctx, "/proc/swaps")
  if swaps then run_check("swap") end
  if swaps and not healthy and kcfg.failSwapOn ~= false then
    local n = 0
    for line in swaps:gmatch("[^\n]+") do if not line:match("^Filename") then n = n + 1 end end
    if n > 0 then
      add("swap", "swap is on and the kubelet refuses to run with swap (failSwapOn is not false)",
        "run 'swapoff -a' or set failSwapOn: false")
    end
  end

  local want = kcfg.cgroupDriver or "systemd"
  local have, src = M.runtime_cgroup_driver(ctx)
  if have then run_check("cgroup-driver") end
  if have and have ~= want then
    add("cgroup-driver", ("cgroup driver mismatch: the kubelet uses %q (/var/lib/kubelet/config.yaml cgroupDriver) but the container runtime uses %q (%s)")
      :format(want, have, src), "make them equal")
  end

  -- ports: something listens where a control-plane piece should, yet the piece is not healthy
  local ports = require("kboot.preflight").listening_ports(ctx)
  run_check("kubelet-healthz")
  if not healthy then
    if ports and ports[kport] and not (procs and #procs > 0) then
      add("port-taken", ("port %d (the kubelet's healthz) is taken by another process"):format(kport),
        ("find it with 'ss -ltnp sport = :%d'"):format(kport))
    elseif kst then
      add("kubelet-unhealthy", ("the kubelet's %s answers HTTP %d: %s"):format(kurl, kst, (kbody or ""):sub(1, 200)),
        "look for why in 'journalctl -xeu kubelet'")
    else
      add("kubelet-healthz", ("the kubelet's %s does not answer: %s"):format(kurl, tostring(kbody)),
        "start the kubelet ('systemctl start kubelet'); if it runs, check its healthzBindAddress and healthzPort")
    end
  end

  local ac, aerr = apiserver_client(ctx)
  local bind = ctx.endpoint.port
  run_check("apiserver")
  if not ac then
    add("apiserver", ("cannot build a client from admin.conf: %s"):format(tostring(aerr)),
      "run 'kboot init phase kubeconfig admin' or fix the file")
  else
    local ok, why = M.livez(ac)
    ac:close()
    if not ok then
      local w = tostring(why)
      if w:find("TLS verification failed", 1, true) or w:find("certificate", 1, true) then
        add("apiserver-tls", "the API server answers but TLS fails: " .. w,
          "compare admin.conf's CA with /etc/kubernetes/pki/ca.crt and the API server's certificate")
      elseif w:find("HTTP 401", 1, true) or w:find("HTTP 403", 1, true) then
        add("apiserver-auth", "the API server refuses admin.conf's credentials: " .. w,
          "renew admin.conf ('kboot init phase kubeconfig admin' after removing it)")
      elseif ports and ports[bind] then
        add("port-taken", ("port %d is taken, but what listens there is not a healthy API server of this cluster (%s)")
          :format(bind, w), ("check 'ss -ltnp sport = :%d'"):format(bind))
      else
        add("apiserver-down", "the API server does not answer: " .. w,
          "check the kube-apiserver static Pod ('crictl ps -a', its logs) and etcd")
      end
    end
  end

  run_check("manifests")
  for _, m in ipairs({ "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler" }) do
    if not ctx.fs.exists("/etc/kubernetes/manifests/" .. m .. ".yaml") and not (m == "etcd" and ctx.cluster.etcd.external) then
      local phase = ctx.flow == "join" and (m == "etcd" and "etcd-join" or "control-plane-prepare/control-plane")
        or (m == "etcd" and "etcd/local" or "control-plane")
      add("manifest-missing", ("/etc/kubernetes/manifests/%s.yaml does not exist"):format(m),
        ("run 'kboot %s phase %s'"):format(ctx.flow == "join" and "join" or "init", phase))
    end
  end
  crictl_findings(ctx, add, run_check)
  return out, ran
end

function M.run(ctx)
  if ctx.dry_run then
    log(ctx).info("wait-control-plane", "dry run: would wait for %s and the API server's /livez", M.kubelet_healthz_url(ctx))
    return true
  end
  local ok, err = M.wait(ctx)
  if ok then return true end
  local l = log(ctx)
  l.error("wait-control-plane", "%s", err)
  local found = M.diagnose(ctx, { stage = err.stage })
  if #found == 0 then
    l.error("wait-control-plane", "nothing wrong found on this node; check 'journalctl -xeu kubelet' and the container runtime's logs")
  end
  for _, f in ipairs(found) do l.error("wait-control-plane", "likely cause: %s", f.detail) end
  if found[1] then
    err.msg = err.msg .. "; likely cause: " .. found[1].detail:match("^[^\n]*")
    err.causes = found
  end
  return nil, err
end

function M.phases()
  return { { name = "wait-control-plane", help = "Wait for the control plane to start", run = M.run, no_api = true } }
end

return M

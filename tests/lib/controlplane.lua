-- A real Kubernetes control plane for tests, started from kboot init's own static Pod manifests.
-- No kubelet or container runtime exists here, so this plays the kubelet's part: it reads the
-- `command:` of etcd, kube-apiserver, kube-controller-manager and kube-scheduler from
-- SANDBOX/etc/kubernetes/manifests, re-roots every absolute path under SANDBOX, moves every port on
-- 127.0.0.1 to a free one, runs them as ordinary processes (logs in SANDBOX/cp-logs), serves the
-- kubelet's healthz, and once the API server answers registers the Node object and posts the mirror
-- Pods as a kubelet would.
--
-- A second control-plane node runs in another sandbox on its own loopback address (start{ address =
-- "127.0.0.2" }): what its manifests name on that address (or another node's) keeps its port (its
-- etcd really is at https://127.0.0.2:2380, the peer URL registered in etcd); what they name on
-- 127.0.0.1 is moved.
--
--   local plan = controlplane.plan{ root = SANDBOX }  -- free ports, a kubeadm config for kboot init
--   local cp = assert(controlplane.init_offline_and_start(plan))  -- kboot's offline init, then start
--   -- or: run kboot init yourself, then controlplane.start(plan) (or start{ root = SANDBOX })
--   t.must(cp.kubectl .. " get nodes"); cp:stop()
--
-- Everything is killed by PID in cp:stop(); a watchdog kills it too when the test process dies.
local t = require("testlib")
local yaml = require("kboot.yaml")
local http = require("kboot.http")
local kubeconfig = require("kboot.kubeconfig")
local log = require("kboot.log")

local M = {}

M.COMPONENTS = { "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler" }

-- Where the v1.20.2 binaries are: KBOOT_E2E_BIN, else the build script's default cache.
function M.bin_dir()
  local d = os.getenv("KBOOT_E2E_BIN")
  if not d or d == "" then d = (os.getenv("KBOOT_E2E_CACHE") or "/var/cache/kboot-e2e") .. "/bin" end
  return d
end

-- nil when everything needed is there, else a reason to skip the test.
function M.missing()
  local d = M.bin_dir()
  for _, b in ipairs({ "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl" }) do
    if not t.sh("test -x " .. t.q(d .. "/" .. b)) then
      return ("%s/%s not found: run tests/e2e/build-control-plane.sh (or set KBOOT_E2E_BIN)"):format(d, b)
    end
  end
  if not t.sh("test -x /usr/bin/etcd") then return "/usr/bin/etcd not found: apt-get install etcd-server" end
  if not t.sh("command -v python3") then return "python3 not found (serves the kubelet healthz)" end
  return nil
end

local used = {}
local function port()
  while true do
    local p = t.free_port()
    if not used[p] then used[p] = true return p end
  end
end

-- Free ports and a kubeadm config (written to ROOT/kubeadm.yaml) that puts the API server and the
-- kubelet healthz on them. opts: root (required), node_name ("kbnode"), version ("v1.20.2"),
-- token (InitConfiguration.bootstrapTokens[0].token), certificate_key, cert_sans = { extra API server
-- certificate SANs (a VIP) }, extra = YAML text appended as more documents (InitConfiguration fields cannot be added this way).
function M.plan(opts)
  local root = assert(opts.root, "controlplane.plan: root is required")
  local p = { root = root, api_port = port(), kubelet_port = port(), node_name = opts.node_name or "kbnode",
              version = opts.version or "v1.20.2" }
  p.config = root .. "/kubeadm.yaml"
  local lines = {
    "apiVersion: kubeadm.k8s.io/v1beta3", "kind: InitConfiguration",
    "localAPIEndpoint:", "  advertiseAddress: 127.0.0.1", "  bindPort: " .. p.api_port,
    "nodeRegistration:", "  name: " .. p.node_name,
    opts.token and ("bootstrapTokens:\n- token: " .. opts.token) or nil,
    opts.certificate_key and ("certificateKey: " .. opts.certificate_key) or nil, "---",
    "apiVersion: kubeadm.k8s.io/v1beta3", "kind: ClusterConfiguration",
    "kubernetesVersion: " .. p.version,
    opts.cert_sans and ("apiServer:\n  certSANs:\n  - " .. table.concat(opts.cert_sans, "\n  - ")) or nil, "---",
    "apiVersion: kubelet.config.k8s.io/v1beta1", "kind: KubeletConfiguration",
    "healthzBindAddress: 127.0.0.1", "healthzPort: " .. p.kubelet_port, "",
  }
  local text = {}
  for i = 1, 40 do if lines[i] then text[#text + 1] = lines[i] end end -- the optional lines are nil
  t.write(p.config, table.concat(text, "\n") .. (opts.extra and ("---\n" .. opts.extra) or ""))
  p.init_args = ("--root %s --config %s"):format(t.q(root), t.q(p.config))
  return p
end

-- The static Pod of one component (decoded) and its command.
local function read_manifest(root, name)
  local path = root .. "/etc/kubernetes/manifests/" .. name .. ".yaml"
  local f = io.open(path, "rb")
  if not f then return nil, path .. " does not exist (did kboot init run its manifest phases?)" end
  local text = f:read("a")
  f:close()
  local pod = assert(yaml.decode(text))
  local cmd = pod.spec and pod.spec.containers and pod.spec.containers[1] and pod.spec.containers[1].command
  if not cmd then return nil, path .. ": no spec.containers[0].command" end
  return pod, cmd, text
end

-- One flag (or annotation) value: absolute paths under root (when root is given), the well-known
-- ports mapped, duplicates dropped (kubeadm lists the loopback and the advertise address in etcd's
-- listen URLs; both are 127.0.0.1 on the first node). On a node whose address is not 127.0.0.1
-- only what names the loopback every sandbox shares (127.0.0.1, localhost) is moved: its own
-- address and the other nodes' (etcd's --initial-cluster) keep their ports, which are real.
local LOOPBACK = { ["127.0.0.1"] = true, localhost = true, ["::1"] = true }
local function rewrite_value(v, root, ports, address)
  local out, seen = {}, {}
  for part in (v .. ","):gmatch("([^,]*),") do
    if root and part:sub(1, 1) == "/" then part = root .. part end
    local host = (part:match("([^/=@]+):%d+$") or ""):gsub("^%[(.*)%]$", "%1")
    if address == "127.0.0.1" or LOOPBACK[host] then
      part = part:gsub(":(%d+)$", function(n) return ":" .. (ports[tonumber(n)] or n) end)
    end
    if not seen[part] then seen[part] = true out[#out + 1] = part end
  end
  return table.concat(out, ",")
end

local function rewrite(cmd, root, ports, add, address)
  local args = {}
  for i = 2, #cmd do
    local flag, v = cmd[i]:match("^(%-%-[%w%-]+)=(.*)$")
    if flag and add[flag] == nil then args[#args + 1] = flag .. "=" .. rewrite_value(v, root, ports, address)
    elseif not flag then args[#args + 1] = cmd[i] end
  end
  for flag, v in pairs(add) do args[#args + 1] = flag .. "=" .. v end
  table.sort(args)
  return args
end

local function flag(cmd, name)
  for _, a in ipairs(cmd) do
    local v = a:match("^%-%-" .. name:gsub("%-", "%%-") .. "=(.*)$")
    if v then return v end
  end
end

local CP = {}
CP.__index = CP

local function spawn(self, name, exe, args)
  local logf = self.log_dir .. "/" .. name .. ".log"
  local q = { t.q(exe) }
  for _, a in ipairs(args) do q[#q + 1] = t.q(a) end
  local pid = t.must(("%s >%s 2>&1 </dev/null & echo $!"):format(table.concat(q, " "), t.q(logf))):match("%d+")
  self.pids[name] = pid
  self.order[#self.order + 1] = name
  local f = assert(io.open(self.log_dir .. "/pids", "a"))
  f:write(pid, "\n")
  f:close()
  return pid
end

local function alive(pid) return (t.sh(("kill -0 %s 2>/dev/null && ! grep -q '^State:.*Z' /proc/%s/status"):format(pid, pid))) end

function CP.logs(self, name)
  local f = io.open(self.log_dir .. "/" .. name .. ".log", "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- The last lines of every log (for a failed start or a failed test).
function CP.tail(self, n)
  local out = {}
  for _, name in ipairs(self.order) do
    out[#out + 1] = ("==> %s (pid %s, %s)"):format(name, self.pids[name], alive(self.pids[name]) and "running" or "exited")
    out[#out + 1] = select(2, t.sh(("tail -n %d %s"):format(n or 15, t.q(self.log_dir .. "/" .. name .. ".log"))))
  end
  return table.concat(out, "\n")
end

-- Kills every process by PID (TERM, then KILL after 5 s); safe to call twice.
function CP.stop(self)
  if self.stopped then return end
  self.stopped = true
  for i = #self.order, 1, -1 do
    local pid = self.pids[self.order[i]]
    os.execute(("kill %s 2>/dev/null"):format(pid))
  end
  for i = #self.order, 1, -1 do
    local pid = self.pids[self.order[i]]
    for _ = 1, 50 do
      if not alive(pid) then break end
      os.execute("sleep 0.1")
    end
    os.execute(("kill -9 %s 2>/dev/null"):format(pid))
  end
  if self.watchdog then os.execute(("kill %s 2>/dev/null"):format(self.watchdog)) end
end
CP.__close = CP.stop
CP.__gc = CP.stop

-- Kills one component (fault tests) and can start it again with the same command.
function CP.kill(self, name)
  os.execute(("kill -9 %s 2>/dev/null"):format(self.pids[name]))
  -- a loaded machine can take seconds to reap it; a restart before it is gone cannot bind its port
  for _ = 1, 300 do
    if not alive(self.pids[name]) then return end
    os.execute("sleep 0.1")
  end
  error(("%s (pid %s) is still alive 30 s after kill -9"):format(name, self.pids[name]), 2)
end
function CP.restart(self, name)
  local c = self.commands[name]
  spawn(self, name, c.exe, c.args)
  if name == "kube-apiserver" then return self:wait_live(60) end
  return true
end

-- Waits until the API server answers /livez with 200 (nil, why after timeout seconds).
function CP.wait_live(self, timeout)
  local c = assert(kubeconfig.client(self.super_admin_conf, { timeout = 5, retries = 0 }))
  local deadline, why = os.time() + (timeout or 60), "not tried"
  while os.time() < deadline do
    local r, err = c:request("GET", "/livez")
    if r and r.status == 200 then c:close() return true end
    why = r and ("HTTP " .. r.status .. ": " .. r.body:sub(1, 300)) or tostring(err)
    if not alive(self.pids["kube-apiserver"]) then why = "kube-apiserver exited" break end
    os.execute("sleep 0.3")
  end
  c:close()
  return nil, "kube-apiserver not live: " .. why
end

-- What a kubelet does on registration: create its Node object with its own credentials (kubelet.conf,
-- system:node:<name>, allowed by the Node authorizer and NodeRestriction). Existing is fine.
-- Returns the Node as the API server has it.
function CP.register_node(self)
  local c = assert(kubeconfig.client(self.kubelet_conf, { timeout = 10 }))
  local node = { apiVersion = "v1", kind = "Node", metadata = { name = self.node_name, labels = {
    ["kubernetes.io/hostname"] = self.node_name, ["kubernetes.io/os"] = "linux", ["kubernetes.io/arch"] = "amd64",
    ["beta.kubernetes.io/os"] = "linux", ["beta.kubernetes.io/arch"] = "amd64" } } }
  local got, err = c:json("POST", "/api/v1/nodes", node)
  if not got and err.status == 409 then got, err = c:json("GET", "/api/v1/nodes/" .. self.node_name) end
  c:close()
  if not got then return nil, err end
  return got
end

-- What a kubelet posts for each static Pod it runs: the mirror Pod <name>-<node> in kube-system,
-- bound to the node, marked by kubernetes.io/config.mirror, owned by the Node (when its uid is
-- known), with the default NoExecute toleration of static Pods. The annotations are rewritten as
-- the flags were, so etcd's kubeadm.kubernetes.io/etcd.advertise-client-urls is where that etcd
-- really listens (kubeadm's control-plane join finds the members there). Existing is fine.
function CP.post_mirror_pods(self, node_uid)
  local c = assert(kubeconfig.client(self.super_admin_conf, { timeout = 10 }))
  for _, n in ipairs(M.COMPONENTS) do
    local pod, _, text = assert(read_manifest(self.root, n))
    local m = pod.metadata or {}
    pod.metadata = m
    local name = (m.name or n) .. "-" .. self.node_name
    local hash = t.must("printf %s " .. t.q(text) .. " | md5sum"):match("^(%x+)")
    local ann = {}
    for k, v in pairs(m.annotations or {}) do
      ann[k] = type(v) == "string" and rewrite_value(v, nil, self.ports, self.address) or v
    end
    ann["kubernetes.io/config.hash"], ann["kubernetes.io/config.mirror"] = hash, hash
    ann["kubernetes.io/config.source"] = "file"
    m.annotations, m.name, m.namespace = ann, name, "kube-system"
    m.creationTimestamp = nil
    if node_uid then
      m.ownerReferences = { { apiVersion = "v1", kind = "Node", name = self.node_name, uid = node_uid, controller = true } }
    end
    pod.spec.nodeName = self.node_name
    local tol = pod.spec.tolerations or setmetatable({}, yaml.array_mt)
    tol[#tol + 1] = { operator = "Exists", effect = "NoExecute" }
    pod.spec.tolerations = tol
    pod.status = nil
    -- right after /livez, kube-system or the system-node-critical PriorityClass may not be there yet
    local deadline, ok, err = os.time() + 30
    repeat
      ok, err = c:json("POST", "/api/v1/namespaces/kube-system/pods", pod)
      if ok or err.status == 409 then break end
      os.execute("sleep 0.5")
    until os.time() >= deadline
    if not ok and err.status ~= 409 then
      c:close()
      return nil, ("mirror Pod %s: %s"):format(name, tostring(err))
    end
  end
  c:close()
  return true
end

-- kboot init writes the kubeconfigs before the manifests; a control-plane join writes kubelet.conf
-- before etcd's manifest, the last one. All of them are needed.
local function wait_files(root, timeout)
  local deadline = os.time() + timeout
  local want = { "etc/kubernetes/admin.conf", "etc/kubernetes/kubelet.conf" }
  for _, n in ipairs(M.COMPONENTS) do want[#want + 1] = "etc/kubernetes/manifests/" .. n .. ".yaml" end
  repeat
    local all = true
    for _, f in ipairs(want) do
      if not t.sh("test -s " .. t.q(root .. "/" .. f)) then all = false end
    end
    if all then return true end
    os.execute("sleep 0.2")
  until os.time() >= deadline
  return nil, "static Pod manifests and kubeconfigs did not appear in " .. root .. "/etc/kubernetes"
end

-- kubelet.conf after a TLS bootstrap names its certificate by the node's path
-- (/var/lib/kubelet/pki/kubelet-client-current.pem): a copy that names it under the sandbox.
local function kubelet_conf(root, log_dir)
  local conf = root .. "/etc/kubernetes/kubelet.conf"
  local text = t.read(conf)
  if not text:find(" /var/lib/kubelet/", 1, true) then return conf end
  conf = log_dir .. "/kubelet.conf"
  t.write(conf, (text:gsub(" /var/lib/kubelet/", " " .. root .. "/var/lib/kubelet/")))
  return conf
end

local function node_name_of(kc)
  local n = kc.user:match("^system:node:(.+)$")
  if n or not kc.cert_pem then return n end
  local cert = require("kboot.pki").load_cert(kc.cert_pem)
  return cert and (cert:info().subject.cn or ""):match("^system:node:(.+)$")
end

-- Starts the control plane. opts: root (required), address = the node's own address ("127.0.0.1":
-- the API server binds it; on another address only 127.0.0.1's ports are moved, see rewrite_value),
-- kubelet_port (10248), kubelet_healthz = false to serve no kubelet healthz (a second node's
-- KubeletConfiguration is the cluster's: the first node's harness serves that port),
-- node_name (from kubelet.conf), wait_manifests = seconds to wait for kboot (running in the
-- background) to write the manifests and kubeconfigs, register_node = false to leave the Node
-- object to the test, mirror_pods = false to post no mirror Pods. Returns cp, or raises with the logs.
function M.start(opts)
  local root = assert(opts.root, "controlplane.start: root is required")
  local why = M.missing()
  if why then error(why) end
  if opts.wait_manifests then assert(wait_files(root, opts.wait_manifests)) end
  local bin = M.bin_dir()
  local self = setmetatable({ root = root, pids = {}, order = {}, commands = {}, log_dir = root .. "/cp-logs",
                              bin = bin, address = opts.address or "127.0.0.1" }, CP)
  t.must("mkdir -p " .. t.q(self.log_dir) .. " && : >" .. t.q(self.log_dir .. "/pids"))
  self.admin_conf = root .. "/etc/kubernetes/admin.conf"
  -- a joined control-plane node has no super-admin.conf (kubeadm writes it on init only)
  self.super_admin_conf = root .. "/etc/kubernetes/super-admin.conf"
  if not t.sh("test -e " .. t.q(self.super_admin_conf)) then self.super_admin_conf = self.admin_conf end
  local kc = assert(kubeconfig.current(assert(kubeconfig.load(self.admin_conf))))
  self.server = kc.server
  self.api_port = tonumber(kc.server:match(":(%d+)$"))
  self.kubelet_conf = kubelet_conf(root, self.log_dir)
  local kubelet = assert(kubeconfig.current(assert(kubeconfig.load(self.kubelet_conf))))
  self.node_name = opts.node_name or node_name_of(kubelet) or "kbnode"
  self.kubelet_port = opts.kubelet_port or 10248
  self.kubectl = ("%s --kubeconfig %s"):format(t.q(bin .. "/kubectl"), t.q(self.admin_conf))
  self.kubectl_super = ("%s --kubeconfig %s"):format(t.q(bin .. "/kubectl"), t.q(self.super_admin_conf))

  -- a watchdog: when this test process (the shell's parent) dies, kill whatever pids lists
  self.watchdog = t.must(("(p=$PPID; while kill -0 $p 2>/dev/null; do sleep 1; done; kill -9 $(cat %s) 2>/dev/null)"
    .. " >/dev/null 2>&1 </dev/null & echo $!"):format(t.q(self.log_dir .. "/pids"))):match("%d+")

  local cmds = {}
  for _, n in ipairs(M.COMPONENTS) do cmds[n] = select(2, assert(read_manifest(root, n))) end
  -- every well-known port a manifest names on 127.0.0.1, moved to a free one (the API server's is
  -- already free: see plan)
  local ports = {}
  for _, known in ipairs({ 2379, 2380, 2381, 10257, 10259 }) do ports[known] = port() end
  self.ports = ports
  self.etcd_port = ports[2379]
  local adds = {
    etcd = {},
    ["kube-apiserver"] = { ["--bind-address"] = self.address },
    ["kube-controller-manager"] = { ["--secure-port"] = tostring(ports[10257]) },
    ["kube-scheduler"] = { ["--secure-port"] = tostring(ports[10259]) },
  }
  t.must("mkdir -p " .. t.q(root .. "/var/lib/etcd") .. " && chmod 700 " .. t.q(root .. "/var/lib/etcd"))
  local ok, err = pcall(function()
    for _, n in ipairs(M.COMPONENTS) do
      local exe = n == "etcd" and "/usr/bin/etcd" or (bin .. "/" .. n)
      local args = rewrite(cmds[n], root, ports, adds[n], self.address)
      self.commands[n] = { exe = exe, args = args }
      spawn(self, n, exe, args)
    end
    if opts.kubelet_healthz ~= false then
      -- the kubelet's healthz endpoint, which wait-control-plane polls
      local py = "import http.server as h\n" ..
        "class H(h.BaseHTTPRequestHandler):\n" ..
        "  def do_GET(s):\n" ..
        "    ok = s.path == '/healthz'\n" ..
        "    s.send_response(200 if ok else 404); s.send_header('Content-Type','text/plain'); s.end_headers()\n" ..
        "    s.wfile.write(b'ok' if ok else b'not found')\n" ..
        "  def log_message(s, *a): pass\n" ..
        ("h.HTTPServer(('127.0.0.1', %d), H).serve_forever()\n"):format(self.kubelet_port)
      spawn(self, "kubelet-healthz", "python3", { "-c", py })
      self.kubelet_healthz = ("http://127.0.0.1:%d/healthz"):format(self.kubelet_port)
    end
    assert(self:wait_live(opts.timeout or 90))
    local node
    if opts.register_node ~= false then node = assert(self:register_node()) end
    if opts.mirror_pods ~= false then assert(self:post_mirror_pods(node and node.metadata.uid)) end
  end)
  if not ok then
    local tail = self:tail(20)
    self:stop()
    error(("control plane did not start: %s\n%s"):format(tostring(err), tail), 2)
  end
  log.debug("controlplane", "API server %s, etcd %s:%d, kubelet healthz %s", self.server, self.address,
            self.etcd_port, tostring(self.kubelet_healthz))
  return self
end

M.flag = flag
-- The usual test set-up: kboot's offline init phases (no preflight) into plan.root, then the
-- control plane from what they wrote. Returns cp, or nil and why (init's output or start's error).
function M.init_offline_and_start(plan)
  local ok, out = t.sh(t.q(t.bin) .. " init " .. plan.init_args .. " --skip-phases=preflight --offline")
  if not ok then return nil, "kboot init failed:\n" .. out end
  local good, cp = pcall(M.start, plan)
  if not good then return nil, cp end
  return cp
end

return M

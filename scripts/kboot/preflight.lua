-- Pre-flight checks of `kboot init`, named as kubeadm names them so --ignore-preflight-errors lists
-- carry over. They check the node, so every file is read through kboot.fs: a test gives fake /proc
-- and /etc files under --root. Each failure says what to run to fix it, naming the path the admin
-- acts on (under --root, the sandbox's: ctx.fs.path).
local M = {}

local function read(ctx, path)
  local data = ctx.fs.read(path)
  return data
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local function exists(ctx, path) return ctx.fs.exists(path) end

-- the host path of node path p, for messages
local function shown(ctx, p) return ctx.fs.path(p) end

-- Listening TCP ports from /proc/net/tcp and tcp6 (state 0A = LISTEN), or nil when unreadable.
function M.listening_ports(ctx)
  local ports, any = {}, false
  for _, f in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
    local data = read(ctx, f)
    if data then
      any = true
      for line in data:gmatch("[^\n]+") do
        local port, st = line:match("^%s*%d+:%s+%x+:(%x+)%s+%x+:%x+%s+(%x%x)")
        if port and st == "0A" then ports[tonumber(port, 16)] = true end
      end
    end
  end
  return any and ports or nil
end

local function binary_in_path(ctx, name)
  local path = os.getenv("PATH") or ""
  if path == "" then path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" end
  for dir in path:gmatch("[^:]+") do
    if dir:sub(1, 1) == "/" and exists(ctx, dir .. "/" .. name) then return dir .. "/" .. name end
  end
end

-- The checks, in kubeadm's order where kubeadm has them. Each returns nil (ok), or
-- "error"|"warning", message, fix.
function M.checks(ctx)
  local list = {}
  local sandbox = ctx.fs.root() ~= "/"
  -- a sandbox root without /proc: say so once instead of one warning per /proc file
  local noproc = sandbox and not exists(ctx, "/proc")
  local function add(name, fn, proc)
    if not (proc and noproc) then list[#list + 1] = { name = name, fn = fn } end
  end
  add("Proc", function()
    if noproc then
      return "warning", ("no /proc under the sandbox root %s: CPU, memory, swap, port and sysctl checks skipped"):format(ctx.fs.root()),
        "put fake /proc files under the root to exercise them"
    end
  end)
  local cluster, node = ctx.cluster, ctx.node

  add("IsPrivilegedUser", function()
    if sandbox then return nil end
    local status = read(ctx, "/proc/self/status") or ""
    local uid = status:match("\nUid:%s+(%d+)")
    if uid and uid ~= "0" then
      return "error", "user is not running as root", ("run kboot %s as root (sudo), or give --root DIR to work in a sandbox directory"):format(ctx.flow or "init")
    end
  end)
  local cp = ctx.role == "control-plane" -- a worker runs the kubelet only: no CPU minimum, no control-plane ports
  if cp then add("NumCPU", function()
    local info = read(ctx, "/proc/cpuinfo")
    if not info then return "warning", "cannot read /proc/cpuinfo to count CPUs", "check that /proc is mounted" end
    local n = 0
    for _ in info:gmatch("\nprocessor%s*:") do n = n + 1 end
    if info:match("^processor%s*:") then n = n + 1 end
    if n < 2 then
      return "error", ("the number of available CPUs %d is less than the required 2"):format(n), "give this machine at least 2 CPUs"
    end
  end, true) end
  add("Mem", function()
    local info = read(ctx, "/proc/meminfo")
    local kb = info and tonumber(info:match("MemTotal:%s+(%d+)"))
    if not kb then return "warning", "cannot read MemTotal from /proc/meminfo", "check that /proc is mounted" end
    local mb = kb // 1024
    if mb < 1700 then
      return "error", ("the system RAM (%d MB) is less than the minimum 1700 MB"):format(mb), "give this machine at least 1700 MB of memory"
    end
  end, true)
  add("Swap", function()
    local swaps = read(ctx, "/proc/swaps")
    if not swaps then return "warning", "cannot read /proc/swaps", "check that /proc is mounted" end
    local n = 0
    for line in swaps:gmatch("[^\n]+") do if not line:match("^Filename") then n = n + 1 end end
    if n > 0 then
      return "error", "swap is on: the kubelet fails to start with swap unless failSwapOn is false",
        "run 'swapoff -a' and remove swap entries from /etc/fstab (or set failSwapOn: false in a KubeletConfiguration)"
    end
  end, true)
  local ports = cp and { ctx.endpoint.port, 10259, 10257 } or {}
  for _, p in ipairs(ports) do
    add("Port-" .. p, function()
      local l = M.listening_ports(ctx)
      if not l then return "warning", "cannot read /proc/net/tcp to check port " .. p, "check that /proc is mounted" end
      if l[p] then return "error", ("Port %d is in use"):format(p), ("stop what listens on it (see: ss -ltnp 'sport = :%d')"):format(p) end
    end, true)
  end
  for _, f in ipairs(cp and { "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd" } or {}) do
    local path = "/etc/kubernetes/manifests/" .. f .. ".yaml"
    add("FileAvailable-" .. path:gsub("/", "-"), function()
      if exists(ctx, path) then
        return "error", shown(ctx, path) .. " already exists", "run 'kboot reset' (or 'kubeadm reset') to remove the old control plane, or ignore this check to reuse it"
      end
    end)
  end
  add("Port-10250", function()
    local l = M.listening_ports(ctx)
    if l and l[10250] then return "error", "Port 10250 is in use", "stop the running kubelet: systemctl stop kubelet" end
  end, true)
  if cp and cluster.etcd["local"] then
    for _, p in ipairs({ 2379, 2380 }) do
      add("Port-" .. p, function()
        local l = M.listening_ports(ctx)
        if l and l[p] then return "error", ("Port %d is in use"):format(p), ("stop what listens on it (see: ss -ltnp 'sport = :%d')"):format(p) end
      end, true)
    end
    local dir = cluster.etcd["local"].dataDir
    add("DirAvailable-" .. dir:gsub("/", "-"), function()
      local names = ctx.fs.list(dir)
      if names and #names > 0 then
        return "error", shown(ctx, dir) .. " is not empty", "remove the old etcd data (rm -rf " .. shown(ctx, dir) .. ") if this node is not a cluster member"
      end
    end)
  end
  add("FileContent--proc-sys-net-bridge-bridge-nf-call-iptables", function()
    local v = read(ctx, "/proc/sys/net/bridge/bridge-nf-call-iptables")
    if not v then
      return "error", shown(ctx, "/proc/sys/net/bridge/bridge-nf-call-iptables") .. " does not exist",
        "run 'modprobe br_netfilter' (and add br_netfilter to /etc/modules-load.d/k8s.conf)"
    end
    if trim(v) ~= "1" then
      return "error", shown(ctx, "/proc/sys/net/bridge/bridge-nf-call-iptables") .. " contents are not set to 1",
        "run 'sysctl -w net.bridge.bridge-nf-call-iptables=1' (persist it in /etc/sysctl.d/k8s.conf)"
    end
  end, true)
  add("FileContent--proc-sys-net-ipv4-ip_forward", function()
    local v = read(ctx, "/proc/sys/net/ipv4/ip_forward")
    if not v then return "error", shown(ctx, "/proc/sys/net/ipv4/ip_forward") .. " does not exist", "check that /proc is mounted" end
    if trim(v) ~= "1" then
      return "error", shown(ctx, "/proc/sys/net/ipv4/ip_forward") .. " contents are not set to 1",
        "run 'sysctl -w net.ipv4.ip_forward=1' (persist it in /etc/sysctl.d/k8s.conf)"
    end
  end, true)
  add("CRI", function()
    local sock = node.criSocket:gsub("^unix://", "")
    local st = ctx.fs.stat(sock)
    if not st then
      return "error", ("container runtime is not running: socket %s does not exist"):format(shown(ctx, sock)),
        "install and start the container runtime: systemctl enable --now containerd"
    end
    if st.type ~= "other" then
      return "error", ("container runtime socket %s is not a socket"):format(shown(ctx, sock)), "restart the container runtime: systemctl restart containerd"
    end
  end)
  add("FileExisting-kubelet", function()
    if not binary_in_path(ctx, "kubelet") then
      return "error", "kubelet not found in system path", "install the kubelet package (apt-get install kubelet) or put the kubelet binary in /usr/bin"
    end
  end)
  add("FileExisting-crictl", function()
    if not binary_in_path(ctx, "crictl") then
      return "warning", "crictl not found in system path", "install cri-tools (crictl) to inspect containers"
    end
  end)
  add("CgroupDriver", function()
    local want = ctx.kubelet and ctx.kubelet.cgroupDriver or "systemd"
    if not node.criSocket:find("containerd", 1, true) then return nil end
    local conf = read(ctx, "/etc/containerd/config.toml")
    local path = shown(ctx, "/etc/containerd/config.toml")
    if not conf then
      return "warning", path .. " does not exist: containerd uses the cgroupfs driver, the kubelet " .. want,
        "run 'containerd config default > " .. path .. "', set SystemdCgroup = true, then 'systemctl restart containerd'"
    end
    local v
    for line in conf:gmatch("[^\n]+") do
      local x = line:match("^%s*SystemdCgroup%s*=%s*(%a+)")
      if x and not line:match("^%s*#") then v = x end
    end
    local have = v == "true" and "systemd" or "cgroupfs"
    if have ~= want then
      local fix = want == "systemd"
        and "set 'SystemdCgroup = true' in " .. path .. " and run 'systemctl restart containerd'"
        or "set 'SystemdCgroup = false' in " .. path .. " and run 'systemctl restart containerd', or set cgroupDriver: systemd in the KubeletConfiguration"
      return "error", ("containerd uses the %s cgroup driver but the kubelet is configured for %s"):format(have, want), fix
    end
  end)
  add("SELinux", function()
    local v = read(ctx, "/sys/fs/selinux/enforce")
    if v and trim(v) == "1" then
      return "error", "SELinux is enforcing: control-plane containers cannot read their host paths",
        "run 'setenforce 0' and set SELINUX=permissive in /etc/selinux/config"
    end
  end)
  return list
end

-- The names --ignore-preflight-errors takes, besides all: kboot's checks (those named after a port
-- or path as the family's pattern), then kubeadm's that kboot does not run, so that a kubeadm list
-- carries over. A name matches in any case, as in kubeadm.
M.CHECKS = { "Proc", "IsPrivilegedUser", "NumCPU", "Mem", "Swap", "Port-N", "FileAvailable--PATH",
             "DirAvailable--PATH", "FileContent--PATH", "CRI", "FileExisting-NAME", "CgroupDriver", "SELinux" }
local FAMILIES = { "^port%-%d+$", "^fileavailable%-%-.", "^diravailable%-%-.", "^filecontent%-%-.", "^fileexisting%-." }
local KUBEADM_ONLY = { "Firewalld", "Hostname", "HTTPProxy", "HTTPProxyCIDR", "SystemVerification", "KubernetesVersion",
  "KubeletVersion", "ExternalEtcdVersion", "ExternalEtcdClientCertificates", "ImagePull", "Service-Kubelet",
  "Service-Docker", "IsDockerSystemdCheck", "ControlPlaneNodesReady", "CoreDNSUnsupportedPlugins", "CoreDNSMigration",
  "CreateJob", "RequiredIPVSKernelModulesAvailable" }

-- known_check(name) -> bool: a name --ignore-preflight-errors accepts
function M.known_check(name)
  local n = name:lower()
  if n == "all" then return true end
  for _, f in ipairs(FAMILIES) do if n:match(f) then return true end end
  for _, list in ipairs({ M.CHECKS, KUBEADM_ONLY }) do
    for _, c in ipairs(list) do if c:lower() == n then return true end end
  end
  return false
end

local function ignored_set(ctx)
  local set = {}
  for _, n in ipairs(ctx.node.ignorePreflightErrors or {}) do set[n:lower()] = true end
  return set
end

-- check(ctx) -> { errors = {{name,msg,fix}}, warnings = {...} } (no output)
function M.check(ctx)
  local ignore = ignored_set(ctx)
  local res = { errors = {}, warnings = {} }
  for _, c in ipairs(M.checks(ctx)) do
    local level, msg, fix = c.fn()
    if level then
      local item = { name = c.name, msg = msg, fix = fix }
      if level == "error" and not ignore[c.name:lower()] and not ignore.all then
        res.errors[#res.errors + 1] = item
      else
        res.warnings[#res.warnings + 1] = item
      end
    end
  end
  return res
end

-- The `preflight` phase: prints kubeadm-style lines; fails listing every fatal problem with its fix.
function M.run(ctx)
  local log = ctx.log
  log.info("preflight", "Running pre-flight checks")
  local res = M.check(ctx)
  for _, w in ipairs(res.warnings) do
    log.warn("preflight", "%s: %s (fix: %s)", w.name, w.msg, w.fix or "-")
  end
  if #res.errors == 0 then return true end
  local lines, names = { "[preflight] Some fatal errors occurred:" }, {}
  for _, e in ipairs(res.errors) do
    lines[#lines + 1] = ("\t[ERROR %s]: %s\n\t\tfix: %s"):format(e.name, e.msg, e.fix or "-")
    names[#names + 1] = e.name
  end
  lines[#lines + 1] = ("[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=%s`"):format(table.concat(names, ","))
  return nil, table.concat(lines, "\n")
end

return M

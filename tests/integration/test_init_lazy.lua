-- What an offline `kboot init` loads and syncs: no online, preflight or addon module is required
-- (phases.lua loads them on first use), their help still comes from the modules, a module that
-- fails to load gives its phase an error that keeps its file:line, and the whole run makes its
-- files durable with two syncfs calls and no fsync (one kboot.fs batch, the lock directory inside it).
local lu = require("luaunit")
local t = require("testlib")

local CONFIG = [[
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.0.0.10
nodeRegistration:
  name: node-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
encryptionAlgorithm: ECDSA-P256
]]

-- runs the embedded `init` entry script with args, then prints the loaded kboot modules
local PROBE = [[
local f
for i = 1, #package.searchers do
  local l = package.searchers[i]("init")
  if type(l) == "function" then f = l break end
end
local ok, err = pcall(f, ...)
local names = {}
for k in pairs(package.loaded) do if k:match("^kboot%.") then names[#names + 1] = k end end
table.sort(names)
print("LOADED " .. table.concat(names, " "))
if not ok then io.stderr:write(tostring(err), "\n") os.exit(1) end
]]

local dir, cfg, probe
local function setup()
  dir = t.tmpdir()
  cfg = dir .. "/kubeadm.yaml"
  probe = dir .. "/probe.lua"
  t.write(cfg, CONFIG)
  t.write(probe, PROBE)
end

TestInitLazy = {}
function TestInitLazy:setUp() setup() end

function TestInitLazy:test_offline_init_loads_no_online_module()
  local root = dir .. "/root"
  t.must("mkdir " .. t.q(root))
  local ok, out = t.sh(("%s %s --root %s --config %s --skip-phases=preflight --offline 2>&1"):format(
    t.q(t.bin), t.q(probe), t.q(root), t.q(cfg)))
  lu.assertTrue(ok, out)
  local loaded = out:match("LOADED ([^\n]*)")
  lu.assertNotNil(loaded, out)
  -- the offline phases' modules were loaded and ran ...
  lu.assertStrContains(" " .. loaded .. " ", " kboot.certs ")
  lu.assertStrContains(" " .. loaded .. " ", " kboot.components.kubelet ")
  lu.assertNotNil(io.open(root .. "/etc/kubernetes/manifests/kube-apiserver.yaml"))
  -- ... the others were not
  for _, m in ipairs({ "kboot.online.wait_control_plane", "kboot.online.upload_config", "kboot.online.upload_certs",
                       "kboot.online.mark_control_plane", "kboot.online.bootstrap_token", "kboot.online.kubelet_finalize",
                       "kboot.online.show_join", "kboot.preflight", "kboot.components.coredns",
                       "kboot.components.kube_proxy" }) do
    lu.assertNotStrContains(" " .. loaded .. " ", " " .. m .. " ")
  end
end

function TestInitLazy:test_help_comes_from_the_modules()
  -- the module's own wording, which differs from phases.lua's fallback text
  local ok, out = t.kboot("init --help")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "Upload control-plane certificates to the kubeadm-certs Secret")
  lu.assertStrContains(out, "Install the CoreDNS addon")
end

function TestInitLazy:test_a_module_that_fails_to_load_gives_a_clear_phase_error()
  local scripts = dir .. "/scripts"
  t.must("mkdir -p " .. t.q(scripts .. "/kboot"))
  t.write(scripts .. "/kboot/preflight.lua", 'error("broken on purpose")\n')
  local ok, out = t.kboot("--scripts " .. t.q(scripts) .. " init --help")
  lu.assertTrue(ok, out) -- help still lists the phase, with the built-in text
  lu.assertStrContains(out, "Run pre-flight checks")
  local root = dir .. "/root"
  t.must("mkdir " .. t.q(root))
  local ok2, out2, code = t.kboot(("--scripts %s init phase preflight --root %s --config %s 2>&1"):format(
    t.q(scripts), t.q(root), t.q(cfg)))
  lu.assertFalse(ok2)
  lu.assertEquals(code, 1)
  -- the phase's line, with the override's file:line kept
  lu.assertStrContains(out2, "error execution phase preflight: ")
  lu.assertStrContains(out2, "kboot/preflight.lua:1: broken on purpose")
end

function TestInitLazy:test_offline_init_syncs_twice_and_never_fsyncs()
  if not t.sh("strace -f -qq -o /dev/null true") then lu.skip("strace cannot trace here") end
  local root, trace = dir .. "/root", dir .. "/trace"
  t.must("mkdir " .. t.q(root))
  -- LeakSanitizer cannot run under ptrace
  t.must(("ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -o %s -e trace=fsync,fdatasync,syncfs %s init --root %s --config %s --skip-phases=preflight --offline >/dev/null 2>&1"):format(
    t.q(trace), t.q(t.bin), t.q(root), t.q(cfg)))
  local text = t.read(trace)
  local n = {}
  for call in text:gmatch("%f[%w](%w+)%(") do n[call] = (n[call] or 0) + 1 end
  lu.assertEquals(n.fsync or 0, 0, text)
  lu.assertEquals(n.fdatasync or 0, 0, text)
  lu.assertEquals(n.syncfs, 2, text)
  lu.assertNotNil(io.open(root .. "/etc/kubernetes/pki/ca.key"))
end

os.exit(lu.LuaUnit.run("-v"))

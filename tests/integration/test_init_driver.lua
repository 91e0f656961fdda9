-- `kboot init` as a command: bad configs rejected with the field path and nothing written, --dry-run
-- writes nothing and prints every file (keys hidden), re-run idempotence (tree hash, no key
-- regenerated), SIGKILL at several points then a re-run completes with no truncated file (checked
-- with openssl and the YAML decoder), --skip-phases, `init phase NAME`, exit codes.
local lu = require("luaunit")
local t = require("testlib")

local DATA = t.src .. "/tests/data/config"
-- phases to skip: preflight, the online ones (no control plane runs here; test_e2e_init covers them)
local ONLINE = "wait-control-plane,upload-config,upload-certs,mark-control-plane,bootstrap-token,kubelet-finalize,addon,show-join-command"
local function SKIP() return "preflight," .. ONLINE end

local function fast_config(dir)
  local f = dir .. "/kubeadm.yaml"
  t.write(f, [[
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
nodeRegistration:
  name: node-a
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.31.2
encryptionAlgorithm: ECDSA-P256
]])
  return f
end

local function init(root, args)
  return t.kboot("init --root " .. t.q(root) .. " " .. (args or ""))
end

local function files(root)
  local out = {}
  for line in t.must("cd " .. t.q(root) .. " && find . -type f | sort"):gmatch("[^\n]+") do out[#out + 1] = line:sub(2) end
  return out
end

-- Every file kboot wrote is complete: PEM parses with openssl, YAML/kubeconfig decode, env has its line.
local function assert_complete(root)
  local yaml = require("kboot.yaml")
  for _, f in ipairs(files(root)) do
    local host = root .. f
    if f:match("%.kboot%-tmp") or f:match("/%.[^/]*tmp") then
      -- a temp file left by the kill: never at a target name, so it is not a truncated target
    elseif f:match("%.crt$") then t.must("openssl x509 -noout -in " .. t.q(host))
    elseif f:match("%.key$") then t.must("openssl pkey -noout -in " .. t.q(host))
    elseif f:match("%.pub$") then t.must("openssl pkey -pubin -noout -in " .. t.q(host))
    elseif f:match("%.yaml$") or f:match("%.conf$") then
      local doc, err = yaml.decode(t.read(host))
      lu.assertNotNil(doc, f .. ": " .. tostring(err))
      lu.assertEquals(type(doc), "table", f)
    elseif f:match("kubeadm%-flags%.env$") then
      lu.assertStrMatches(t.read(host), 'KUBELET_KUBEADM_ARGS=".*"\n', nil, nil, f)
    end
  end
end

TestInitDriver = {}
function TestInitDriver:tearDown() t.cleanup() end

function TestInitDriver:test_help_lists_phases_and_usage_errors()
  local ok, out = t.kboot("init --help")
  lu.assertTrue(ok, out)
  for _, p in ipairs({ "preflight", "certs/ca", "kubeconfig/admin", "etcd/local", "control-plane/apiserver", "kubelet-start",
                       "--apiserver-advertise-address", "--pod-network-cidr", "--skip-phases", "--root" }) do
    lu.assertStrContains(out, p)
  end
  local code
  ok, out, code = t.kboot("init --no-such-flag")
  lu.assertEquals(code, 2)
  ok, out, code = t.kboot("init phase")
  lu.assertEquals(code, 2)
  lu.assertStrContains(out, "kboot init phase NAME")
  ok, out, code = t.kboot("init phase --help")
  lu.assertEquals(code, 0)
  lu.assertStrContains(out, "certs/etcd-ca")
  ok, out, code = t.kboot("init phase --dry-run certs")
  lu.assertEquals(code, 2)
  lu.assertStrContains(out, "give the phase NAME before the options")
  ok, out, code = t.kboot("init --root /nonexistent/kboot-root")
  lu.assertEquals(code, 2)
  lu.assertStrContains(out, "--root /nonexistent/kboot-root")
end

function TestInitDriver:test_bad_configs_write_nothing()
  local root = t.tmpdir()
  t.write(root .. "/marker", "x")
  local before = t.tree_hash(root)
  local n = 0
  for name in t.must("ls " .. t.q(DATA .. "/bad")):gmatch("[^\n]+") do
    local path = DATA .. "/bad/" .. name
    local want = t.read(path):match("^# expect: ([^\n]+)")
    local ok, out, code = init(root, "--config " .. t.q(path))
    lu.assertFalse(ok, name)
    lu.assertEquals(code, 2, name .. ": " .. out)
    lu.assertStrContains(out, want, false)
    lu.assertStrContains(out, "nothing was written")
    n = n + 1
  end
  lu.assertTrue(n >= 30)
  lu.assertEquals(t.tree_hash(root), before)
  -- bad flags too
  for _, args in ipairs({ "--service-cidr 10.96.0.0/40", "--pod-network-cidr 10.96.0.0/16", "--token nope",
                          "--certificate-key zz", "--apiserver-bind-port http", "--kubernetes-version v1.2" }) do
    local ok, out, code = init(root, args .. " --apiserver-advertise-address 10.0.0.1")
    lu.assertEquals(code, 2, args .. ": " .. out)
    lu.assertStrContains(out, "Configuration.")
  end
  lu.assertEquals(t.tree_hash(root), before)
  local ok, out, code = init(root, "--config " .. t.q(root .. "/missing.yaml"))
  lu.assertEquals(code, 2)
  lu.assertStrContains(out, "cannot read config file")
end

function TestInitDriver:test_dry_run_writes_nothing_and_prints_every_file()
  local dir = t.tmpdir()
  local cfg = fast_config(dir)
  local root = t.tmpdir()
  t.write(root .. "/marker", "x")
  local before = t.tree_hash(root)
  local ok, out = t.sh(t.q(t.bin) .. " init --root " .. t.q(root) .. " --config " .. t.q(cfg) ..
    " --skip-phases " .. SKIP() .. " --dry-run 2>/dev/null")
  lu.assertTrue(ok, out)
  lu.assertEquals(t.tree_hash(root), before)
  lu.assertNotStrContains(out, "PRIVATE KEY")
  lu.assertStrContains(out, "<private key>")
  -- its log says what it would do, not "Writing" or "Creating"
  local _, log = t.sh(t.q(t.bin) .. " init --root " .. t.q(root) .. " --config " .. t.q(cfg) ..
    " --skip-phases " .. SKIP() .. " --dry-run 2>&1 >/dev/null")
  lu.assertStrContains(log, '[kubeconfig] dry run: would write "admin.conf" kubeconfig file')
  lu.assertStrContains(log, "[kubelet-start] dry run: would write " .. root .. "/var/lib/kubelet/config.yaml")
  lu.assertStrContains(log, '[control-plane] dry run: would create static Pod manifest for "kube-apiserver"')
  lu.assertStrContains(log, "[etcd] dry run: would create static Pod manifest for local etcd")
  lu.assertNotStrContains(log, "Writing")
  lu.assertNotStrContains(log, "Creating")
  -- the same run for real: every file it writes was announced by the dry run, with its mode
  local real = t.tmpdir()
  local ok2, out2 = init(real, "--config " .. t.q(cfg) .. " --skip-phases " .. SKIP() .. "")
  lu.assertTrue(ok2, out2)
  local n = 0
  for _, f in ipairs(files(real)) do
    if not f:match("%.kboot%.lock$") then
      local mode = t.must("stat -c %a " .. t.q(real .. f)):gsub("%s+", "")
      lu.assertStrContains(out, ("--- %s (mode %04d,"):format(f, tonumber(mode)), false)
      n = n + 1
    end
  end
  lu.assertTrue(n >= 25, "files written: " .. n)
  -- certificates are printed in full, keys (also inside kubeconfigs) are not
  lu.assertStrContains(out, "-----BEGIN CERTIFICATE-----")
  lu.assertStrContains(out, "client-key-data: <private key>")
end

function TestInitDriver:test_rerun_is_idempotent_and_keeps_keys()
  local dir = t.tmpdir()
  local cfg = fast_config(dir)
  local root = t.tmpdir()
  local ok, out = init(root, "--config " .. t.q(cfg) .. " --skip-phases " .. SKIP() .. "")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "[kubelet-start]")
  local h1 = t.tree_hash(root)
  ok, out = init(root, "--config " .. t.q(cfg) .. " --skip-phases " .. SKIP() .. "")
  lu.assertTrue(ok, out)
  lu.assertEquals(t.tree_hash(root), h1)
  assert_complete(root)
end

function TestInitDriver:test_offline_writes_the_node_files_and_contacts_no_server()
  local cfg = fast_config(t.tmpdir())
  local root = t.tmpdir()
  -- no API server exists here: without --offline, wait-control-plane would wait its 4 minutes
  local ok, out = init(root, "--config " .. t.q(cfg) .. " --skip-phases preflight --offline")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "This node's files are written")
  lu.assertNotStrContains(out, "[wait-control-plane]")
  lu.assertNotStrContains(out, "API requests")
  assert_complete(root)
end

function TestInitDriver:test_sigkill_then_rerun_completes()
  local dir = t.tmpdir()
  local cfg = fast_config(dir)
  local args = " --config " .. t.q(cfg) .. " --skip-phases " .. SKIP()
  -- a clean run first: its file list is the goal, its duration spreads the kill points over a run
  local clean = t.tmpdir()
  local t0 = tonumber(t.must("date +%s.%N"))
  local ok, out = init(clean, args)
  lu.assertTrue(ok, out)
  local took = tonumber(t.must("date +%s.%N")) - t0
  local want = files(clean)
  local root = t.tmpdir()
  local partial = 0
  for _, frac in ipairs({ 0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95 }) do
    t.sh(("timeout -s KILL %.3f %s init --root %s%s"):format(math.max(0.005, took * frac), t.q(t.bin), t.q(root), args))
    assert_complete(root)
    local n = #files(root)
    if n > 0 and n < #want then partial = partial + 1 end
    -- start the next attempt from scratch half the time, so kills land in early phases again
    if frac == 0.35 or frac == 0.65 then t.must("rm -rf " .. t.q(root) .. "/etc " .. t.q(root) .. "/var") end
  end
  print(("killed 7 runs (a full run took %.2fs); %d left a partial tree"):format(took, partial))
  ok, out = init(root, args)
  lu.assertTrue(ok, out)
  assert_complete(root)
  local h = t.tree_hash(root)
  ok, out = init(root, args)
  lu.assertTrue(ok, out)
  lu.assertEquals(t.tree_hash(root), h)
  local got = {}
  for _, f in ipairs(files(root)) do if not f:match("tmp") then got[#got + 1] = f end end
  lu.assertEquals(got, want)
end

function TestInitDriver:test_skip_phases_and_phase_subsets()
  local dir = t.tmpdir()
  local cfg = fast_config(dir)
  local root = t.tmpdir()
  local ok, out, code = t.kboot("init phase certs ca --root " .. t.q(root) .. " --config " .. t.q(cfg))
  lu.assertTrue(ok, out)
  lu.assertEquals(files(root), { "/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.key" })
  ok, out = t.kboot("init phase certs/front-proxy-ca --root " .. t.q(root) .. " --config " .. t.q(cfg))
  lu.assertTrue(ok, out)
  lu.assertTrue(t.sh("test -f " .. t.q(root .. "/etc/kubernetes/pki/front-proxy-ca.key")))
  lu.assertFalse(t.sh("test -e " .. t.q(root .. "/etc/kubernetes/pki/apiserver.crt")))
  -- a parent skips all its children; everything else runs
  local r2 = t.tmpdir()
  ok, out = init(r2, "--config " .. t.q(cfg) .. " --skip-phases " .. SKIP() .. ",kubeconfig,etcd,control-plane,kubelet-start")
  lu.assertTrue(ok, out)
  lu.assertTrue(t.sh("test -f " .. t.q(r2 .. "/etc/kubernetes/pki/sa.pub")))
  lu.assertFalse(t.sh("test -e " .. t.q(r2 .. "/etc/kubernetes/admin.conf")))
  lu.assertFalse(t.sh("test -e " .. t.q(r2 .. "/etc/kubernetes/manifests")))
  -- unknown names are usage errors listing the phases; online phases are accepted in --skip-phases
  ok, out, code = init(r2, "--config " .. t.q(cfg) .. " --skip-phases nope --dry-run")
  lu.assertEquals(code, 2)
  lu.assertStrContains(out, 'unknown phase "nope"; phases are: preflight, certs, certs/ca')
  ok, out, code = t.kboot("init phase nope --root " .. t.q(r2))
  lu.assertEquals(code, 2)
  -- an online phase without admin.conf fails with what is missing
  ok, out, code = t.kboot("init phase addon/coredns --root " .. t.q(r2) .. " --config " .. t.q(cfg))
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "error execution phase addon/coredns:")
end

function TestInitDriver:test_preflight_phase_fails_in_empty_sandbox_with_fixes()
  local root = t.tmpdir()
  local ok, out, code = t.kboot("init phase preflight --root " .. t.q(root) .. " --apiserver-advertise-address 10.0.0.1")
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, "error execution phase preflight")
  lu.assertStrContains(out, "[ERROR FileExisting-kubelet]: kubelet not found in system path")
  lu.assertStrContains(out, "fix: ")
  lu.assertStrContains(out, "--ignore-preflight-errors=")
  -- the failed run took the lock and left nothing behind: not even the /etc/kubernetes it made for it
  lu.assertEquals(t.tree_hash(root), t.tree_hash(t.tmpdir()))
  ok, out, code = t.kboot("init --root " .. t.q(root) .. " --apiserver-advertise-address 10.0.0.1 --offline")
  lu.assertEquals(code, 1, out)
  lu.assertEquals(t.tree_hash(root), t.tree_hash(t.tmpdir()))
  -- directories that were there (empty or not) stay
  t.must("mkdir -p " .. t.q(root .. "/etc/kubernetes/manifests"))
  local before = t.tree_hash(root)
  ok, out, code = t.kboot("init --root " .. t.q(root) .. " --apiserver-advertise-address 10.0.0.1 --offline")
  lu.assertEquals(code, 1, out)
  lu.assertEquals(t.tree_hash(root), before)
  ok, out, code = t.kboot("init phase preflight --root " .. t.q(root) .. " --apiserver-advertise-address 10.0.0.1 --ignore-preflight-errors=all")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "FileExisting-kubelet")
end

os.exit(lu.LuaUnit.run("-v"))

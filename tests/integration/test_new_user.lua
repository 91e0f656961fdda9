-- What a new user meets first, each as the command line they type: the exact command, the line it
-- prints, its exit code, and that nothing on disk changed where nothing should (a tree hash of
-- the --root before and after).
local lu = require("luaunit")
local t = require("testlib")
local json = require("cjson")

-- run(args [, env]) -> stdout, stderr, exit code of `kboot ARGS`
local function run(args, env)
  local d = t.tmpdir()
  local _, _, code = t.sh(("%s%s %s >%s 2>%s </dev/null"):format(env and (env .. " ") or "", t.q(t.bin), args,
    t.q(d .. "/out"), t.q(d .. "/err")))
  return t.read(d .. "/out"), t.read(d .. "/err"), code
end

local function lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- stderr is exactly one line; returns it
local function one_line(err)
  local l = lines(err)
  lu.assertEquals(#l, 1, "want one line on stderr:\n" .. err)
  return l[1]
end

-- an empty --root and its hash
local function root()
  local r = t.tmpdir() .. "/root"
  t.must("mkdir " .. t.q(r))
  return r, t.tree_hash(r)
end

local OFFLINE = "--ignore-preflight-errors=all --offline"

-- ECDSA keys, where the keys are not the point: an init costs milliseconds, not RSA's seconds
local FAST_DIR = t.must("mktemp -d /tmp/kboot-test.XXXXXX"):gsub("%s+$", "")
t.write(FAST_DIR .. "/fast.yaml", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\n")
local FAST = "--config " .. t.q(FAST_DIR .. "/fast.yaml")

---------------------------------------------------------------------------------------------------
TestConfigFile = {}
function TestConfigFile:tearDown() t.cleanup() end

function TestConfigFile:test_a_directory_is_one_problem_not_an_internal_error()
  local r, before = root()
  local dir = t.tmpdir()
  local out, err, code = run(("init --root %s --config %s %s"):format(t.q(r), t.q(dir), OFFLINE))
  lu.assertEquals(code, 2)
  lu.assertEquals(out, "")
  lu.assertEquals(err, ("cannot read config file %s: Is a directory\n"
    .. "error: invalid configuration (1 problem(s)); nothing was written\n"):format(dir))
  lu.assertEquals(t.tree_hash(r), before)
  -- `config validate` says the same
  out, err, code = run("config validate --config " .. t.q(dir))
  lu.assertEquals(code, 1)
  lu.assertEquals(out, ("cannot read config file %s: Is a directory\n"):format(dir))
  lu.assertEquals(one_line(err), ("error: %s: 1 problem(s)"):format(dir))
end

function TestConfigFile:test_an_empty_file_warns_and_uses_the_defaults()
  local d = t.tmpdir()
  for _, text in ipairs({ "", "# nothing yet\n", "---\n" }) do
    local r, before = root()
    t.write(d .. "/kubeadm.yaml", text)
    local out, err, code = run(("init phase control-plane --root %s --config %s --dry-run"):format(t.q(r), t.q(d .. "/kubeadm.yaml")))
    lu.assertEquals(code, 0, err)
    lu.assertEquals(lines(err)[1], ("[config] warning: %s/kubeadm.yaml holds no documents: using defaults"):format(d))
    lu.assertStrContains(out, "--- /etc/kubernetes/manifests/kube-apiserver.yaml")
    lu.assertEquals(t.tree_hash(r), before)
  end
  -- join and reset read their files the same way
  local r, before = root()
  local _, err, code = run(("reset --root %s -f --dry-run --config %s"):format(t.q(r), t.q(d .. "/kubeadm.yaml")))
  lu.assertEquals(code, 0, err)
  lu.assertEquals(lines(err)[1], ("[config] warning: %s/kubeadm.yaml holds no documents: using defaults"):format(d))
  lu.assertEquals(t.tree_hash(r), before)
end

---------------------------------------------------------------------------------------------------
TestIgnorePreflightErrors = {}
function TestIgnorePreflightErrors:tearDown() t.cleanup() end

local CHECKS = "the checks are Proc, IsPrivilegedUser, NumCPU, Mem, Swap, Port-N, FileAvailable--PATH, "
  .. "DirAvailable--PATH, FileContent--PATH, CRI, FileExisting-NAME, CgroupDriver, SELinux (and kubeadm's others), or all"

function TestIgnorePreflightErrors:test_a_name_that_is_no_check_is_a_usage_error()
  local r, before = root()
  local out, err, code = run(("init --root %s --ignore-preflight-errors=bogus --offline"):format(t.q(r)))
  lu.assertEquals(code, 2)
  lu.assertEquals(out, "")
  lu.assertEquals(one_line(err), 'error: init: unknown preflight check "bogus" in --ignore-preflight-errors; '
    .. CHECKS .. " (see 'kboot init --help')")
  lu.assertEquals(t.tree_hash(r), before)
  -- from the config file: its path is named
  local cfg = t.tmpdir() .. "/kubeadm.yaml"
  t.write(cfg, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  ignorePreflightErrors: [Swap, NumCPUs]\n")
  _, err, code = run(("init --root %s --config %s --offline"):format(t.q(r), t.q(cfg)))
  lu.assertEquals(code, 2)
  lu.assertStrContains(one_line(err), 'unknown preflight check "NumCPUs" in InitConfiguration.nodeRegistration.ignorePreflightErrors;')
  lu.assertEquals(t.tree_hash(r), before)
  -- join and reset check theirs too
  _, err, code = run(("join 127.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-unsafe-skip-ca-verification "
    .. "--root %s --ignore-preflight-errors=bogus"):format(t.q(r)))
  lu.assertEquals(code, 2)
  lu.assertStrContains(one_line(err), 'error: join: unknown preflight check "bogus" in --ignore-preflight-errors;')
  _, err, code = run(("reset --root %s -f --ignore-preflight-errors=bogus"):format(t.q(r)))
  lu.assertEquals(code, 2)
  lu.assertStrContains(one_line(err), 'error: reset: unknown preflight check "bogus" in --ignore-preflight-errors;')
  lu.assertEquals(t.tree_hash(r), before)
end

function TestIgnorePreflightErrors:test_kboot_and_kubeadm_names_in_any_case_and_all()
  local r, before = root()
  -- a kubeadm list carries over: SystemVerification is kubeadm's, numcpu and Port-6443 kboot's
  local _, err, code = run(("init --root %s --dry-run --offline " .. FAST .. " "
    .. "--ignore-preflight-errors=SystemVerification,numcpu,Port-6443,FileAvailable--etc-kubernetes-manifests-etcd.yaml,"
    .. "FileExisting-crictl,CRI,FileExisting-kubelet,CgroupDriver"):format(t.q(r)))
  lu.assertEquals(code, 0, err)
  _, err, code = run(("init --root %s --dry-run %s %s"):format(t.q(r), FAST, OFFLINE))
  lu.assertEquals(code, 0, err)
  lu.assertEquals(t.tree_hash(r), before)
end

---------------------------------------------------------------------------------------------------
TestVerbosity = {}
function TestVerbosity:tearDown() t.cleanup() end

function TestVerbosity:test_kubeadms_v_flag()
  local r = root()
  -- --v=5 (what kubeadm's own errors ask for) is -v: each phase's duration, the summary
  for _, args in ipairs({ "init --v=5", "init -v=5", "--v=5 init", "init -v" }) do
    local _, err, code = run(("%s --root %s --dry-run %s %s"):format(args, t.q(r), FAST, OFFLINE))
    lu.assertEquals(code, 0, err)
    lu.assertNotNil(err:match("\n%[certs/ca%] done in %d[%d.]* m?s\n"), args .. ":\n" .. err)
  end
  -- --v=0 is the default
  local _, err, code = run(("init --v=0 --root %s --dry-run %s %s"):format(t.q(r), FAST, OFFLINE))
  lu.assertEquals(code, 0, err)
  lu.assertNotStrContains(err, "done in")
  -- and a traceback with an error, as kubeadm's stack trace
  _, err, code = run(("init --v=5 --root %s --config /nonexistent.yaml"):format(t.q(r)))
  lu.assertEquals(code, 2)
  lu.assertStrContains(err, "stack traceback:")
  -- not a number: one line
  local out
  out, err, code = run("init --v=x")
  lu.assertEquals(code, 2)
  lu.assertEquals(out, "")
  lu.assertEquals(one_line(err), "error: init: invalid value \"x\" for --v: want a number (kubeadm's verbosity, 0 to 10) (see 'kboot init --help')")
  _, err, code = run("--v=x init")
  lu.assertEquals(code, 2)
  lu.assertEquals(one_line(err), "kboot: --v=x: want a number (the verbosity, 0 to 10)")
end

---------------------------------------------------------------------------------------------------
TestLogOutput = {}
function TestLogOutput:tearDown() t.cleanup() end

function TestLogOutput:test_the_run_ends_with_a_summary_line()
  local r = root()
  local _, err, code = run(("init --root %s %s %s"):format(t.q(r), FAST, OFFLINE))
  lu.assertEquals(code, 0, err)
  local l = lines(err)
  lu.assertStrMatches(l[#l], "%[init%] 22 phases run, 10 skipped, in %d[%d.]* m?s")
  -- a phase alone, and a dry run: their own counts
  _, err, code = run(("init phase certs --root %s --dry-run %s"):format(t.q(r), FAST))
  lu.assertEquals(code, 0, err)
  l = lines(err)
  lu.assertStrMatches(l[#l], "%[init%] 11 phases run, 0 skipped, in %d[%d.]* m?s")
end

function TestLogOutput:test_json_lines()
  local r = root()
  for _, how in ipairs({ { "--log-format=json " }, { "--log-format json " }, { "", "KBOOT_LOG_FORMAT=json" } }) do
    local out, err, code = run(("init %s--root %s --dry-run %s %s"):format(how[1], t.q(r), FAST, OFFLINE), how[2])
    lu.assertEquals(code, 0, err)
    lu.assertStrContains(out, "--- /etc/kubernetes/pki/ca.crt")   -- the dry run's report stays text
    local l = lines(err)
    lu.assertTrue(#l > 20, err)
    for _, line in ipairs(l) do
      local ok, obj = pcall(json.decode, line)
      lu.assertTrue(ok, "not a JSON line: " .. line)
      lu.assertNotNil(obj.level, line)
      lu.assertNotNil(obj.msg, line)
      lu.assertEquals(type(obj.ts), "number", line)
    end
    local last = json.decode(l[#l])
    lu.assertEquals(last.phase, "init")
    lu.assertStrMatches(last.msg, "22 phases run, 10 skipped, in .*")
  end
  -- a usage error is a JSON line too
  local out, err, code = run("init --log-format=json --bogus")
  lu.assertEquals(code, 2)
  lu.assertEquals(out, "")
  local obj = json.decode(one_line(err))
  lu.assertEquals(obj.level, "error")
  lu.assertEquals(obj.msg, "init: unknown option --bogus (see 'kboot init --help')")
  -- an unknown format
  _, err, code = run("init --log-format=xml")
  lu.assertEquals(code, 2)
  lu.assertEquals(one_line(err), "error: init: invalid value \"xml\" for --log-format: want text or json (see 'kboot init --help')")
  _, err, code = run("init", "KBOOT_LOG_FORMAT=xml")
  lu.assertEquals(code, 2)
  lu.assertEquals(one_line(err), "kboot: KBOOT_LOG_FORMAT=xml: want text or json")
end

-- on a terminal (script(1) gives the command a pty): the problem lines are red like their summary;
-- NO_COLOR turns every colour off
function TestLogOutput:test_colour_on_a_terminal_and_NO_COLOR()
  if not t.sh("command -v script") then lu.skip("no script(1)") end
  local d = t.tmpdir()
  t.write(d .. "/bad.yaml", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nbogus: 1\nnope: 2\n")
  local cmd = ("%s init --root %s --config %s --dry-run"):format(t.q(t.bin), t.q(d), t.q(d .. "/bad.yaml"))
  local function on_tty(env)
    local _, out = t.sh(("%s script -qec %s /dev/null"):format(env, t.q(cmd)))
    return out
  end
  local out = on_tty("")
  lu.assertStrContains(out, '\27[31mClusterConfiguration.bogus: unknown field "bogus"\27[0m')
  lu.assertStrContains(out, '\27[31mClusterConfiguration.nope: unknown field "nope"\27[0m')
  lu.assertStrContains(out, "\27[31merror: invalid configuration (2 problem(s)); nothing was written\27[0m")
  out = on_tty("NO_COLOR=1")
  lu.assertNotStrContains(out, "\27[")
  lu.assertStrContains(out, 'ClusterConfiguration.bogus: unknown field "bogus"')
  -- an empty NO_COLOR is no NO_COLOR (no-color.org)
  lu.assertStrContains(on_tty("NO_COLOR="), "\27[31m")
end

---------------------------------------------------------------------------------------------------
TestHelp = {}
function TestHelp:tearDown() t.cleanup() end

function TestHelp:test_two_word_command_groups_have_help()
  for _, c in ipairs({ { "config images", "list" }, { "config print", "init-defaults" } }) do
    local out, err, code = run(c[1] .. " --help")
    lu.assertEquals(code, 0, err)
    lu.assertEquals(err, "")
    lu.assertStrContains(out, ("Usage: kboot %s COMMAND [options]"):format(c[1]))
    lu.assertStrMatches(out, (".*\n  %s  +%%S.*"):format(c[2]:gsub("%-", "%%-")))
  end
  local out, err, code = run("config images bogus")
  lu.assertEquals(code, 2)
  lu.assertEquals(out, "")
  lu.assertEquals(one_line(err), "error: config images: unknown command \"bogus\" (see 'kboot config images --help')")
end

function TestHelp:test_a_group_without_its_command_prints_its_help_and_says_why()
  for _, c in ipairs({ { "init phase", "phase NAME", "the phases" }, { "join phase", "phase NAME", "the phases" },
                       { "reset phase", "phase NAME", "the phases" }, { "config", "COMMAND", "the commands" },
                       { "config images", "COMMAND", "the commands" }, { "token", "COMMAND", "the commands" },
                       { "certs", "COMMAND", "the commands" }, { "kubeconfig", "COMMAND", "the commands" } }) do
    local out, err, code = run(c[1])
    lu.assertEquals(code, 2, c[1])
    lu.assertStrContains(out, "Usage: kboot " .. c[1])
    lu.assertEquals(one_line(err), ("error: %s: no %s given; %s are listed above"):format(c[1],
      c[2] == "COMMAND" and "COMMAND" or "phase NAME", c[3]))
  end
end

function TestHelp:test_a_phase_name_without_the_phase_word()
  local r, before = root()
  local out, err, code = run(("init certs --root %s"):format(t.q(r)))
  lu.assertEquals(code, 2)
  lu.assertEquals(out, "")
  lu.assertEquals(one_line(err), "error: init: unexpected argument \"certs\"; to run that phase alone: kboot init phase certs (see 'kboot init --help')")
  _, err, code = run(("init control-plane/apiserver --root %s"):format(t.q(r)))
  lu.assertEquals(code, 2)
  lu.assertStrContains(one_line(err), "kboot init phase control-plane/apiserver")
  _, err, code = run(("reset cleanup-node --root %s -f"):format(t.q(r)))
  lu.assertEquals(code, 2)
  lu.assertStrContains(one_line(err), "kboot reset phase cleanup-node")
  lu.assertEquals(t.tree_hash(r), before)
end

-- every row of init's phase list has its description, parents too
function TestHelp:test_every_phase_row_has_a_description()
  for _, cmd in ipairs({ "init", "join", "reset" }) do
    local out, _, code = run(cmd .. " --help")
    lu.assertEquals(code, 0)
    local section = out:match("\nCommands:\n(.-)\n\n")
    lu.assertNotNil(section, out)
    local n = 0
    for row in section:gmatch("[^\n]+") do
      n = n + 1
      lu.assertNotNil(row:match("^  +%S+  +%S"), cmd .. ": a row without a description: " .. row)
    end
    lu.assertTrue(n >= 3, cmd)
  end
  local out = run("init --help")
  lu.assertStrContains(out, "\n  certs ")
  lu.assertStrMatches(out, ".*\n  certs +Certificate generation\n.*")
end

-- `kboot --help`: the real commands, each with its line (no demo placeholder)
function TestHelp:test_kboot_help_lists_the_commands_with_a_summary_each()
  local out, err, code = run("--help")
  lu.assertEquals(code, 0, err)
  local section = out:match("Built%-in commands:\n(.-)\n\n")
  lu.assertNotNil(section, out)
  local names = {}
  for row in section:gmatch("[^\n]+") do
    local name, summary = row:match("^  (%S+) +(%S.*)$")
    lu.assertNotNil(name, "a command without a summary: " .. row)
    names[#names + 1] = name
  end
  local have = " " .. table.concat(names, " ") .. " "
  for _, c in ipairs({ "certs", "config", "init", "join", "kubeconfig", "repl", "reset", "token", "version" }) do
    lu.assertStrContains(have, " " .. c .. " ")
  end
  lu.assertNotStrContains(out, "demo")
end

-- Every `kboot ...` command the scripts point at exists: `kboot WORDS --help` works. Each quoted
-- text of the scripts (a message, a usage line, an example) that starts with "kboot " is a command
-- line, whose words up to the first flag, placeholder or argument are the command; plus those a
-- message puts together with string.format.
function TestHelp:test_commands_named_in_messages_exist()
  local files = t.must(("find %s -name '*.lua'"):format(t.q(t.src .. "/scripts")))
  local seen, cmds = {}, {}
  for _, c in ipairs({ "init phase etcd/local", "init phase control-plane", "join phase etcd-join",
                       "join phase control-plane-prepare/control-plane" }) do
    seen[c] = true; cmds[#cmds + 1] = c
  end
  for f in files:gmatch("[^\n]+") do
    for line in t.read(f):gmatch("[^\n]+") do
      if not line:match("^%s*%-%-") then
        for cmd in line:gmatch("[\"'`](kboot [^\"'`]+)[\"'`]") do
          local words = {}
          for w in cmd:gmatch("%S+") do
            if w:match("^%-") or w:match("[%%<%[%.:]") or w:match("%u") or w == "..." then break end
            words[#words + 1] = w
          end
          local c = table.concat(words, " ", 2)
          if #words >= 2 and words[2] ~= "help" and not seen[c] then seen[c] = true; cmds[#cmds + 1] = c end
        end
      end
    end
  end
  table.sort(cmds)
  lu.assertTrue(#cmds >= 20, table.concat(cmds, "\n"))
  for _, c in ipairs(cmds) do
    local _, err, code = run(c .. " --help")
    lu.assertEquals(code, 0, ("a message points at `kboot %s`, which does not exist: %s"):format(c, err))
  end
end

---------------------------------------------------------------------------------------------------
TestShowJoinCommand = {}
function TestShowJoinCommand:tearDown() t.cleanup() end

local function offline_node(port)
  local r = root()
  local _, err, code = run(("init --root %s --apiserver-advertise-address 127.0.0.1 --apiserver-bind-port %d --node-name n1 %s %s")
    :format(t.q(r), port, FAST, OFFLINE))
  lu.assertEquals(code, 0, err)
  return r
end

function TestShowJoinCommand:test_no_api_server_is_said_at_once()
  local port = t.free_port()
  local r = offline_node(port)
  local before = t.tree_hash(r)
  local t0 = t.now_ms()
  local out, err, code = run(("init phase show-join-command --root %s"):format(t.q(r)))
  local ms = t.now_ms() - t0
  lu.assertEquals(code, 0, err)
  lu.assertTrue(ms < 10000, ("took %.0f ms"):format(ms))
  lu.assertStrContains(out, ("kboot join 127.0.0.1:%d --token <no bootstrap token: run 'kboot token create'> \\\n"
    .. "\t--discovery-token-ca-cert-hash sha256:"):format(port))
  local l = lines(err)
  lu.assertStrContains(l[2], "[show-join-command] warning: cannot list the bootstrap tokens: ")
  lu.assertStrContains(l[2], "Couldn't connect")
  lu.assertStrContains(l[2], "the commands below carry a placeholder for the token (see 'kboot token list', 'kboot token create')")
  lu.assertEquals(t.tree_hash(r), before)
  -- a token given on the command line is used as it is, without asking
  out, err, code = run(("init phase show-join-command --root %s --token abcdef.0123456789abcdef"):format(t.q(r)))
  lu.assertEquals(code, 0, err)
  lu.assertStrContains(out, "--token abcdef.0123456789abcdef \\\n")
  lu.assertNotStrContains(err, "warning")
end

function TestShowJoinCommand:test_the_clusters_token_when_the_api_answers()
  local r = offline_node(t.free_port())
  local pki = r .. "/etc/kubernetes/pki"
  local api = require("fake_api").start({ tls = { cert_pem = t.read(pki .. "/apiserver.crt"),
    key_pem = t.read(pki .. "/apiserver.key"), ca_pem = t.read(pki .. "/ca.crt") } })
  local admin = r .. "/etc/kubernetes/admin.conf"
  t.write(admin, (t.read(admin):gsub("server: https://127%.0%.0%.1:%d+", "server: https://127.0.0.1:" .. api.port)))
  local tokens = require("kboot.tokens")
  local k = api:kube()
  assert(k:create(tokens.secret({ token = "xyzabc.0123456789abcdef", ttl = 3600, usages = { "signing", "authentication" },
    groups = { tokens.DEFAULT_GROUP } }, os.time())))
  assert(k:create(tokens.secret({ token = "signon.0123456789abcdef", ttl = 0, usages = { "signing" }, groups = {} }, os.time())))
  api:forget()
  local before = t.tree_hash(r)
  local out, err, code = run(("init phase show-join-command --root %s"):format(t.q(r)))
  lu.assertEquals(code, 0, err)
  lu.assertStrContains(out, ("kboot join 127.0.0.1:%d --token xyzabc.0123456789abcdef \\\n"):format(api.port))
  lu.assertStrContains(err, "[show-join-command] Using the cluster's bootstrap token xyzabc\n")
  lu.assertEquals(api:writes(), {})
  lu.assertEquals(t.tree_hash(r), before)
  api:stop()
end

---------------------------------------------------------------------------------------------------
TestFailedRuns = {}
function TestFailedRuns:tearDown() t.cleanup() end

function TestFailedRuns:test_a_failed_run_leaves_the_tree_as_it_was()
  -- a preflight failure on a fresh node: no lock, no empty directory
  local r, before = root()
  local _, err, code = run(("init --root %s --offline"):format(t.q(r)))
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "error: error execution phase preflight:")
  lu.assertEquals(t.tree_hash(r), before)
  -- a certificate that no longer matches its spec: the files before it stay, no lock is left
  local _
  _, err, code = run(("init --root %s %s %s"):format(t.q(r), FAST, OFFLINE))
  lu.assertEquals(code, 0, err)
  before = t.tree_hash(r)
  _, err, code = run(("init --root %s %s %s --apiserver-cert-extra-sans=new.example"):format(t.q(r), FAST, OFFLINE))
  lu.assertEquals(code, 1)
  lu.assertStrContains(lines(err)[#lines(err)], "error: error execution phase certs/apiserver: existing certificate")
  lu.assertEquals(t.tree_hash(r), before)
  lu.assertNil(io.open(r .. "/etc/kubernetes/.kboot.lock"))
end

function TestFailedRuns:test_a_held_lock_says_what_to_do()
  local r = root()
  t.must("mkdir -p " .. t.q(r .. "/etc/kubernetes"))
  local lock = r .. "/etc/kubernetes/.kboot.lock"
  t.write(lock, "4242\n")
  local before = t.tree_hash(r)
  -- another process holds it (flock(1) takes the same flock(2) lock kboot does)
  local pid = t.must(("flock %s sleep 30 >/dev/null 2>&1 </dev/null & echo $!"):format(t.q(lock))):match("%d+")
  for _ = 1, 100 do
    if not t.sh(("flock -n %s true"):format(t.q(lock))) then break end
    os.execute("sleep 0.05")
  end
  local want = ("error: another kboot (pid 4242) is running on this node and holds %s: wait for it to finish, "
    .. "then run this again (a lock left by a kboot that was killed is free: there is nothing to remove)"):format(lock)
  local results = {}
  for _, args in ipairs({ "init --root %s " .. FAST .. " " .. OFFLINE, "reset --root %s -f", "certs renew all --root %s" }) do
    local out, err, code = run(args:format(t.q(r)))
    results[#results + 1] = { out, err, code }
  end
  os.execute("kill " .. pid)
  for _, res in ipairs(results) do
    lu.assertEquals(res[3], 1, res[2])
    lu.assertEquals(res[1], "")
    lu.assertEquals(lines(res[2])[#lines(res[2])], want)
  end
  lu.assertEquals(t.tree_hash(r), before)
end

-- a user who may not write where kboot must: what to do, nothing written
function TestFailedRuns:test_a_directory_this_user_cannot_write()
  if not t.sh("[ $(id -u) = 0 ] && command -v setpriv") then lu.skip("needs root and setpriv(1) to run as nobody") end
  local r, before = root()
  t.must("chmod 755 " .. t.q(r) .. " " .. t.q(r:match("^(.*)/")))
  -- (no --config: FAST's directory is root's own; the lock is taken before any key is made)
  local ok, out, code = t.sh(("setpriv --reuid=65534 --regid=65534 --clear-groups %s init --root %s %s 2>&1 >/dev/null")
    :format(t.q(t.bin), t.q(r), OFFLINE))
  if code == 126 or code == 127 then lu.skip("nobody cannot run " .. t.bin) end
  lu.assertFalse(ok)
  lu.assertEquals(code, 1)
  lu.assertEquals(one_line(out), ("error: cannot create %s/etc/kubernetes: cannot create directory /etc (%s/etc): "
    .. "Permission denied (run kboot as root, or give --root a directory this user may write to)"):format(r, r))
  lu.assertEquals(t.tree_hash(r), before)
end

---------------------------------------------------------------------------------------------------
TestTokenCreateDryRun = {}
function TestTokenCreateDryRun:tearDown() t.cleanup() end

function TestTokenCreateDryRun:test_prints_the_secret_once_and_needs_no_kubeconfig()
  local r, before = root()
  local out, err, code = run(("token create abcdef.0123456789abcdef --dry-run --root %s"):format(t.q(r)))
  lu.assertEquals(code, 0, err)
  lu.assertEquals(one_line(err), "[dryrun] Would create Secret kube-system/bootstrap-token-abcdef")
  local _, n = out:gsub("\nkind: Secret\n", "")
  lu.assertEquals(n, 1, out)
  lu.assertStrContains(out, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bootstrap-token-abcdef\n")
  lu.assertStrContains(out, "\n---\nabcdef.0123456789abcdef\n")
  lu.assertEquals(t.tree_hash(r), before)
  -- the join command needs the kubeconfig's endpoint and CA: without one, one line
  out, err, code = run(("token create --dry-run --print-join-command --root %s"):format(t.q(r)))
  lu.assertEquals(code, 1)
  lu.assertEquals(out, "")
  lu.assertStrContains(one_line(err), "error: kubeconfig /etc/kubernetes/admin.conf: cannot read")
  lu.assertEquals(t.tree_hash(r), before)
end

local rc = lu.LuaUnit.run("-v")
os.execute("rm -rf " .. t.q(FAST_DIR))
os.exit(rc)

-- `kboot token`: bad tokens, TTLs, usages, groups and arguments are usage errors (exit 2) found
-- before any kubeconfig is read or any request sent; `generate` and the help work offline.
local lu = require("luaunit")
local t = require("testlib")

-- A kubeconfig that does not exist: reaching it means the arguments were accepted.
local NOCONF = "--kubeconfig /nonexistent/kboot-test/admin.conf"

local function usage(args, want)
  local ok, out, code = t.kboot("token " .. args .. " " .. NOCONF)
  lu.assertFalse(ok, args)
  lu.assertEquals(code, 2, args .. ": " .. out)
  lu.assertStrContains(out, want)
  lu.assertNotStrContains(out, "nonexistent") -- failed before the kubeconfig was read
  return out
end

TestTokenCli = {}

function TestTokenCli:test_bad_input_is_usage_error()
  local out = usage("create abcdef.0123456789ABCDEF", "invalid TOKEN: ")
  lu.assertNotStrContains(out, "0123456789ABCDEF") -- the secret part is not echoed
  usage("create abcdef0123456789abcdef", "[a-z0-9]{6}.[a-z0-9]{16}")
  usage("create --ttl 3days", 'invalid --ttl: invalid duration "3days"')
  usage("create --ttl -1h", "negative")
  usage("create --usages signing,sign", "invalid bootstrap token usage string: sign, valid usage options: signing,authentication")
  usage("create --groups system:masters", 'bootstrap group "system:masters" is invalid')
  usage("create --usages signing --groups system:bootstrappers:ci", 'token groups cannot be specified unless --usages includes "authentication"')
  usage("create --certificate-key abc --print-join-command", "invalid --certificate-key")
  usage("create --certificate-key " .. ("a"):rep(64), "cannot use --certificate-key without --print-join-command")
  usage("create a b", 'unexpected argument "b"')
  usage("create --bogus", "unknown option --bogus")
  usage("delete", "expected ID|TOKEN...")
  usage("delete abcdef zz", "argument 2: not a token ID")
  usage("list extra", 'unexpected argument "extra"')
  usage("frobnicate", 'unknown command "frobnicate"')
end

-- kubeadm (v1.20 run, v1.31 read) defaults --groups to system:bootstrappers:kubeadm:default-node-token
-- and then refuses a token whose usages lack authentication, given groups or defaulted ones; kboot
-- does too, with one line that says which (the user who gave no --groups is told about the default
-- and the way out kboot has: --groups '')
function TestTokenCli:test_groups_need_the_authentication_usage()
  for _, c in ipairs({
    { "create --usages signing", "--usages signing has no authentication, which the default --groups "
      .. "system:bootstrappers:kubeadm:default-node-token needs (kubeadm refuses it too): add authentication, "
      .. "or give --groups '' for a token that only signs" },
    { "create --usages signing --groups system:bootstrappers:ci,system:bootstrappers:ci2",
      'invalid --groups system:bootstrappers:ci,system:bootstrappers:ci2: token groups cannot be specified unless --usages includes "authentication"' },
  }) do
    local out = usage(c[1], c[2])
    lu.assertEquals(select(2, out:gsub("\n", "")), 1, out) -- one line
  end
end

function TestTokenCli:test_good_input_reaches_the_kubeconfig()
  for _, args in ipairs({ "create", "create abcdef.0123456789abcdef --ttl 0 --usages signing --groups ''", "create --usages ''",
                          "list", "delete abcdef abcdef.0123456789abcdef" }) do
    local ok, out, code = t.kboot("token " .. args .. " " .. NOCONF)
    lu.assertFalse(ok)
    lu.assertEquals(code, 1, args .. ": " .. out)
    lu.assertStrContains(out, "/nonexistent/kboot-test/admin.conf")
    lu.assertStrContains(out, "No such file or directory")
  end
end

function TestTokenCli:test_kubeconfig_climbing_above_the_root_is_a_usage_error()
  local ok, out, code = t.kboot("token list --root /tmp --kubeconfig /etc/../../x.conf")
  lu.assertFalse(ok)
  lu.assertEquals(code, 2, out)
  lu.assertStrContains(out, 'token list: --kubeconfig: "/etc/../../x.conf" climbs above / through ".."')
  lu.assertNotStrContains(out, ".lua:")
end

function TestTokenCli:test_relative_kubeconfig()
  local ok, out, code = t.sh("cd /tmp && " .. t.q(t.bin) .. " token list --kubeconfig kboot-test-none/admin.conf")
  lu.assertFalse(ok)
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, "/tmp/kboot-test-none/admin.conf")
  lu.assertStrContains(out, "No such file or directory")
end

-- A malformed --kubeconfig: exit 1, one line naming the file once and what is wrong in it.
function TestTokenCli:test_malformed_kubeconfig_one_line_naming_it()
  local d = t.tmpdir()
  local head = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: "
  local ctx = "\ncontexts:\n- name: c\n  context: {cluster: c}\ncurrent-context: c\n"
  local cases = {
    { "dir", nil, "Is a directory" },
    { "not-yaml", "clusters: [", "yaml: line " },
    { "scalar", "5\n", "not a YAML mapping" },
    { "no-context", "apiVersion: v1\nkind: Config\n", "no current-context" },
    { "no-server", head .. "{}" .. ctx, 'cluster "c": missing server' },
    { "bad-base64", head .. "{server: 'https://127.0.0.1:1', certificate-authority-data: '!!!'}" .. ctx,
      'cluster "c".certificate-authority-data: invalid base64' },
  }
  for _, c in ipairs(cases) do
    local path = d .. "/" .. c[1]
    if c[2] then t.write(path, c[2]) else t.must("mkdir " .. t.q(path)) end
    local ok, out, code = t.kboot("token list --kubeconfig " .. t.q(path))
    lu.assertFalse(ok, c[1])
    lu.assertEquals(code, 1, c[1] .. ": " .. out)
    lu.assertEquals(select(2, out:gsub("\n", "")), 1, c[1] .. ": " .. out)
    lu.assertStrContains(out, "error: kubeconfig " .. path .. ": ", false, c[1])
    lu.assertEquals(select(2, out:gsub(path:gsub("%p", "%%%0"), "")), 1, c[1] .. ": the path once: " .. out)
    lu.assertStrContains(out, c[3], false, c[1])
  end
end

function TestTokenCli:test_generate_and_help()
  local seen = {}
  for _ = 1, 5 do
    local out = t.must(t.q(t.bin) .. " token generate")
    lu.assertStrMatches(out, ("[a-z0-9]"):rep(6) .. "%." .. ("[a-z0-9]"):rep(16) .. "\n")
    lu.assertNil(seen[out])
    seen[out] = true
  end
  local out = t.must(t.q(t.bin) .. " token create --help")
  for _, w in ipairs({ "--ttl", "--usages", "--groups", "--description", "--print-join-command", "--kubeconfig", "--dry-run" }) do
    lu.assertStrContains(out, w)
  end
  local ok, _, code = t.kboot("token")
  lu.assertFalse(ok)
  lu.assertEquals(code, 2)
end

os.exit(lu.LuaUnit.run("-v"))

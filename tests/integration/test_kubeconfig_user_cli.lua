-- `kboot kubeconfig user` on a node made by `kboot init --offline`: openssl verifies the client
-- certificate against the cluster CA with CN and O as asked, kubectl reads the kubeconfig, the key
-- type follows the cluster, --output is 0600; every bad input is one line, exit 1 or 2, and leaves
-- the sandbox exactly as it was. (Against a real API server: test_e2e_kubeconfig_user.lua.)
local lu = require("luaunit")
local t = require("testlib")
local yaml = require("kboot.yaml")
local crypto = require("kboot.crypto")

local ROOT = t.tmpdir()
local CONFIG = ROOT .. "/kubeadm.yaml"
t.write(CONFIG, table.concat({
  "apiVersion: kubeadm.k8s.io/v1beta4", "kind: InitConfiguration",
  "localAPIEndpoint: {advertiseAddress: 127.0.0.1, bindPort: 16443}", "nodeRegistration: {name: kcnode}", "---",
  "apiVersion: kubeadm.k8s.io/v1beta4", "kind: ClusterConfiguration", "clusterName: kcu",
  "encryptionAlgorithm: ECDSA-P256", "" }, "\n"))
t.must(("%s init --root %s --config %s --offline --skip-phases=preflight"):format(t.q(t.bin), t.q(ROOT), t.q(CONFIG)))
local CA = ROOT .. "/etc/kubernetes/pki/ca.crt"
local KUBECTL = os.getenv("KBOOT_E2E_BIN") and (os.getenv("KBOOT_E2E_BIN") .. "/kubectl") or "kubectl"
if not t.sh("test -x " .. t.q(KUBECTL)) then KUBECTL = "kubectl" end

local function user(args)
  return t.kboot("kubeconfig user --root " .. t.q(ROOT) .. " " .. args)
end

-- The kubeconfig's client certificate and key into DIR, and what openssl says of them.
local function unpack(text)
  local d = t.tmpdir()
  local kc = assert(yaml.decode(text))
  local u = kc.users[1].user
  t.write(d .. "/c.crt", assert(crypto.unbase64(u["client-certificate-data"])))
  t.write(d .. "/c.key", assert(crypto.unbase64(u["client-key-data"])))
  t.write(d .. "/ca.crt", assert(crypto.unbase64(kc.clusters[1].cluster["certificate-authority-data"])))
  return d, kc
end

local function openssl_checks(d, cn, orgs)
  lu.assertEquals(t.must(("openssl verify -CAfile %s %s"):format(t.q(CA), t.q(d .. "/c.crt"))), d .. "/c.crt: OK\n")
  local subj = t.must(("openssl x509 -noout -subject -nameopt RFC2253 -in %s"):format(t.q(d .. "/c.crt")))
  lu.assertStrContains(subj, "CN=" .. cn)
  for _, o in ipairs(orgs) do lu.assertStrContains(subj, "O=" .. o) end
  local text = t.must(("openssl x509 -noout -text -in %s"):format(t.q(d .. "/c.crt")))
  lu.assertStrContains(text, "TLS Web Client Authentication")
  lu.assertNotStrContains(text, "TLS Web Server Authentication")
  lu.assertStrContains(text, "CA:FALSE")
  -- the key is the certificate's
  local pub_cert = t.must(("openssl x509 -noout -pubkey -in %s"):format(t.q(d .. "/c.crt")))
  local pub_key = t.must(("openssl pkey -pubout -in %s"):format(t.q(d .. "/c.key")))
  lu.assertEquals(pub_key, pub_cert)
  return text
end

TestKubeconfigUserCli = {}

function TestKubeconfigUserCli:test_certificate_user_verified_by_openssl()
  local ok, out = user("--client-name alice --org team-a --org dev")
  lu.assertTrue(ok, out)
  local d, kc = unpack(out)
  lu.assertEquals(t.read(d .. "/ca.crt"), t.read(CA))
  local text = openssl_checks(d, "alice", { "team-a", "dev" })
  lu.assertStrContains(text, "prime256v1") -- the cluster's key type (its CA's, without --config)
  lu.assertStrContains(t.read(d .. "/c.key"), "BEGIN EC PRIVATE KEY")
  -- the server and name of admin.conf, the context kubeadm names
  lu.assertEquals(kc.clusters[1].cluster.server, "https://127.0.0.1:16443")
  lu.assertEquals(kc.clusters[1].name, "kcu")
  lu.assertEquals(kc["current-context"], "alice@kcu")
  lu.assertStrMatches(out, ".*\n\n$") -- the YAML, then a newline (kubeadm's Fprintln)
  -- a year, from five minutes ago
  local dates = t.must(("openssl x509 -noout -startdate -enddate -dateopt iso_8601 -in %s"):format(t.q(d .. "/c.crt")))
  local y1, y2 = dates:match("notBefore=(%d+)"), dates:match("notAfter=(%d+)")
  lu.assertEquals(tonumber(y2) - tonumber(y1), 1, dates)
end

function TestKubeconfigUserCli:test_kubectl_reads_it()
  local ok, out = user("--client-name bob --output " .. t.q("/out/bob.conf"))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "Wrote the kubeconfig of \"bob\" to " .. ROOT .. "/out/bob.conf")
  local path = ROOT .. "/out/bob.conf"
  lu.assertEquals(t.must("stat -c %a " .. t.q(path)), "600\n")
  local view = t.must(("%s config view --kubeconfig %s -o jsonpath='{.users[0].name} {.clusters[0].cluster.server} {.current-context}'")
    :format(t.q(KUBECTL), t.q(path)))
  lu.assertEquals(view, "bob https://127.0.0.1:16443 bob@kcu")
  -- --output again replaces the file whole (a new key)
  local before = t.read(path)
  lu.assertTrue((user("--client-name bob --output /out/bob.conf")))
  lu.assertNotEquals(t.read(path), before)
  lu.assertEquals(t.must("ls -a " .. t.q(ROOT .. "/out")), ".\n..\nbob.conf\n") -- no temp left
end

function TestKubeconfigUserCli:test_config_validity_and_server()
  -- a config without encryptionAlgorithm: kubeadm's default RSA-2048; its endpoint; --validity-period
  local cfg = ROOT .. "/rsa.yaml"
  t.write(cfg, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint: {advertiseAddress: 10.1.2.3, bindPort: 7443}\n"
    .. "nodeRegistration: {name: n}\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n")
  local ok, out = user("--client-name carol --validity-period 2h --config " .. t.q(cfg))
  lu.assertTrue(ok, out)
  local d, kc = unpack(out)
  local text = openssl_checks(d, "carol", {})
  lu.assertStrContains(text, "Public-Key: (2048 bit)")
  lu.assertStrContains(t.read(d .. "/c.key"), "BEGIN RSA PRIVATE KEY")
  lu.assertEquals(kc.clusters[1].cluster.server, "https://10.1.2.3:7443")
  lu.assertEquals(kc.clusters[1].name, "kubernetes")
  -- the 2h lifetime: checkend 1h passes, 3h does not
  lu.assertTrue((t.sh(("openssl x509 -checkend 3600 -noout -in %s"):format(t.q(d .. "/c.crt")))))
  lu.assertFalse((t.sh(("openssl x509 -checkend 10800 -noout -in %s"):format(t.q(d .. "/c.crt")))))
  -- --server wins over everything
  ok, out = user("--client-name dan --server https://vip.example:443")
  lu.assertTrue(ok, out)
  lu.assertEquals(select(2, unpack(out)).clusters[1].cluster.server, "https://vip.example:443")
  -- a long validity works, with kubeadm's warning
  ok, out = user("--client-name eve --validity-period 87600h --output /long/eve.conf")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "longer than the default 8760h0m0s")
end

function TestKubeconfigUserCli:test_token_user()
  local ok, out = user("--client-name ci --token abcdef.0123456789abcdef")
  lu.assertTrue(ok, out)
  local kc = assert(yaml.decode(out))
  lu.assertEquals(kc.users[1], { name = "ci", user = { token = "abcdef.0123456789abcdef" } })
  lu.assertEquals(kc["current-context"], "ci@kcu")
end

-- bad input: one line, the exit code, and the sandbox untouched
local function bad(args, code, want, root)
  root = root or ROOT
  local before = t.tree_hash(root)
  local ok, out, rc = t.kboot("kubeconfig user --root " .. t.q(root) .. " " .. args)
  lu.assertFalse(ok, args)
  lu.assertEquals(rc, code, args .. ": " .. out)
  lu.assertStrContains(out, want)
  local lines = select(2, out:gsub("\n", ""))
  lu.assertEquals(lines, 1, args .. ": not one line:\n" .. out)
  lu.assertEquals(t.tree_hash(root), before, args .. ": something was written")
end

function TestKubeconfigUserCli:test_bad_input_one_line_nothing_written()
  local o = " --output /out/x.conf"
  bad(o, 2, "--client-name is required")
  bad("--client-name ''" .. o, 2, "--client-name is required")
  bad("--client-name a --validity-period 3days" .. o, 2, 'invalid --validity-period: invalid duration "3days"')
  bad("--client-name a --validity-period -1h" .. o, 2, "must be positive")
  bad("--client-name a --validity-period 0" .. o, 2, "must be positive")
  bad("--client-name a --validity-period 30s" .. o, 2, 'invalid --validity-period: "30s" is shorter than a minute (1m0s)')
  bad("--client-name a --validity-period 90.5s" .. o, 2, 'invalid --validity-period: "90.5s" must be whole seconds')
  bad("--client-name a --token t --org x" .. o, 2, "a --token user has none")
  bad("--client-name a --server http://x:1" .. o, 2, 'invalid --server "http://x:1": want https://HOST[:PORT]')
  bad("--client-name a --server https://bad_host" .. o, 2, "IP address or a DNS name")
  bad("--client-name a --bind-role r" .. o, 2, "--bind-role needs --namespace")
  bad("--client-name a --namespace n" .. o, 2, "--namespace is the binding's")
  bad("--client-name a --bind-role r --bind-clusterrole c --namespace n" .. o, 2, "not both")
  bad("--client-name a --bind-role r --namespace Bad_NS" .. o, 2, 'invalid --namespace "Bad_NS"')
  bad("--client-name a --bogus" .. o, 2, "unknown option --bogus")
  bad("--client-name a --output /etc/../../x.conf", 2, '--output: "/etc/../../x.conf" climbs above / through ".."')
  bad("--client-name a --bind-clusterrole view --kubeconfig /a/../../admin.conf" .. o, 2, '--kubeconfig: "/a/../../admin.conf" climbs above / through ".."')
  bad("--client-name a --config /nonexistent/kubeadm.yaml" .. o, 2, "cannot read config file /nonexistent/kubeadm.yaml")
  local cfg = ROOT .. "/bad.yaml"
  t.write(cfg, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncertificatesDir: 7\nbogus: 1\n")
  bad("--client-name a --config " .. t.q(cfg) .. o, 2, 'ClusterConfiguration.bogus: unknown field "bogus"')
  -- a YAML error names the file once
  t.write(cfg, "kind: [")
  bad("--client-name a --config " .. t.q(cfg) .. o, 2, "error: invalid configuration " .. cfg .. ": yaml: line ")
  t.write(cfg, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncertificatesDir: /elsewhere\n")
  bad("--client-name a --config " .. t.q(cfg) .. o, 1, "no cluster CA certificate /elsewhere/ca.crt (" .. ROOT .. "/elsewhere/ca.crt)")
  -- the admin kubeconfig for a binding is read only once everything else is right
  bad("--client-name a --bind-clusterrole view --kubeconfig /nonexistent/admin.conf" .. o, 1,
      "/nonexistent/admin.conf")
  local ok, out, rc = t.kboot("kubeconfig frob")
  lu.assertFalse(ok)
  lu.assertEquals(rc, 2, out)
  lu.assertStrContains(out, 'unknown command "frob"')
end

function TestKubeconfigUserCli:test_external_ca_and_no_ca()
  -- a copy of the node without ca.key: no certificate user, a token user still works
  local ext = t.tmpdir()
  t.must(("cp -a %s/etc %s/"):format(t.q(ROOT), t.q(ext)))
  t.must("rm " .. t.q(ext .. "/etc/kubernetes/pki/ca.key"))
  bad("--client-name a --output /out/a.conf", 1, "no CA key /etc/kubernetes/pki/ca.key (" .. ext .. "/etc/kubernetes/pki/ca.key) (external CA)", ext)
  local ok, out = t.kboot("kubeconfig user --root " .. t.q(ext) .. " --client-name ci --token abc")
  lu.assertTrue(ok, out)
  -- no CA at all (not a control-plane node)
  local empty = t.tmpdir()
  bad("--client-name a --server https://127.0.0.1:6443 --output /out/a.conf", 1,
      "no cluster CA certificate /etc/kubernetes/pki/ca.crt (" .. empty .. "/etc/kubernetes/pki/ca.crt)", empty)
  -- an unreadable admin.conf (a directory in its place) is named, not skipped
  t.must(("mkdir -p %s/etc/kubernetes/admin.conf"):format(t.q(empty)))
  bad("--client-name a --output /out/a.conf", 1, "/etc/kubernetes/admin.conf", empty)
end

function TestKubeconfigUserCli:test_help()
  local out = t.must(t.q(t.bin) .. " kubeconfig user --help")
  for _, w in ipairs({ "--client-name", "--org", "--token", "--validity-period", "--config", "--server", "--output",
                       "--bind-role", "--bind-clusterrole", "--namespace", "--kubeconfig", "--root" }) do
    lu.assertStrContains(out, w)
  end
  lu.assertStrContains(t.must(t.q(t.bin) .. " --help"), "kubeconfig   kubeconfig files for additional users")
end

local rc = lu.LuaUnit.run("-v")
t.cleanup()
os.exit(rc)

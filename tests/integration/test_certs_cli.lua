-- `kboot certs` from the command line, checked with openssl: check-expiration's residual times on a
-- PKI made 10 days ago through the Lua API (some leaves re-signed to expire soon), --expiring-within
-- renewing exactly those and a second run changing nothing, every renewed certificate verified
-- against its CA with the same subject/SANs/usages, a new key and a new validity, the external-CA
-- flow (generate-csr, CSRs signed by openssl, init using them, renew refused), and every bad input
-- one line, exit 1 or 2, the tree unchanged.
local lu = require("luaunit")
local t = require("testlib")
local fs = require("kboot.fs")
local cf = require("certs_fixture")
local lc = require("kboot.certs_lifecycle")

local DAY = 86400

local function certs(root, args)
  return t.kboot("certs " .. args .. " --root " .. t.q(root))
end
local function must_certs(root, args)
  local ok, out, code = certs(root, args)
  if not ok then error(("kboot certs %s: exit %s\n%s"):format(args, tostring(code), out), 2) end
  return out
end

local function sha(path) return (t.must("sha256sum " .. t.q(path)):match("^(%x+)")) end

-- every file under root -> sha256
local function hashes(root)
  local out = {}
  for line in t.must("cd " .. t.q(root) .. " && find . -type f -print0 | xargs -0r sha256sum"):gmatch("[^\n]+") do
    local h, p = line:match("^(%x+)%s+%./(.+)$")
    out[p] = h
  end
  return out
end
local function changed(a, b)
  local out = {}
  for p, h in pairs(b) do if a[p] ~= h then out[#out + 1] = p end end
  for p in pairs(a) do if b[p] == nil then out[#out + 1] = p .. " (removed)" end end
  table.sort(out)
  return out
end

-- The rows of the first table: name -> { expires, residual, ca, external }
local function rows(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local name, exp, res, rest = line:match("^(%S+)%s+(%a%a%a %d%d, %d%d%d%d %d%d:%d%d UTC)%s+(%S+)%s+(.-)%s*$")
    if name then
      local ca, ext = rest:match("^(%S+)%s+(%S+)$")
      out[name] = { expires = exp, residual = res, ca = ca or rest, external = ext or rest }
    end
  end
  return out
end

-- a certificate as openssl sees it: subject, SANs, key usages, public key, dates
local function openssl_view(crt)
  local q = t.q(crt)
  return {
    subject = t.must("openssl x509 -noout -subject -nameopt RFC2253 -in " .. q),
    ext = t.must("openssl x509 -noout -ext subjectAltName,keyUsage,extendedKeyUsage,basicConstraints -in " .. q),
    pubkey = t.must("openssl x509 -noout -pubkey -in " .. q),
    dates = t.must("openssl x509 -noout -dates -in " .. q),
    end_unix = tonumber(t.must("date -u -d \"$(openssl x509 -noout -enddate -in " .. q .. " | cut -d= -f2)\" +%s")),
  }
end

-- The certificate files of every item in a scratch dir (a kubeconfig's client certificate and key
-- decoded to NAME.crt/NAME.key), plus the CA each is to verify against.
local function export(ctx, root, dir)
  local kc = require("kboot.kubeconfig")
  local out = {}
  for _, it in ipairs(lc.items(ctx)) do
    local crt, key
    if it.kind == "file" then
      local c, k = cf.tbl.paths(it.entry, ctx)
      crt, key = root .. c, root .. k
    else
      local cur = assert(kc.current(assert(kc.load(lc.path(ctx, it)))))
      crt, key = dir .. "/" .. it.name .. ".crt", dir .. "/" .. it.name .. ".key"
      t.write(crt, cur.cert_pem)
      t.write(key, cur.key_pem)
    end
    out[it.name] = { crt = crt, key = key, ca = root .. (cf.tbl.paths(cf.tbl.get(it.ca), ctx)) }
  end
  return out
end

TestCertsCli = {}
function TestCertsCli:setUp()
  self.root = t.tmpdir()
  self.now = os.time()
  -- 10 days (and an hour, so a second's difference never changes a day) before now
  self.ctx = cf.build({ root = self.root, now = self.now, age = 10 * DAY + 3600 })
  fs.set_root(self.root)
  self.config = t.tmpdir() .. "/kubeadm.yaml"
  t.write(self.config, cf.config_text())
end
function TestCertsCli:tearDown() fs.set_root("/"); t.cleanup() end

function TestCertsCli:test_help_on_every_subcommand()
  for _, sub in ipairs({ "", "check-expiration", "renew", "renew apiserver", "certificate-key", "generate-csr" }) do
    local ok, out, code = t.kboot("certs " .. sub .. " --help")
    lu.assertTrue(ok, sub .. ": " .. tostring(code) .. out)
    lu.assertStrContains(out, "Usage: kboot certs")
  end
  local _, out = t.kboot("certs renew --help")
  lu.assertStrContains(out, "super-admin.conf")
  lu.assertStrContains(out, "Renew the certificate for serving the Kubernetes API")
  lu.assertStrContains(out, "--expiring-within DURATION")
  local ok, list = t.kboot("--help")
  lu.assertTrue(ok)
  lu.assertStrContains(list, "certs ")
end

function TestCertsCli:test_certificate_key_is_64_hex_and_new_each_time()
  local a = t.must(t.q(t.bin) .. " certs certificate-key")
  local b = t.must(t.q(t.bin) .. " certs certificate-key")
  lu.assertStrMatches(a, "^%x+\n$")
  lu.assertEquals(#a, 65)
  lu.assertNotEquals(a, b)
end

function TestCertsCli:test_check_expiration_residual_times_and_exit_0()
  cf.resign(self.ctx, "apiserver", { not_after = self.now + 30 * DAY + 3600 })
  cf.resign(self.ctx, "admin.conf", { not_after = self.now + 5 * 3600 + 600 })
  cf.resign(self.ctx, "etcd-peer", { not_before = self.now - 400 * DAY, not_after = self.now - 2 * DAY })
  local before = t.tree_hash(self.root)
  local out = must_certs(self.root, "check-expiration --config " .. t.q(self.config))
  local r = rows(out)
  lu.assertEquals(r["apiserver"].residual, "30d")
  lu.assertEquals(r["admin.conf"].residual, "5h")
  lu.assertEquals(r["etcd-peer"].residual, "<invalid>")
  lu.assertEquals(r["front-proxy-client"].residual, "354d") -- made 10 days ago for 365 days
  lu.assertEquals(r["front-proxy-client"].ca, "front-proxy-ca")
  lu.assertEquals(r["super-admin.conf"].external, "no")
  lu.assertEquals(r["ca"].residual, "9y")
  lu.assertEquals(r["apiserver"].expires, os.date("!%b %d, %Y %H:%M UTC", self.now + 30 * DAY + 3600))
  lu.assertNotStrContains(out, "PROBLEM")
  lu.assertEquals(t.tree_hash(self.root), before)
  local j = require("cjson").decode(must_certs(self.root, "check-expiration -o json"))
  for _, c in ipairs(j.certificates) do
    if c.name == "apiserver" then lu.assertTrue(math.abs(c.residualTime - (30 * DAY + 3600)) < 120) end
  end
  lu.assertEquals(#j.certificates, 11)
  lu.assertEquals(#j.certificateAuthorities, 3)
end

function TestCertsCli:test_expiring_within_renews_exactly_those_then_nothing()
  cf.resign(self.ctx, "apiserver", { not_after = self.now + 30 * DAY })
  cf.resign(self.ctx, "admin.conf", { not_after = self.now + 5 * DAY })
  cf.resign(self.ctx, "etcd-server", { not_after = self.now + 91 * DAY + 3600 })
  local before = hashes(self.root)
  local out = must_certs(self.root, "renew all --expiring-within 90d --config " .. t.q(self.config))
  lu.assertEquals(changed(before, hashes(self.root)),
    { "etc/kubernetes/admin.conf", "etc/kubernetes/pki/apiserver.crt", "etc/kubernetes/pki/apiserver.key" })
  lu.assertStrContains(out, "certificate for serving the Kubernetes API renewed\n")
  lu.assertStrContains(out, "etcd-server: 91d left, more than 90d: not renewed\n")
  lu.assertStrContains(out, "scheduler.conf: 354d left, more than 90d: not renewed\n")
  lu.assertStrMatches(out, ".*\nDone renewing certificates%. You must restart the kube%-apiserver, so that it can use the new certificates%.\n$")
  local r = rows(must_certs(self.root, "check-expiration"))
  lu.assertEquals(r["apiserver"].residual, "364d")
  lu.assertEquals(r["admin.conf"].residual, "364d")
  -- the timer's second run the same day
  local tree = t.tree_hash(self.root)
  out = must_certs(self.root, "renew all --expiring-within 90d")
  lu.assertEquals(t.tree_hash(self.root), tree)
  lu.assertStrContains(out, "Nothing was renewed: no certificate expires within 90d.\n")
end

function TestCertsCli:test_openssl_verifies_every_renewed_certificate()
  local scratch = t.tmpdir()
  t.must("mkdir -p " .. t.q(scratch .. "/old"))
  local old = {}
  for name, f in pairs(export(self.ctx, self.root, scratch .. "/old")) do old[name] = openssl_view(f.crt) end
  local out = must_certs(self.root, "renew all")
  lu.assertStrContains(out, "Done renewing certificates. You must restart the kube-apiserver, kube-controller-manager, "
    .. "kube-scheduler and etcd, so that they can use the new certificates.\n")
  t.must("mkdir -p " .. t.q(scratch .. "/new"))
  local now = os.time()
  local n = 0
  for name, f in pairs(export(self.ctx, self.root, scratch .. "/new")) do
    n = n + 1
    lu.assertStrContains(t.must(("openssl verify -CAfile %s %s"):format(t.q(f.ca), t.q(f.crt))), ": OK")
    local v = openssl_view(f.crt)
    lu.assertEquals(v.subject, old[name].subject, name)
    lu.assertEquals(v.ext, old[name].ext, name)
    lu.assertNotEquals(v.pubkey, old[name].pubkey, name .. ": a new key")
    lu.assertNotEquals(v.dates, old[name].dates, name)
    lu.assertTrue(math.abs(v.end_unix - (now + 365 * DAY)) < 300, name .. ": " .. v.dates)
    -- the key beside it (or in the kubeconfig) is the certificate's
    lu.assertEquals(t.must("openssl pkey -pubout -in " .. t.q(f.key)), v.pubkey, name)
  end
  lu.assertEquals(n, 11)
  for _, p in ipairs({ "/etc/kubernetes/pki/apiserver.key", "/etc/kubernetes/admin.conf" }) do
    lu.assertEquals(t.must("stat -c %a " .. t.q(self.root .. p)), "600\n", p)
  end
  lu.assertEquals(t.must("stat -c %a " .. t.q(self.root .. "/etc/kubernetes/pki/apiserver.crt")), "644\n")
  lu.assertNotStrContains(must_certs(self.root, "check-expiration --config " .. t.q(self.config)), "PROBLEM")
  -- certificateValidityPeriod
  t.write(self.config, cf.config_text({ validity = "720h" }))
  must_certs(self.root, "renew front-proxy-client --config " .. t.q(self.config))
  local v = openssl_view(self.root .. "/etc/kubernetes/pki/front-proxy-client.crt")
  lu.assertTrue(math.abs(v.end_unix - (os.time() + 30 * DAY)) < 300, v.dates)
end

-- One line of output, exit `code`, nothing changed under root.
local function refused(root, args, code, want)
  local before = t.tree_hash(root)
  local ok, out, rc = certs(root, args)
  lu.assertFalse(ok, args)
  lu.assertEquals(rc, code, args .. ": " .. out)
  lu.assertStrContains(out, want)
  lu.assertEquals(select(2, out:gsub("\n", "")), 1, args .. ": one line:\n" .. out)
  lu.assertEquals(t.tree_hash(root), before, args .. ": the tree changed")
  return out
end

function TestCertsCli:test_bad_input_is_one_line_and_changes_nothing()
  local r = self.root
  refused(r, "renew bogus", 2, 'unknown certificate "bogus"; want one of admin.conf, apiserver,')
  refused(r, "renew", 2, "expected NAME...|all")
  refused(r, "renew all apiserver", 2, "give NAME... or all, not both")
  refused(r, "renew all --expiring-within 90days", 2, 'invalid --expiring-within "90days"')
  refused(r, "renew all --expiring-within -1d", 2, "negative")
  refused(r, "renew all --expiring-within 90", 2, "a unit is missing")
  refused(r, "check-expiration -o table", 2, 'invalid --output "table"')
  refused(r, "check-expiration --cert-dir pki", 2, "--cert-dir pki: give an absolute path")
  refused(r, "check-expiration --kubeconfig-dir /etc/../../x", 2, '--kubeconfig-dir: "/etc/../../x" climbs above / through ".."')
  refused(r, "renew all --cert-dir /etc/kubernetes/../../../x", 2, '--cert-dir: "/etc/kubernetes/../../../x" climbs above / through ".."')
  refused(r, "check-expiration --config /nonexistent/kubeadm.yaml", 2, "invalid configuration")
  refused(r, "frobnicate", 2, 'unknown command "frobnicate"')
  refused(r, "generate-csr", 1, "file already exists: key or CSR /etc/kubernetes/pki/apiserver")
  -- a missing kubeconfig named
  os.remove(r .. "/etc/kubernetes/super-admin.conf")
  refused(r, "renew super-admin.conf", 1, "super-admin.conf: /etc/kubernetes/super-admin.conf does not exist; nothing was renewed")
  refused(r, "renew apiserver super-admin.conf", 1, "does not exist; nothing was renewed")
  -- no CA key (external CA)
  os.rename(r .. "/etc/kubernetes/pki/ca.key", r .. "/ca.key.away")
  refused(r, "renew apiserver", 1, 'cannot renew apiserver: the "ca" CA key /etc/kubernetes/pki/ca.key is absent (external CA')
  refused(r, "renew all", 1, "nothing was renewed")
  refused(r, "renew all --expiring-within 400d", 1, "external CA")
  -- what expires later than that is not touched, so nothing needs the CA key
  local ok, out = certs(r, "renew all --expiring-within 30d")
  lu.assertTrue(ok, out)
end

-- A damaged CA under the certificates dir (garbage, truncated, a PEM block that is not DER, a key
-- of another CA): every command that loads it says which file and why in one error line, exit 1,
-- and changes nothing.
function TestCertsCli:test_damaged_ca_files_named_by_every_command()
  local r, pki = self.root, self.root .. "/etc/kubernetes/pki"
  local good = { crt = t.read(pki .. "/ca.crt"), key = t.read(pki .. "/ca.key") }
  local other = require("kboot.pki").generate_key("ECDSA-P256"):pem()
  local damage = {
    { "ca.crt", "garbage\n", "/etc/kubernetes/pki/ca.crt is not a valid PEM certificate: no PEM data found" },
    { "ca.crt", good.crt:sub(1, 300), "/etc/kubernetes/pki/ca.crt is not a valid PEM certificate: PEM block 1 is malformed" },
    { "ca.crt", "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
      "/etc/kubernetes/pki/ca.crt is not a valid PEM certificate: certificate 1: invalid DER" },
    { "ca.key", "junk", "/etc/kubernetes/pki/ca.key is not a valid PEM private key" },
    { "ca.key", other, "/etc/kubernetes/pki/ca.key does not match /etc/kubernetes/pki/ca.crt" },
  }
  local commands = { "init phase certs/apiserver-kubelet-client", "init phase kubeconfig/admin",
                     "kubeconfig user --client-name bob --output /tmp/bob.conf" }
  os.remove(pki .. "/apiserver-kubelet-client.crt")
  os.remove(pki .. "/apiserver-kubelet-client.key")
  os.remove(r .. "/etc/kubernetes/admin.conf")
  for _, d in ipairs(damage) do
    t.write(pki .. "/" .. d[1], d[2])
    local before = t.tree_hash(r)
    for _, cmd in ipairs(commands) do
      local what = d[1] .. " " .. d[3] .. ": " .. cmd
      local ok, out, code = t.kboot(cmd .. " --root " .. t.q(r))
      lu.assertFalse(ok, what)
      lu.assertEquals(code, 1, what .. "\n" .. out)
      local errors = {}
      for line in out:gmatch("[^\n]+") do if line:find("error: ", 1, true) then errors[#errors + 1] = line end end
      lu.assertEquals(#errors, 1, what .. "\n" .. out)
      lu.assertStrContains(errors[1], d[3], false, what)
      lu.assertEquals(t.tree_hash(r), before, what .. ": the tree changed")
    end
    t.write(pki .. "/ca.crt", good.crt)
    t.write(pki .. "/ca.key", good.key)
  end
end

function TestCertsCli:test_generate_csr_on_a_new_node_without_config_includes_etcd()
  -- nothing exists yet on a node about to be set up: kubeadm's defaults (local etcd) decide
  local root = t.tmpdir()
  local out = must_certs(root, "generate-csr --dry-run")
  lu.assertStrContains(out, "  etcd/server\n")
  lu.assertStrContains(out, "--- /etc/kubernetes/pki/etcd/peer.csr (mode 0644")
  lu.assertEquals(t.must("find " .. t.q(root) .. " -mindepth 1"), "", "a dry run writes nothing")
  out = must_certs(root, "generate-csr")
  t.must("openssl req -verify -noout -in " .. t.q(root .. "/etc/kubernetes/pki/etcd/server.csr"))
  lu.assertStrContains(out, "  kubelet.conf\n")
end

function TestCertsCli:test_external_ca_flow_generate_csr_sign_init_check_renew()
  local root = t.tmpdir()
  fs.set_root(root)
  local out = must_certs(root, "generate-csr --config " .. t.q(self.config))
  lu.assertStrContains(out, "generating keys and CSRs in /etc/kubernetes/pki\n  apiserver\n")
  lu.assertStrContains(out, "generating keys and CSRs in /etc/kubernetes\n  admin.conf\n")
  local K, P = root .. "/etc/kubernetes/", root .. "/etc/kubernetes/pki/"
  -- every CSR is self-signed by its key, with the table's subject and SANs
  t.must("openssl req -verify -noout -in " .. t.q(P .. "apiserver.csr"))
  local text = t.must("openssl req -noout -text -in " .. t.q(P .. "apiserver.csr"))
  lu.assertStrContains(text, "CN = kube-apiserver")
  lu.assertStrContains(text, "DNS:kubernetes.default.svc.cluster.local")
  lu.assertStrContains(text, "IP Address:10.96.0.1, IP Address:10.0.0.10")
  lu.assertStrContains(t.must("openssl req -noout -subject -in " .. t.q(K .. "admin.conf.csr")), "O = kubeadm:cluster-admins, CN = kubernetes-admin")
  lu.assertEquals(t.must("stat -c %a " .. t.q(P .. "apiserver.key")), "600\n")
  lu.assertEquals(t.must("openssl pkey -pubout -in " .. t.q(P .. "apiserver.key")),
                  t.must("openssl req -noout -pubkey -in " .. t.q(P .. "apiserver.csr")))
  -- the external CA: openssl's own, its key kept off the node
  local ext = t.tmpdir()
  t.must(("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj /CN=kubernetes "
    .. "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign 2>&1"):format(t.q(ext)))
  t.must(("cp %s %s"):format(t.q(ext .. "/ca.crt"), t.q(P .. "ca.crt")))
  local function sign(csr, crt, eku)
    t.write(ext .. "/ext.cnf", "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=" .. eku .. "\n")
    t.must(("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -days 365 -copy_extensions copyall -extfile %s -out %s 2>&1")
      :format(t.q(csr), t.q(ext .. "/ca.crt"), t.q(ext .. "/ca.key"), t.q(ext .. "/ext.cnf"), t.q(crt)))
  end
  sign(P .. "apiserver.csr", P .. "apiserver.crt", "serverAuth")
  sign(P .. "apiserver-kubelet-client.csr", P .. "apiserver-kubelet-client.crt", "clientAuth")
  local kc = require("kboot.kubeconfig")
  local crypto = require("kboot.crypto")
  for _, f in ipairs({ "admin.conf", "super-admin.conf", "kubelet.conf", "controller-manager.conf", "scheduler.conf" }) do
    sign(K .. f .. ".csr", ext .. "/" .. f .. ".crt", "clientAuth")
    local tt = assert(kc.load("/etc/kubernetes/" .. f))
    tt.users[1].user["client-certificate-data"] = crypto.base64(t.read(ext .. "/" .. f .. ".crt"))
    tt.clusters[1].cluster["certificate-authority-data"] = crypto.base64(t.read(P .. "ca.crt"))
    assert(kc.write("/etc/kubernetes/" .. f, tt))
  end
  -- init uses them (and makes the front-proxy and etcd CAs and what they sign for the keys there)
  local ok, init_out = t.kboot(("init --root %s --config %s --skip-phases=preflight --offline"):format(t.q(root), t.q(self.config)))
  lu.assertTrue(ok, init_out)
  lu.assertStrContains(init_out, 'External CA mode: using the existing "ca" certificate; its key /etc/kubernetes/pki/ca.key is absent, so it is externally managed')
  lu.assertFalse(t.sh("test -e " .. t.q(P .. "ca.key")))
  lu.assertStrContains(t.must(("openssl verify -CAfile %s %s"):format(t.q(P .. "ca.crt"), t.q(P .. "apiserver.crt"))), "OK")
  local r = rows(must_certs(root, "check-expiration --config " .. t.q(self.config)))
  lu.assertEquals(r["apiserver"].external, "yes")
  lu.assertEquals(r["admin.conf"].external, "yes")
  lu.assertEquals(r["front-proxy-client"].external, "no")
  lu.assertEquals(r["ca"].external, "yes")
  lu.assertEquals(r["front-proxy-ca"].external, "no")
  refused(root, "renew all", 1, "external CA")
  lu.assertStrContains(must_certs(root, "renew front-proxy-client etcd-server"), "restart the kube-apiserver and etcd")
end

os.exit(lu.LuaUnit.run("-v"))

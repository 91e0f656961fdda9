-- kboot.certs_lifecycle: kubeadm's check-expiration layout byte for byte (tabwriter, dates,
-- ShortHumanDuration), its rows and their order, residual times on a PKI made 10 days ago, the
-- problems kubeadm does not report, renewal plans (--expiring-within, missing files, external CA),
-- renewal keeping subject/SANs/usages with a new key, and generate-csr's refusal to overwrite.
local lu = require("luaunit")
local t = require("testlib")
local fs = require("kboot.fs")
local pki = require("kboot.pki")
local lc = require("kboot.certs_lifecycle")
local cf = require("certs_fixture")
local cjson = require("cjson")

local DAY = 86400
local NOW = 1800000000 -- a fixed clock: Jan 15, 2027 08:00 UTC

local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  lu.assertFalse(ok, "expected a failure")
  lu.assertEquals(type(e), "table", tostring(e))
  lu.assertEquals(e.exit, 1)
  return e.msg
end

TestFormat = {}

function TestFormat:test_short_duration_is_apimachinery_s()
  local cases = { { -5, "<invalid>" }, { -2, "<invalid>" }, { -1, "0s" }, { 0, "0s" }, { 59, "59s" }, { 60, "1m" },
    { 3599, "59m" }, { 3600, "1h" }, { DAY - 1, "23h" }, { DAY, "1d" }, { 355 * DAY, "355d" },
    { 365 * DAY - 1, "364d" }, { 365 * DAY, "1y" }, { 3640 * DAY, "9y" }, { 3650 * DAY, "10y" } }
  for _, c in ipairs(cases) do lu.assertEquals(lc.short_duration(c[1]), c[2], tostring(c[1])) end
  -- Go truncates every unit toward zero
  lu.assertEquals(lc.short_duration(-1.5), "0s")
  lu.assertEquals(lc.short_duration(-2.5), "<invalid>")
  lu.assertEquals(lc.short_duration(365 * DAY - 0.5), "364d")
  lu.assertEquals(lc.short_duration(59.9), "59s")
end

function TestFormat:test_dates_are_go_s_layout_in_utc()
  lu.assertEquals(lc.format_date(NOW), "Jan 15, 2027 08:00 UTC")
  lu.assertEquals(lc.format_date(0), "Jan 01, 1970 00:00 UTC")
end

-- Lines of a real `kubeadm certs check-expiration` (v1.31), trailing blanks included.
local KUBEADM = {
  "CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED",
  "admin.conf                 Aug 19, 2026 09:03 UTC   360d            ca                      no      ",
  "apiserver-etcd-client      Aug 19, 2026 09:03 UTC   360d            etcd-ca                 no      ",
  "apiserver-kubelet-client   Aug 19, 2026 09:03 UTC   360d            ca                      no      ",
  "front-proxy-client         Aug 19, 2026 09:03 UTC   360d            front-proxy-ca          no      ",
  "",
  "CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED",
  "ca                      Aug 17, 2035 09:03 UTC   9y              no      ",
  "front-proxy-ca          Aug 17, 2035 09:03 UTC   9y              no      ",
}

local function row(name, not_after, now, ca, ext)
  return { name = name, not_after = not_after, residual = not_after - now, ca = ca, external = ext or false, problems = {} }
end

function TestFormat:test_text_is_kubeadm_s_byte_for_byte()
  local leaf, ca = 1787130210, 2070954210 -- 2026-08-19T09:03:30Z, 2035-08-17T09:03:30Z
  local now = leaf - 360 * DAY - 3600
  local report = { certificates = { row("admin.conf", leaf, now, "ca"), row("apiserver-etcd-client", leaf, now, "etcd-ca"),
    row("apiserver-kubelet-client", leaf, now, "ca"), row("front-proxy-client", leaf, now, "front-proxy-ca") },
    authorities = { row("ca", ca, now), row("front-proxy-ca", ca, now) } }
  lu.assertEquals(lc.format_text(report), table.concat(KUBEADM, "\n") .. "\n")
end

function TestFormat:test_missing_rows_pad_their_empty_cells_as_tabwriter_does()
  local report = { certificates = { row("apiserver", NOW + DAY, NOW, "ca"),
                                    { name = "super-admin.conf", missing = true, problems = {} } },
                   authorities = { { name = "etcd-ca", missing = true, problems = {} } } }
  local lines = {}
  for l in lc.format_text(report):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  -- column 1 is as wide as "!MISSING! super-admin.conf" plus 3; every empty cell but the last padded
  lu.assertEquals(lines[1], ("CERTIFICATE"):rep(1) .. (" "):rep(29 - 11) .. "EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED")
  lu.assertEquals(lines[3], "!MISSING! super-admin.conf   " .. (" "):rep(25 + 16 + 24))
  -- a table of missing CAs alone: EXPIRES is only as wide as its heading (minwidth 10)
  lu.assertEquals(lines[6], "!MISSING! etcd-ca" .. (" "):rep(7 + 10 + 16))
  lu.assertEquals(#lines, 6, "no PROBLEMS table when nothing is wrong")
end

function TestFormat:test_problems_table_follows_when_something_is_wrong()
  local r = row("apiserver", NOW + DAY, NOW, "ca")
  r.problems = { "its key /etc/kubernetes/pki/apiserver.key does not match it", "missing DNS SAN vip" }
  local text = lc.format_text({ certificates = { r }, authorities = {} })
  lu.assertStrContains(text, "\n\nCERTIFICATE   PROBLEM\napiserver     its key /etc/kubernetes/pki/apiserver.key does not match it\n"
    .. "apiserver     missing DNS SAN vip\n")
end

function TestFormat:test_json_and_yaml_are_kubeadm_s_output_api()
  local report = { certificates = { row("apiserver", NOW + DAY, NOW, "ca"), { name = "admin.conf", missing = true, problems = {} } },
                   authorities = { row("ca", NOW + 10 * DAY, NOW, nil, true) } }
  report.certificates[1].problems = { "it is not signed by the \"ca\" CA" }
  local j = lc.format_json(report)
  -- kubeadm's JSON printer: 4-space indent, kind and apiVersion first
  lu.assertStrContains(j, '{\n    "kind": "CertificateExpirationInfo",\n    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",\n')
  lu.assertStrContains(j, '"expirationDate": "2027-01-16T08:00:00Z",\n            "residualTime": 86400,')
  local d = cjson.decode(j)
  lu.assertEquals(d.certificates[1].caName, "ca")
  lu.assertEquals(d.certificates[1].problems, { 'it is not signed by the "ca" CA' })
  lu.assertEquals(d.certificates[2].missing, true)
  lu.assertEquals(d.certificates[2].expirationDate, cjson.null)
  lu.assertNil(d.certificates[2].problems)
  lu.assertNil(d.certificateAuthorities[1].caName)
  lu.assertEquals(d.certificateAuthorities[1].externallyManaged, true)
  local y = require("kboot.yaml").decode(lc.format_yaml(report))
  lu.assertEquals(y.kind, "CertificateExpirationInfo")
  lu.assertEquals(y.certificates[1].residualTime, 86400)
  lu.assertStrContains(lc.format_yaml(report), "apiVersion: output.kubeadm.k8s.io/v1alpha3\ncertificateAuthorities:\n")
end

function TestFormat:test_parse_duration_takes_go_durations_and_days()
  local ok = { ["90d"] = 90 * DAY, ["1d12h"] = 36 * 3600, ["2160h"] = 90 * DAY, ["1.5d"] = 36 * 3600,
               ["30m"] = 1800, ["0"] = 0, ["1h30m"] = 5400 }
  for s, want in pairs(ok) do lu.assertEquals(lc.parse_duration(s), want, s) end
  for _, s in ipairs({ "", "90", "9x0d", "d", "-1d", "90 d", "1y" }) do
    local v, why = lc.parse_duration(s)
    lu.assertNil(v, s)
    lu.assertIsString(why)
  end
end

---------------------------------------------------------------------------------------------------

TestLifecycle = {}
function TestLifecycle:setUp()
  self.root = t.tmpdir()
  -- made 10 days before NOW; inspected at NOW
  self.made = cf.build({ root = self.root, now = NOW, age = 10 * DAY })
  self.ctx = self.made
  self.ctx.now = NOW
end
function TestLifecycle:tearDown() fs.set_root("/"); t.cleanup() end

local function by_name(list)
  local m = {}
  for _, r in ipairs(list) do m[r.name] = r end
  return m
end

function TestLifecycle:test_rows_are_kubeadm_s_in_its_order()
  local names = {}
  for _, it in ipairs(lc.items(self.ctx)) do names[#names + 1] = it.name end
  lu.assertEquals(names, { "admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client",
    "controller-manager.conf", "etcd-healthcheck-client", "etcd-peer", "etcd-server", "front-proxy-client",
    "scheduler.conf", "super-admin.conf" })
  local cas = {}
  for _, e in ipairs(lc.authorities(self.ctx)) do cas[#cas + 1] = e.name end
  lu.assertEquals(cas, { "ca", "etcd-ca", "front-proxy-ca" })
  local ext = cf.build({ root = t.tmpdir(), now = NOW, external_etcd = { endpoints = { "https://10.0.0.2:2379" } } })
  names = {}
  for _, it in ipairs(lc.items(ext)) do names[#names + 1] = it.name end
  lu.assertEquals(names, { "admin.conf", "apiserver", "apiserver-kubelet-client", "controller-manager.conf",
    "front-proxy-client", "scheduler.conf", "super-admin.conf" })
  cas = {}
  for _, e in ipairs(lc.authorities(ext)) do cas[#cas + 1] = e.name end
  lu.assertEquals(cas, { "ca", "front-proxy-ca" })
end

function TestLifecycle:test_residual_times_of_a_pki_made_ten_days_ago()
  cf.resign(self.ctx, "apiserver", { not_after = NOW + 30 * DAY + 3600 })
  cf.resign(self.ctx, "admin.conf", { not_after = NOW + 5 * 3600 + 60 })
  cf.resign(self.ctx, "etcd-peer", { not_before = NOW - 400 * DAY, not_after = NOW - 3 * DAY })
  local rep = lc.inspect(self.ctx, { config = true })
  local c, a = by_name(rep.certificates), by_name(rep.authorities)
  lu.assertEquals(lc.short_duration(c["apiserver"].residual), "30d")
  lu.assertEquals(lc.short_duration(c["admin.conf"].residual), "5h")
  lu.assertEquals(lc.short_duration(c["etcd-peer"].residual), "<invalid>")
  -- exactly 355 days at NOW: half a second less by the wall clock, as kubeadm counts
  lu.assertEquals(c["scheduler.conf"].residual, 355 * DAY - 0.5)
  lu.assertEquals(lc.short_duration(c["front-proxy-client"].residual), "354d")
  lu.assertEquals(lc.short_duration(a["ca"].residual), "9y")
  lu.assertEquals(a["ca"].residual, 3640 * DAY - 0.5)
  for _, r in ipairs(rep.certificates) do
    lu.assertEquals(r.problems, {}, r.name)
    lu.assertFalse(r.external, r.name)
  end
  local text = lc.format_text(rep)
  lu.assertStrContains(text, "apiserver                  Feb 14, 2027 09:00 UTC   30d             ca                      no      \n")
  lu.assertStrContains(text, "etcd-peer                  Jan 12, 2027 08:00 UTC   <invalid>       etcd-ca                 no      \n")
end

function TestLifecycle:test_problems_kubeadm_does_not_report()
  local P = self.root .. "/etc/kubernetes/pki/"
  -- a key that is not the certificate's
  t.write(P .. "front-proxy-client.key", t.read(P .. "apiserver-kubelet-client.key"))
  -- a certificate signed by another CA
  local other_key = pki.generate_key("ECDSA-P256")
  local other = pki.self_signed_ca(other_key, { cn = "other", not_after = NOW + DAY })
  local k = assert(pki.load_key(t.read(P .. "apiserver-kubelet-client.key")))
  local info = pki.load_cert(t.read(P .. "apiserver-kubelet-client.crt")):info()
  t.write(P .. "apiserver-kubelet-client.crt", pki.sign(lc.renewal_spec(self.ctx, info), k, other, other_key):pem())
  -- the configuration now wants another SAN and no longer the node name
  self.ctx.cluster.apiServer.certSANs = { "vip.example.com" }
  self.ctx.node.name = "node-2"
  local c = by_name(lc.inspect(self.ctx, { config = true }).certificates)
  lu.assertEquals(c["front-proxy-client"].problems, { "its key /etc/kubernetes/pki/front-proxy-client.key does not match it" })
  lu.assertEquals(c["apiserver-kubelet-client"].problems, { 'it is not signed by the "ca" CA (/etc/kubernetes/pki/ca.crt)' })
  local ap = table.concat(c["apiserver"].problems, "\n")
  lu.assertStrContains(ap, "missing DNS SAN vip.example.com")
  lu.assertStrContains(ap, "missing DNS SAN node-2")
  lu.assertStrContains(ap, "DNS SAN node-1 is no longer in the configuration")
  lu.assertStrContains(table.concat(c["etcd-server"].problems, "\n"), 'CN is "node-1", want "node-2"')
  -- without a configuration only what the files themselves tell
  c = by_name(lc.inspect(self.ctx, {}).certificates)
  lu.assertEquals(c["apiserver"].problems, {})
  lu.assertEquals(#c["front-proxy-client"].problems, 1)
end

function TestLifecycle:test_kubeconfig_with_a_foreign_ca_and_missing_files()
  local K = self.root .. "/etc/kubernetes/"
  local kc = require("kboot.kubeconfig")
  local tt = assert(kc.load("/etc/kubernetes/scheduler.conf"))
  tt.clusters[1].cluster["certificate-authority-data"] = require("kboot.crypto").base64(
    pki.self_signed_ca(pki.generate_key("ECDSA-P256"), { cn = "x" }):pem())
  assert(kc.write("/etc/kubernetes/scheduler.conf", tt))
  os.remove(K .. "super-admin.conf")
  os.remove(K .. "pki/etcd/ca.crt")
  local rep = lc.inspect(self.ctx, {})
  local c, a = by_name(rep.certificates), by_name(rep.authorities)
  lu.assertEquals(c["scheduler.conf"].problems, { "its certificate-authority-data is not /etc/kubernetes/pki/ca.crt" })
  lu.assertTrue(c["super-admin.conf"].missing)
  lu.assertTrue(a["etcd-ca"].missing)
  lu.assertStrContains(table.concat(c["etcd-server"].problems), "its CA certificate /etc/kubernetes/pki/etcd/ca.crt is missing")
  local text = lc.format_text(rep)
  lu.assertStrContains(text, "\n!MISSING! super-admin.conf   ")
  lu.assertStrContains(text, "\n!MISSING! etcd-ca   ")
end

function TestLifecycle:test_external_ca_is_reported_and_refused()
  os.remove(self.root .. "/etc/kubernetes/pki/ca.key")
  local rep = lc.inspect(self.ctx, {})
  local c, a = by_name(rep.certificates), by_name(rep.authorities)
  lu.assertTrue(a["ca"].external)
  lu.assertFalse(a["front-proxy-ca"].external)
  lu.assertTrue(c["apiserver"].external)
  lu.assertTrue(c["admin.conf"].external)
  lu.assertFalse(c["front-proxy-client"].external)
  local before = t.tree_hash(self.root)
  local msg = err_of(lc.plan_renew, self.ctx, { "all" }, {})
  lu.assertStrContains(msg, 'the "ca" CA key /etc/kubernetes/pki/ca.key is absent (external CA')
  lu.assertStrContains(msg, "admin.conf, apiserver, apiserver-kubelet-client")
  msg = err_of(lc.plan_renew, self.ctx, { "apiserver" }, {})
  lu.assertStrContains(msg, "cannot renew apiserver:")
  -- what its own CA signs is still renewable
  local plan = lc.plan_renew(self.ctx, { "front-proxy-client" }, {})
  lu.assertEquals(#plan.renew, 1)
  lu.assertEquals(t.tree_hash(self.root), before)
end

function TestLifecycle:test_plan_within_picks_exactly_what_expires()
  cf.resign(self.ctx, "apiserver", { not_after = NOW + 30 * DAY })
  cf.resign(self.ctx, "scheduler.conf", { not_after = NOW + 89 * DAY })
  cf.resign(self.ctx, "etcd-server", { not_after = NOW + 91 * DAY })
  local plan = lc.plan_renew(self.ctx, { "all" }, { within = 90 * DAY })
  local renew, left = {}, {}
  for _, p in ipairs(plan.renew) do renew[#renew + 1] = p.item.name end
  for _, l in ipairs(plan.left) do left[#left + 1] = l.item.name end
  lu.assertEquals(renew, { "apiserver", "scheduler.conf" })
  lu.assertEquals(#left, 9)
  lu.assertEquals(lc.pods(lc.renew(self.ctx, plan)), { "kube-apiserver", "kube-scheduler" })
  plan = lc.plan_renew(self.ctx, { "all" }, { within = 90 * DAY })
  lu.assertEquals(#plan.renew, 0, "renewed ones have a year again")
end

function TestLifecycle:test_renew_keeps_subject_sans_usages_with_a_new_key()
  local old = {}
  for _, it in ipairs(lc.items(self.ctx)) do old[it.name] = lc.load_item(self.ctx, it) end
  local plan = lc.plan_renew(self.ctx, { "all" }, {})
  lu.assertEquals(#plan.renew, 11)
  local done = lc.renew(self.ctx, plan)
  lu.assertEquals(#done, 11)
  lu.assertEquals(lc.restart_line(done), "Done renewing certificates. You must restart the kube-apiserver, "
    .. "kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates.")
  for _, it in ipairs(lc.items(self.ctx)) do
    local n, o = lc.load_item(self.ctx, it), old[it.name]
    lu.assertEquals(n.problems, {}, it.name)
    for _, f in ipairs({ "subject", "dns", "ip", "usages", "ext_key_usages", "is_ca", "issuer" }) do
      lu.assertEquals(n.info[f], o.info[f], it.name .. " " .. f)
    end
    lu.assertNotEquals(n.info.spki_pin, o.info.spki_pin, it.name .. ": a new key")
    lu.assertEquals(n.info.not_before, NOW - 300, it.name)
    lu.assertEquals(n.info.not_after, NOW + 365 * DAY, it.name)
  end
  -- certificateValidityPeriod is honoured
  self.ctx.cert_validity = 30 * DAY
  lc.renew(self.ctx, lc.plan_renew(self.ctx, { "apiserver" }, {}))
  lu.assertEquals(lc.load_item(self.ctx, lc.item(self.ctx, "apiserver")).info.not_after, NOW + 30 * DAY)
end

function TestLifecycle:test_renew_refuses_missing_and_unembedded_before_writing()
  local before = t.tree_hash(self.root)
  os.remove(self.root .. "/etc/kubernetes/super-admin.conf")
  before = t.tree_hash(self.root)
  lu.assertStrContains(err_of(lc.plan_renew, self.ctx, { "apiserver", "super-admin.conf" }, {}),
    "super-admin.conf: /etc/kubernetes/super-admin.conf does not exist; nothing was renewed")
  lu.assertStrContains(err_of(lc.plan_renew, self.ctx, { "bogus" }, {}), 'unknown certificate "bogus"')
  -- `all` notes it and renews the rest
  local plan = lc.plan_renew(self.ctx, { "all" }, {})
  lu.assertEquals(#plan.missing, 1)
  lu.assertEquals(plan.missing[1].name, "super-admin.conf")
  -- a kubeconfig whose client certificate is a file reference is not kubeadm's to renew
  local P = self.root .. "/etc/kubernetes/"
  local kc = require("kboot.kubeconfig")
  local cur = assert(kc.current(assert(kc.load("/etc/kubernetes/admin.conf"))))
  t.write(P .. "admin.crt", cur.cert_pem)
  t.write(P .. "admin.key", cur.key_pem)
  local tt = assert(kc.load("/etc/kubernetes/admin.conf"))
  tt.users[1].user = { ["client-certificate"] = "admin.crt", ["client-key"] = "admin.key" }
  assert(kc.write("/etc/kubernetes/admin.conf", tt))
  lu.assertStrContains(err_of(lc.plan_renew, self.ctx, { "admin.conf" }, {}), "does not embed its client certificate")
  lu.assertEquals(lc.inspect(self.ctx, {}).certificates[1].problems, {}, "checked all the same")
end

function TestLifecycle:test_generate_csr_refuses_to_overwrite()
  local before = t.tree_hash(self.root)
  lu.assertStrContains(err_of(lc.plan_csr, self.ctx), "file already exists: key or CSR /etc/kubernetes/pki/apiserver; nothing was written")
  lu.assertEquals(t.tree_hash(self.root), before)
end

os.exit(lu.LuaUnit.run("-v"))

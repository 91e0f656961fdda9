-- End to end: `kboot certs renew` on a real v1.20.2 control plane started from kboot's offline
-- init (tests/lib/controlplane.lua plays the kubelet). kubectl authenticates with every renewed
-- kubeconfig (and is refused with a client certificate of another CA, so the check can fail); a
-- kube-apiserver restarted after `certs renew apiserver` serves the new certificate (openssl
-- s_client) and still reaches etcd; the controller-manager and scheduler, restarted with their
-- renewed kubeconfigs, win their leader election again. Skipped when the binaries are absent.
local lu = require("luaunit")
local t = require("testlib")
local controlplane = require("controlplane")
local kubeconfig = require("kboot.kubeconfig")
local pki = require("kboot.pki")

local skip = controlplane.missing()
local cp, root, plan, start_err

if not skip then
  root = t.tmpdir()
  plan = controlplane.plan{ root = root }
  cp, start_err = controlplane.init_offline_and_start(plan)
end

local function certs(args)
  return t.must(("%s certs %s --root %s --config %s"):format(t.q(t.bin), args, t.q(root), t.q(plan.config)))
end

local function client_pin(file)
  local cur = assert(kubeconfig.current(assert(kubeconfig.load(root .. "/etc/kubernetes/" .. file))))
  return assert(pki.load_cert(cur.cert_pem)):spki_pin()
end

local function kubectl_with(file, args)
  return t.sh(("%s --kubeconfig %s %s"):format(t.q(cp.bin .. "/kubectl"), t.q(root .. "/etc/kubernetes/" .. file), args))
end

-- SHA-256 fingerprint of the certificate the API server serves now, and of a file's.
local function served_fp()
  return t.must(("openssl s_client -connect 127.0.0.1:%d </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256")
    :format(cp.api_port))
end
local function file_fp(p)
  return t.must("openssl x509 -noout -fingerprint -sha256 -in " .. t.q(root .. p))
end

-- cp:kill gives up after 5 s; on a loaded machine a killed process can take longer to go, and its
-- successor then finds its port taken. Kill, wait until the old process is gone, start again.
local function restart(name)
  local pid = cp.pids[name]
  cp:kill(name)
  for _ = 1, 300 do
    if not t.sh(("kill -0 %s 2>/dev/null"):format(pid)) then break end
    os.execute("sleep 0.1")
  end
  return cp:restart(name)
end

local function wait_log(name, want, timeout)
  for _ = 1, timeout * 2 do
    if cp:logs(name):find(want, 1, true) then return true end
    os.execute("sleep 0.5")
  end
  return nil, name .. " log has no " .. want .. ":\n" .. cp:logs(name):sub(-2000)
end

TestE2ECerts = {}
function TestE2ECerts:setUp()
  if skip then lu.skip(skip) end
  if not cp then error(tostring(start_err)) end
end

function TestE2ECerts:test_01_kubectl_works_with_every_renewed_kubeconfig()
  local files = { "admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf" }
  local old = {}
  for _, f in ipairs(files) do old[f] = client_pin(f) end
  local out = certs("renew all")
  lu.assertStrContains(out, "You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd")
  for _, f in ipairs(files) do
    lu.assertNotEquals(client_pin(f), old[f], f .. ": a new key")
    -- authenticated (discovery is open to every authenticated user, not to anonymous)
    local ok, body = kubectl_with(f, "get --raw /api")
    lu.assertTrue(ok, f .. ": " .. body)
    lu.assertStrContains(body, '"kind":"APIVersions"')
  end
  local ok, nodes = kubectl_with("super-admin.conf", "get nodes -o name")
  lu.assertTrue(ok, nodes)
  lu.assertStrContains(nodes, "node/" .. plan.node_name)
  -- the same request with a client certificate the cluster CA did not sign is refused
  local ck = pki.generate_key("ECDSA-P256")
  local other = pki.self_signed_ca(ck, { cn = "kubernetes" })
  local k = pki.generate_key("ECDSA-P256")
  local cert = pki.sign({ cn = "kubernetes-super-admin", o = { "system:masters" }, ext_key_usages = { "client auth" } }, k, other, ck)
  local t2 = assert(kubeconfig.load(root .. "/etc/kubernetes/super-admin.conf"))
  local cur = assert(kubeconfig.current(t2))
  local bad = kubeconfig.build{ server = cur.server, ca_pem = cur.ca_pem, user = "x", cert_pem = cert:pem(), key_pem = k:pem() }
  t.write(root .. "/etc/kubernetes/foreign.conf", kubeconfig.encode(bad))
  local refused, why = kubectl_with("foreign.conf", "get --raw /api")
  lu.assertFalse(refused)
  lu.assertStrContains(why, "Unauthorized")
end

function TestE2ECerts:test_02_restarted_apiserver_serves_the_renewed_certificate()
  local before = served_fp()
  local out = certs("renew apiserver")
  lu.assertStrContains(out, "certificate for serving the Kubernetes API renewed\n")
  lu.assertStrContains(out, "\nDone renewing certificates. You must restart the kube-apiserver, so that it can use the new certificates.\n")
  local renewed = file_fp("/etc/kubernetes/pki/apiserver.crt")
  lu.assertNotEquals(renewed, before)
  assert(restart("kube-apiserver"))
  lu.assertEquals(served_fp(), renewed)
  -- the restarted API server uses the renewed etcd client certificate and kubelet client too
  local ok, nodes = kubectl_with("super-admin.conf", "get nodes -o name")
  lu.assertTrue(ok, nodes .. "\n" .. cp:tail(10))
  lu.assertStrContains(nodes, "node/" .. plan.node_name)
  -- and the served certificate verifies against the cluster CA for the address kubeconfigs name
  local v = t.must(("openssl s_client -connect 127.0.0.1:%d -CAfile %s -verify_return_error -verify_ip 127.0.0.1 </dev/null 2>&1")
    :format(cp.api_port, t.q(root .. "/etc/kubernetes/pki/ca.crt")))
  lu.assertStrContains(v, "Verify return code: 0 (ok)")
end

function TestE2ECerts:test_03_controller_manager_and_scheduler_restart_with_renewed_kubeconfigs()
  for _, n in ipairs({ "kube-controller-manager", "kube-scheduler" }) do
    assert(restart(n))
  end
  assert(wait_log("kube-controller-manager", "successfully acquired lease kube-system/kube-controller-manager", 90))
  assert(wait_log("kube-scheduler", "successfully acquired lease kube-system/kube-scheduler", 90))
  for _, n in ipairs({ "kube-controller-manager", "kube-scheduler" }) do
    lu.assertNotStrContains(cp:logs(n), "Unauthorized")
  end
end

function TestE2ECerts:test_04_check_expiration_after_renewals_shows_no_problem()
  local out = certs("check-expiration")
  lu.assertNotStrContains(out, "PROBLEM")
  lu.assertStrContains(out, "\napiserver                  ")
  lu.assertStrMatches(out, ".*\napiserver%s+%a%a%a %d%d, %d+ %d%d:%d%d UTC%s+364d%s+ca%s+no%s*\n.*")
end

function TestE2ECerts:test_99_stop()
  if cp then cp:stop() end
  t.cleanup()
end

os.exit(lu.LuaUnit.run("-v"))

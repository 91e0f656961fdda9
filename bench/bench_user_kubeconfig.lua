-- User kubeconfigs through kboot.user_kubeconfig in one process: N users (ECDSA-P256 keys in one
-- batch, a client certificate each signed by an ECDSA-P256 cluster CA, the kubeconfig built and
-- encoded as YAML), for N = 100, 1,000 and 10,000. Prints the median wall time per size, the cost
-- per kubeconfig and its ratio to the 100-user cost (1.00 = linear), where the time goes (keys,
-- certificates, YAML), and the same with every file written 0600 in one kboot.fs batch.
-- Goal: 1,000 in under 1 s.
-- Run: kboot bench/bench_user_kubeconfig.lua [SIZES, default 100,1000,10000] [REPEATS, default 5]
local pki = require("kboot.pki")
local fs = require("kboot.fs")
local time = require("kboot.time")
local kubeconfig = require("kboot.kubeconfig")
local uk = require("kboot.user_kubeconfig")

local sizes = {}
for n in ((...) or "100,1000,10000"):gmatch("%d+") do sizes[#sizes + 1] = math.tointeger(tonumber(n)) end
local repeats = math.tointeger(tonumber(select(2, ...) or "")) or 5
local ALG = "ECDSA-P256"

-- a node's CA and admin.conf in a scratch root, read back through the API as a script would
local root = io.popen("mktemp -d /tmp/kboot-bench-uk.XXXXXX"):read("l")
assert(fs.set_root(root))
local ca_key = pki.generate_key(ALG)
local now = os.time()
local ca = assert(pki.self_signed_ca(ca_key, { cn = "kubernetes", dns = { "kubernetes" }, not_before = now - 300,
                                               not_after = now + 10 * 365 * 86400 }))
assert(fs.write("/etc/kubernetes/pki/ca.crt", ca:pem(), "0644", { mkdir = true }))
assert(fs.write("/etc/kubernetes/pki/ca.key", ca_key:pem("traditional"), "0600"))
assert(kubeconfig.write(uk.ADMIN_CONF, kubeconfig.build{ server = "https://10.0.0.1:6443", ca_pem = ca:pem(), token = "x" }))
local cluster = assert(uk.cluster{})
assert(cluster.algorithm == ALG, cluster.algorithm)

local function users(n)
  local list = {}
  for i = 1, n do list[i] = { name = "user-" .. i, orgs = { "team-" .. (i % 50) } } end
  return list
end

local function median(xs)
  table.sort(xs)
  local m = #xs // 2
  return #xs % 2 == 1 and xs[m + 1] or (xs[m] + xs[m + 1]) / 2
end

-- one run: the whole job, and its parts timed separately on the same input
local function run(n, write)
  local list = users(n)
  if write then os.execute(("rm -rf '%s/out'"):format(root)) end
  collectgarbage("collect")
  local t0, c0 = time.now(), os.clock()
  local kcs = assert(uk.users(cluster, list))
  local texts = {}
  for i, kc in ipairs(kcs) do texts[i] = uk.encode(kc) end
  if write then
    fs.begin()
    for i, text in ipairs(texts) do assert(fs.write(("/out/%d/user-%d.conf"):format(n, i), text, "0600", { mkdir = true })) end
    assert(fs.commit())
  end
  return time.now() - t0, os.clock() - c0
end

local function parts(n)
  local list = users(n)
  collectgarbage("collect")
  local t0 = time.now()
  local keys = pki.generate_batch(n, ALG)
  local t1 = time.now()
  local certs = {}
  for i, u in ipairs(list) do certs[i] = assert(pki.sign(uk.spec(u), keys[i], cluster.ca, cluster.ca_key)) end
  local t2 = time.now()
  for i, u in ipairs(list) do
    uk.encode(kubeconfig.build{ cluster_name = cluster.cluster_name, server = cluster.server, ca_pem = cluster.ca_pem,
      user = u.name, cert_pem = certs[i]:pem(), key_pem = keys[i]:pem("traditional") })
  end
  local t3 = time.now()
  return t1 - t0, t2 - t1, t3 - t2
end

print(("user kubeconfigs, %s, median of %d runs (3 at 10,000; one run with files), one process, %s cores")
  :format(ALG, repeats, io.popen("nproc"):read("l")))
print(("%8s  %10s  %12s  %6s  %9s  %8s %8s %8s  %12s  %12s  %6s"):format("N", "total", "per kubecfg", "ratio", "cpu/kcfg",
  "keys", "certs", "yaml", "+files total", "per kubecfg", "ratio"))
run(100); parts(100) -- warm up: first-use costs (OpenSSL's method tables, the allocator) are not per kubeconfig
local base, wbase
for _, n in ipairs(sizes) do
  local reps = n >= 10000 and math.min(3, repeats) or repeats
  local tot, cpu, wr, pk, pc, py = {}, {}, {}, {}, {}, {}
  for r = 1, reps do
    tot[r], cpu[r] = run(n)
    pk[r], pc[r], py[r] = parts(n)
  end
  -- writing: once per size (each run writes N more files; see the note below)
  wr[1] = run(n, true)
  local per, wper = median(tot) / n, wr[1] / n
  base, wbase = base or per, wbase or wper
  print(("%8d  %8.1f ms  %9.1f µs  %6.2f  %6.1f µs  %5.1f µs %5.1f µs %5.1f µs  %9.1f ms  %9.1f µs  %6.2f"):format(n,
    median(tot) * 1e3, per * 1e6, per / base, median(cpu) / n * 1e6, median(pk) / n * 1e6, median(pc) / n * 1e6, median(py) / n * 1e6, wr[1] * 1e3, wper * 1e6, wper / wbase))
end
print("ratio: wall cost per kubeconfig / the same at the first size (1.00 = linear). cpu/kcfg: process CPU time")
print("per kubeconfig (less disturbed by other load on a shared machine than the wall time).")
print("keys: pki.generate_batch; certs: pki.sign; yaml: PEMs, base64 and the kubeconfig's YAML.")
print("+files: the same, every file written 0600 into one directory in one kboot.fs batch (two syncfs).")
fs.set_root(nil)
os.execute("rm -rf '" .. root .. "'")

-- Real etcd from the generated manifest: the `command:` of etcd.yaml is run with Debian's etcd,
-- changing only the paths (re-rooted into the sandbox) and the ports (free ones), and /health is
-- read through kboot.http with the generated apiserver-etcd-client and healthcheck-client
-- certificates. Proves the etcd certificates and flags work with a real etcd.
local lu = require("luaunit")
local t = require("testlib")
local fixture = require("ctx_fixture")
local certs = require("kboot.certs")
local etcd = require("kboot.components.etcd")
local yaml = require("kboot.yaml")
local http = require("kboot.http")
local fs = require("kboot.fs")

local PKI = "/etc/kubernetes/pki"
local ETCD = "/usr/bin/etcd"
local quiet = { info = function() end, warn = function() end, debug = function() end, error = function() end }

local function sleep(s) os.execute("sleep " .. s) end

TestEtcdManifest = {}

function TestEtcdManifest:setUp()
  self.root = t.tmpdir()
  self.pid = nil
end

function TestEtcdManifest:tearDown()
  if self.pid then os.execute("kill -9 " .. self.pid .. " 2>/dev/null") end
  fs.set_root("/")
  t.cleanup()
end

local function client(root, cert, port, extra)
  local o = {
    server = "https://127.0.0.1:" .. port,
    ca_pem = t.read(root .. PKI .. "/etcd/ca.crt"),
    cert_pem = cert and t.read(root .. PKI .. "/" .. cert .. ".crt"),
    key_pem = cert and t.read(root .. PKI .. "/" .. cert .. ".key"),
    timeout = 5, connect_timeout = 2, retries = 1, retry_deadline = 5,
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return http.client(o)
end

function TestEtcdManifest:test_etcd_runs_from_the_manifest_command()
  if not t.sh("test -x " .. ETCD) then lu.skip("no " .. ETCD) end
  local root = self.root
  -- ECDSA-P256 keeps this quick under valgrind; the RSA tree is checked by test_certs_openssl
  local ctx = fixture.new({ root = root, init = { localAPIEndpoint = { advertiseAddress = "127.0.0.1" } },
                            cluster = { encryptionAlgorithm = "ECDSA-P256" } })
  ctx.log, ctx.host.proxy_env = quiet, {}
  -- only what etcd and its clients need (and so only their keys in the batch)
  ctx.phase_enabled = function(n) return n:match("^certs/etcd") or n == "certs/apiserver-etcd-client" or n == "certs/front-proxy-ca" or n == "certs/front-proxy-client" end
  for _, n in ipairs({ "etcd-ca", "etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client",
                       "front-proxy-ca", "front-proxy-client" }) do
    certs.ensure(ctx, n)
  end
  assert(require("kboot.component").run(ctx, etcd))
  local pod = assert(yaml.decode(t.read(root .. "/etc/kubernetes/manifests/etcd.yaml")))
  local command = pod.spec.containers[1].command
  lu.assertEquals(command[1], "etcd")

  -- the only changes: paths into the sandbox, ports to free ones
  local cport, pport, mport = t.free_port(), t.free_port(), t.free_port()
  local argv = { ETCD }
  for i = 2, #command do
    local a = command[i]
    a = a:gsub("=/etc/kubernetes/", "=" .. root .. "/etc/kubernetes/")
    a = a:gsub("=/var/lib/etcd", "=" .. root .. "/var/lib/etcd")
    a = a:gsub(":2379", ":" .. cport):gsub(":2380", ":" .. pport):gsub(":2381", ":" .. mport)
    argv[#argv + 1] = t.q(a)
  end
  local log = root .. "/etcd.log"
  self.pid = t.must(("%s >%s 2>&1 & echo $!"):format(table.concat(argv, " "), t.q(log))):match("%d+")
  lu.assertNotNil(self.pid)

  local c = client(root, "apiserver-etcd-client", cport)
  local resp, err
  for _ = 1, 150 do
    resp, err = c:request("GET", "/health")
    if resp and resp.status == 200 then break end
    if not t.sh("kill -0 " .. self.pid) then break end
    sleep(0.2)
  end
  lu.assertNotNil(resp, "etcd did not answer: " .. tostring(err) .. "\n" .. t.read(log))
  lu.assertEquals(resp.status, 200, resp.body)
  lu.assertStrContains(resp.body, '"health":"true"')

  -- the liveness-probe client certificate works too
  resp = assert(client(root, "etcd/healthcheck-client", cport):request("GET", "/health"))
  lu.assertEquals(resp.status, 200)
  -- and the apiserver's client can write and read through the v3 JSON gateway
  resp = assert(c:request("POST", "/v3/kv/put", { body = '{"key":"a2Jvb3Q=","value":"b2s="}' }))
  lu.assertEquals(resp.status, 200, resp.body)
  resp = assert(c:request("POST", "/v3/kv/range", { body = '{"key":"a2Jvb3Q="}' }))
  lu.assertStrContains(resp.body, '"value":"b2s="')

  -- client-cert-auth is on: no certificate, or one from another CA, is refused
  local r1 = client(root, nil, cport):request("GET", "/health")
  lu.assertTrue(r1 == nil or r1.status ~= 200)
  local r2 = client(root, "front-proxy-client", cport):request("GET", "/health")
  lu.assertTrue(r2 == nil or r2.status ~= 200)
  -- the server certificate does not verify against another CA
  local r3, e3 = client(root, "apiserver-etcd-client", cport, { ca_pem = t.read(root .. PKI .. "/front-proxy-ca.crt") })
    :request("GET", "/health")
  lu.assertNil(r3)
  lu.assertNotNil(e3)

  -- metrics endpoint of the probes (plain HTTP on the metrics port)
  local m = http.client({ server = "http://127.0.0.1:" .. mport, timeout = 5, retries = 1 })
  resp = assert(m:request("GET", "/health"))
  lu.assertEquals(resp.status, 200)
end

os.exit(lu.LuaUnit.run("-v"))

-- kboot.http against a real etcd 3.4 (Debian's /usr/bin/etcd) with mutual TLS, as kube-apiserver
-- and kubeadm talk to it: /health, the v3 JSON gateway (put, range, member list), HTTP/2 on one
-- connection, and client certificates from another CA refused.
-- Certificates: kboot.pki (tests/lua/test_http_tls.lua covers openssl-made ones).
local lu = require("luaunit")
local t = require("testlib")
local certs = require("http_certs")
local http = require("kboot.http")
local json = require("cjson")

local crypto = require("kboot.crypto")
local b64, unb64 = crypto.base64, crypto.unbase64

local dir = t.tmpdir()
local pid, url, E, O

local function start_etcd()
  E = certs.make_kboot(dir, "etcd", "kube-apiserver-etcd-client")
  O = certs.make_kboot(dir, "other", "intruder")
  local cport, pport = t.free_port(), t.free_port()
  while pport == cport do pport = t.free_port() end
  url = "https://127.0.0.1:" .. cport
  local peer = "https://127.0.0.1:" .. pport
  local p = E.paths
  pid = certs.spawn(table.concat({
    "/usr/bin/etcd", "--name=kboot-test", "--data-dir=" .. t.q(dir .. "/data"),
    "--listen-client-urls=" .. url, "--advertise-client-urls=" .. url,
    "--listen-peer-urls=" .. peer, "--initial-advertise-peer-urls=" .. peer,
    "--initial-cluster=kboot-test=" .. peer,
    "--cert-file=" .. t.q(p.server_crt), "--key-file=" .. t.q(p.server_key),
    "--client-cert-auth=true", "--trusted-ca-file=" .. t.q(p.ca),
    "--peer-cert-file=" .. t.q(p.server_crt), "--peer-key-file=" .. t.q(p.server_key),
    "--peer-client-cert-auth=true", "--peer-trusted-ca-file=" .. t.q(p.ca),
    "--snapshot-count=10000",
  }, " "), dir .. "/etcd.log")
  -- readiness: the client's own retries poll /health until etcd answers
  local c = assert(http.client({ server = url, ca_pem = E.ca, cert_pem = E.client_crt, key_pem = E.client_key,
                                 retries = 100, retry_deadline = 60 }))
  local r, err
  for _ = 1, 60 do
    r, err = c:request("GET", "/health")
    if r and r.status == 200 and json.decode(r.body).health == "true" then break end
    if not certs.alive(pid) then break end
    os.execute("sleep 0.2")
  end
  c:close()
  if not (r and r.status == 200) then
    error("etcd did not become healthy: " .. tostring(err or (r and r.body)) .. "\n" .. t.read(dir .. "/etcd.log"))
  end
end

local started, start_err = pcall(start_etcd)

local function client(extra)
  local o = { server = url, ca_pem = E.ca, cert_pem = E.client_crt, key_pem = E.client_key }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(http.client(o))
end

TestEtcd = {}
function TestEtcd:setUp() if not started then error(start_err) end end

function TestEtcd:test_health()
  local r = assert(client():request("GET", "/health"))
  lu.assertEquals(r.status, 200)
  lu.assertEquals(json.decode(r.body).health, "true")
end

function TestEtcd:test_kv_put_range_one_connection()
  local c = client()
  local key, value = "/kboot/test/" .. math.random(1e9), "value with \0 bytes and ünïcode"
  local put, resp = c:json("POST", "/v3/kv/put", { key = b64(key), value = b64(value) })
  lu.assertNotNil(put, resp)
  lu.assertNotNil(put.header.revision)
  lu.assertEquals(resp.http_version, "2") -- etcd offers h2 through ALPN
  local got = assert(c:json("POST", "/v3/kv/range", { key = b64(key) }))
  lu.assertEquals(got.count, "1")
  lu.assertEquals(unb64(got.kvs[1].key), key)
  lu.assertEquals(unb64(got.kvs[1].value), value)
  -- a missing key: no kvs
  got = assert(c:json("POST", "/v3/kv/range", { key = b64(key .. "-missing") }))
  lu.assertNil(got.kvs)
  -- all of that over one (HTTP/2) connection
  lu.assertEquals(c:stats().requests, 3)
  lu.assertEquals(c:stats().connects, 1)
  lu.assertEquals(c:stats().retries, 0)
end

function TestEtcd:test_member_list()
  local ml = assert(client():json("POST", "/v3/cluster/member/list", {}))
  lu.assertEquals(#ml.members, 1)
  lu.assertEquals(ml.members[1].name, "kboot-test")
  lu.assertEquals(ml.members[1].clientURLs, { url })
end

function TestEtcd:test_gateway_error_is_an_error()
  -- the gateway answers bad input with a JSON error object, not a Kubernetes Status
  local got, err = client():json("POST", "/v3/kv/put", "{not json")
  lu.assertNil(got)
  lu.assertEquals(err.status, 400)
  -- kboot.http names the request and status and quotes the start of the body
  lu.assertStrContains(err.msg, "POST /v3/kv/put: 400: ")
  lu.assertStrContains(err.msg, "invalid character")
end

function TestEtcd:test_client_cert_from_other_ca_refused()
  for _, o in ipairs({ { cert_pem = O.client_crt, key_pem = O.client_key }, { cert_pem = false } }) do
    if o.cert_pem == false then o = {} end
    local c = assert(http.client({ server = url, ca_pem = E.ca, cert_pem = o.cert_pem, key_pem = o.key_pem, retries = 3 }))
    local r, err = c:request("GET", "/health")
    lu.assertNil(r)
    certs.assert_client_cert_refused(lu, err, url .. "/health", c)
  end
end

function TestEtcd:test_server_from_other_ca_not_trusted()
  local c = assert(http.client({ server = url, ca_pem = O.ca, cert_pem = E.client_crt, key_pem = E.client_key }))
  local _, err = c:request("GET", "/health")
  lu.assertEquals(err.code, 60)
  lu.assertStrContains(err.msg, "TLS verification failed")
end

local rc = lu.LuaUnit.run("-v")
certs.kill(pid)
t.cleanup()
os.exit(rc)

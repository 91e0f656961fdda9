-- Test PKI made with the openssl CLI (independent of kboot.pki), for kboot.http's TLS and etcd
-- tests: a CA, a server certificate for 127.0.0.1/localhost and a client certificate.
local t = require("testlib")
local M = {}

local function sh(dir, cmd) return t.must("cd " .. t.q(dir) .. " && " .. cmd) end

-- Makes <prefix>-ca.{crt,key}, <prefix>-server.{crt,key}, <prefix>-client.{crt,key} in dir.
-- Returns { ca=, server_crt=, server_key=, client_crt=, client_key= } (PEM strings) and
-- paths = { same keys -> file names }.
function M.make(dir, prefix, client_cn)
  local p = prefix
  local key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
  sh(dir, ("openssl req -x509 %s -keyout %s-ca.key -out %s-ca.crt -days 2 -subj /CN=%s-ca " ..
    "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>&1")
    :format(key, p, p, p))
  t.write(dir .. "/" .. p .. "-server.ext",
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n" ..
    "keyUsage=critical,digitalSignature,keyEncipherment\n")
  t.write(dir .. "/" .. p .. "-client.ext", "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")
  for _, leaf in ipairs({ "server", "client" }) do
    local cn = leaf == "client" and (client_cn or p .. "-client") or p .. "-server"
    sh(dir, ("openssl req %s -keyout %s-%s.key -out %s-%s.csr -subj /CN=%s 2>&1"):format(key, p, leaf, p, leaf, cn))
    sh(dir, ("openssl x509 -req -in %s-%s.csr -CA %s-ca.crt -CAkey %s-ca.key -CAcreateserial " ..
      "-out %s-%s.crt -days 2 -extfile %s-%s.ext 2>&1"):format(p, leaf, p, p, p, leaf, p, leaf))
  end
  local r, paths = {}, {}
  for k, f in pairs({ ca = "ca.crt", ca_key = "ca.key", server_crt = "server.crt", server_key = "server.key",
                      client_crt = "client.crt", client_key = "client.key" }) do
    paths[k] = dir .. "/" .. p .. "-" .. f
    r[k] = t.read(paths[k])
  end
  r.paths = paths
  return r
end

-- Alive and not a zombie (nothing may reap our orphans in a container, so kill -0 is not enough).
local function alive_sh(pid)
  return ("[ -e /proc/%s ] && ! grep -q ') Z' /proc/%s/stat 2>/dev/null"):format(pid, pid)
end
function M.alive(pid) return (t.sh(alive_sh(pid))) end

-- Waits until something listens on 127.0.0.1:port (pid must stay alive meanwhile).
function M.wait_listen(port, pid, what)
  for _ = 1, 400 do
    if t.sh(("ss -Hltn 'sport = :%d' | grep -q ."):format(port)) then return end
    if pid and not M.alive(pid) then error(what .. " exited before listening") end
    os.execute("sleep 0.05")
  end
  error(what .. " did not listen on port " .. port)
end

-- Starts a background command; returns its pid. Output goes to logfile.
function M.spawn(cmd, logfile)
  return t.must(("%s >%s 2>&1 </dev/null & echo $!"):format(cmd, t.q(logfile))):match("%d+")
end

-- make_kboot(dir, prefix, client_cn [, ips]) -> the same shape as make, made by kboot.pki (ECDSA
-- P-256), so Go's TLS in etcd checks kboot's certificates: the server certificate (also a client
-- one, as etcd's peer certificates are) names localhost and ips (default 127.0.0.1 and ::1).
function M.make_kboot(dir, prefix, client_cn, ips)
  local pki = require("kboot.pki")
  local ca_key, srv_key, cli_key = table.unpack(pki.generate_batch({ "ECDSA-P256", "ECDSA-P256", "ECDSA-P256" }))
  local day = os.time() + 86400
  local ca = assert(pki.self_signed_ca(ca_key, { cn = prefix .. "-ca", not_after = day }))
  local srv = assert(pki.sign({ cn = prefix .. "-server", dns = { "localhost" }, ip = ips or { "127.0.0.1", "::1" },
                                ext_key_usages = { "server auth", "client auth" }, not_after = day }, srv_key, ca, ca_key))
  local cli = assert(pki.sign({ cn = client_cn, ext_key_usages = { "client auth" }, not_after = day }, cli_key, ca, ca_key))
  local r = { ca = ca:pem(), server_crt = srv:pem(), server_key = assert(srv_key:pem()),
              client_crt = cli:pem(), client_key = assert(cli_key:pem()), paths = {} }
  for _, k in ipairs({ "ca", "server_crt", "server_key", "client_crt", "client_key" }) do
    r.paths[k] = dir .. "/" .. prefix .. "-" .. k .. ".pem"
    t.write(r.paths[k], r[k])
  end
  return r
end

function M.kill(pid)
  if not pid then return end
  os.execute(("kill %s 2>/dev/null; for i in $(seq 100); do %s || exit 0; sleep 0.05; done; " ..
    "kill -9 %s 2>/dev/null"):format(pid, alive_sh(pid), pid))
end

-- Asserts that a request failed because the server refused the client certificate.
-- TLS 1.3: the client learns of the refusal on its first read, unless its first write already
-- hit the closed socket (a reset); then it retries, and stops at the first alert.
function M.assert_client_cert_refused(lu, err, url, client)
  lu.assertStrContains(err.msg, "GET " .. url .. ": ")
  if err.msg:find("reset by peer", 1, true) then
    lu.assertStrMatches(err.msg, ".*; the server may have %a+ .*client certificate")
  else
    lu.assertStrContains(err.msg, "TLS connection refused by the server: ")
    lu.assertStrContains(err.msg, "check the client certificate")
  end
  lu.assertTrue(client:stats().retries <= 3)
end

return M

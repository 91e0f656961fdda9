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

function M.kill(pid)
  if not pid then return end
  os.execute(("kill %s 2>/dev/null; for i in $(seq 100); do %s || exit 0; sleep 0.05; done; " ..
    "kill -9 %s 2>/dev/null"):format(pid, alive_sh(pid), pid))
end

return M

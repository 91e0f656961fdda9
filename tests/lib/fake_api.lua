-- The Lua side of tests/lib/fake_apiserver.py, the one API server double of the Lua tests: start
-- one per test file, hand its kube() to ctx.kube, and check what reached the server over the
-- wire (writes(), the objects it stores) instead of what a fake client recorded.
local t = require("testlib")
local json = require("cjson")

local M = {}

local JSON = { ["Content-Type"] = "application/json" }

local Api = {}
Api.__index = Api

-- start([{ tls = { cert_pem=, key_pem=, ca_pem= } }]) -> api: a fresh server (its own store) on
-- 127.0.0.1, stopped by api:stop() or when the test process exits. With tls it serves HTTPS with
-- that certificate (api.url https://127.0.0.1:PORT, api.endpoint 127.0.0.1:PORT); the test's own
-- clients trust ca_pem (or skip verification without it). also = { "127.0.0.2", ... }: the same
-- server listens on those loopback addresses too, on the same port.
function M.start(o)
  o = o or {}
  local env, d
  if o.tls then
    d = t.tmpdir()
    t.write(d .. "/tls.crt", o.tls.cert_pem)
    t.write(d .. "/tls.key", o.tls.key_pem)
    env = { KBOOT_FAKE_TLS_CERT = d .. "/tls.crt", KBOOT_FAKE_TLS_KEY = d .. "/tls.key" }
  end
  if o.also then
    env = env or {}
    env.KBOOT_PEER_ALSO = table.concat(o.also, " ")
  end
  local pid, port = t.start_peer("fake_apiserver.py", env)
  local self = setmetatable({ pid = pid, port = tonumber(port), endpoint = "127.0.0.1:" .. port,
                              url = (o.tls and "https" or "http") .. "://127.0.0.1:" .. port }, Api)
  self.client_opts = { server = self.url, retries = 0 }
  if o.tls then
    self.client_opts.ca_pem = o.tls.ca_pem
    self.client_opts.insecure = o.tls.ca_pem == nil
  end
  self.http = assert(require("kboot.http").client(self.client_opts))
  return self
end

-- kube([opts]) -> a kboot.kube client of this server (opts as kube.new's)
function Api:kube(opts)
  local http = assert(require("kboot.http").client(self.client_opts))
  return assert(require("kboot.kube").new(http, opts))
end

local function control(self, method, path, body)
  local r = assert(self.http:request(method, path, { body = body and json.encode(body) or nil,
                                                     headers = JSON }))
  assert(r.status == 200, ("%s %s: HTTP %d %s"):format(method, path, r.status, r.body))
  return json.decode(r.body)
end

-- requests() -> { {method=, path=, query=, content_type=}, ... } every API request so far
function Api:requests() return control(self, "GET", "/_fake/requests") end

-- writes() -> { "PATCH /api/v1/...", ... }: the requests that could change something
function Api:writes()
  local out = {}
  for _, r in ipairs(self:requests()) do
    if r.method ~= "GET" then out[#out + 1] = r.method .. " " .. r.path end
  end
  return out
end

-- reset(): a new cluster (its namespaces only), no request log, no injected failures
function Api:reset() control(self, "POST", "/_fake/reset") end

-- sent() -> { "apply secrets kube-system/name", "create secrets kube-system/name", ... }: the
-- writes as verb, resource and object, the way a test names what a phase should send
function Api:sent()
  local out = {}
  for _, r in ipairs(self:requests()) do
    if r.method ~= "GET" then
      local verb = r.method == "POST" and "create" or r.method == "DELETE" and "delete"
        or r.content_type:find("apply-patch", 1, true) and "apply" or "patch"
      local rest = r.path:gsub("^/api/v1/", ""):gsub("^/apis/[^/]+/[^/]+/", "")
      local ns, tail = rest:match("^namespaces/([^/]+)/(.+)$")
      local plural, name = (tail or rest):match("^([^/]+)/?(.*)$")
      if r.method == "POST" then name = r.name or "?" end
      out[#out + 1] = ("%s %s %s/%s"):format(verb, plural, ns or "", name)
    end
  end
  return out
end

-- forget(): clear the request log
function Api:forget() control(self, "DELETE", "/_fake/requests") end

-- fail{ method = "PATCH" | "*", path = "substring", status = 403, times = n (default: always),
--       reason =, message = }: matching requests get that Status instead of an answer; raw = "text":
--       that body (text/plain) with that status instead, for answers that are not a Status
function Api:fail(f) control(self, "POST", "/_fake/fail", f) end
function Api:heal() control(self, "DELETE", "/_fake/fail") end

-- mutate{ method = "GET" | "*", path = "substring", skip = n (default 0), times = n (default:
-- always), patch = {...} }: the answers of matching requests, after the first `skip`, get `patch`
-- merged in (RFC 7386: a json.null removes a key); the store is unchanged. unmutate() ends them all.
function Api:mutate(m) control(self, "POST", "/_fake/mutate", m) end
function Api:unmutate() control(self, "DELETE", "/_fake/mutate") end

-- object(api_version, kind, ns, name) -> the stored object, or nil
function Api:object(av, kind, ns, name)
  local r = assert(self.http:request("GET", require("kboot.kube").path(av, kind, ns, name)))
  if r.status == 404 then return nil end
  assert(r.status == 200, r.body)
  return json.decode(r.body)
end

-- put(obj) -> the stored object: create obj as another client (an admin, a kubelet) would
function Api:put(obj)
  local r = assert(self.http:request("POST", require("kboot.kube").path(obj.apiVersion, obj.kind, obj.metadata.namespace),
                                     { body = json.encode(obj), headers = JSON }))
  assert(r.status == 201, r.body)
  return json.decode(r.body)
end

-- seed_join{ server=, ca_pem=, token_id=, token_secret= }: what a join reads before it writes: kube-public/cluster-info
-- naming server (default self.url) with ca_pem, signed for the token as the bootstrapsigner
-- signs it; kubeadm-config (v1.31.2, ECDSA-P256) and kubelet-config
function Api:seed_join(o)
  local tokens, crypto, yaml = require("kboot.tokens"), require("kboot.crypto"), require("kboot.yaml")
  local cm = tokens.cluster_info(o.server or self.url, o.ca_pem)
  cm.data["jws-kubeconfig-" .. o.token_id] = crypto.jws_sign(cm.data.kubeconfig, o.token_id, o.token_secret)
  self:put(cm)
  self:put{ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "kubeadm-config", namespace = "kube-system" },
            data = { ClusterConfiguration = yaml.encode{ apiVersion = "kubeadm.k8s.io/v1beta4", kind = "ClusterConfiguration",
                                                        kubernetesVersion = "v1.31.2", encryptionAlgorithm = "ECDSA-P256" } } }
  self:put{ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "kubelet-config", namespace = "kube-system" },
            data = { kubelet = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n" } }
end

function Api:stop()
  if self.http then self.http:close() end
  os.execute("kill " .. self.pid .. " 2>/dev/null")
end

return M

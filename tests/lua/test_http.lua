-- kboot.http against a real local HTTP server (python3, tests/lib/http_test_server.py):
-- methods, query/headers, JSON and Kubernetes Status errors, retries, Retry-After,
-- streaming, keep-alive, transport errors, misuse.
local lu = require("luaunit")
local t = require("testlib")
local certs = require("http_certs") -- process helpers
local http = require("kboot.http")
local json = require("cjson")

-- Start the python server; returns pid, base URL.
local function start_server()
  local pid, port = t.start_peer("http_test_server.py")
  return pid, "http://127.0.0.1:" .. port
end

local PID, BASE = start_server()

local function client(extra)
  local o = { server = BASE }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(http.client(o))
end

-- Requests the server saw for path (so retries are counted by the peer, not by us).
local function hits(path)
  return tonumber(assert(client():request("GET", "/hits" .. path)).body)
end

local n = 0
local function uniq(prefix) n = n + 1; return prefix .. "/" .. n .. "-" .. math.random(1e9) end

TestHttp = {}


local raises_arg = t.raises_arg

function TestHttp:test_get_query_headers()
  local c = client()
  local r = assert(c:request("GET", "/echo", {
    query = { b = "x y&z", a = { "1", 2 }, flag = true },
    headers = { ["X-Custom"] = "v1" } }))
  lu.assertEquals(r.status, 200)
  lu.assertEquals(r.headers["content-type"], "application/json")
  lu.assertEquals(r.headers["x-multi"], "a, b")
  lu.assertEquals(r.http_version, "1.1")
  local e = json.decode(r.body)
  lu.assertEquals(e.method, "GET")
  lu.assertEquals(e.rawquery, "a=1&a=2&b=x%20y%26z&flag=true")
  lu.assertEquals(e.query.b, { "x y&z" })
  lu.assertEquals(e.headers["x-custom"], "v1")
  lu.assertStrMatches(e.headers["user-agent"], "kboot/%d+%.%d+%.%d+")
  lu.assertNil(e.headers["authorization"])
end

function TestHttp:test_path_with_own_query()
  local r = assert(client():request("GET", "/echo?x=1", { query = { y = "2" } }))
  lu.assertEquals(json.decode(r.body).rawquery, "x=1&y=2")
end

function TestHttp:test_methods_and_bodies()
  local c = client({ user_agent = "site-agent/1" })
  for _, m in ipairs({ "POST", "PUT", "PATCH", "DELETE" }) do
    local r = assert(c:request(m, "/echo", { body = m .. " body\0bin", headers = { ["Content-Type"] = "text/x" } }))
    local e = json.decode(r.body)
    lu.assertEquals(e.method, m)
    lu.assertEquals(e.body, m .. " body\0bin")
    lu.assertEquals(e.headers["content-type"], "text/x")
    lu.assertEquals(e.headers["user-agent"], "site-agent/1")
    lu.assertNil(e.headers["expect"])
  end
  -- after bodies, a GET is a GET again on the same handle
  local e = json.decode(assert(c:request("GET", "/echo")).body)
  lu.assertEquals(e.method, "GET")
  lu.assertEquals(e.body, "")
  e = json.decode(assert(c:request("POST", "/echo")).body)
  lu.assertEquals(e.method, "POST")
  lu.assertEquals(e.headers["content-length"], "0")
  local r = assert(c:request("HEAD", "/echo"))
  lu.assertEquals(r.status, 200)
  lu.assertEquals(r.body, "")
  -- a large body goes out without an Expect: 100-continue round trip
  local big = string.rep("x", 3 * 1024 * 1024)
  e = json.decode(assert(c:request("PUT", "/echo", { body = big })).body)
  lu.assertEquals(#e.body, #big)
end

function TestHttp:test_error_status_is_a_response()
  local r = assert(client():request("GET", "/status/404"))
  lu.assertEquals(r.status, 404)
  lu.assertEquals(r.body, "status 404 body")
end

function TestHttp:test_token()
  local c = client({ token = "abc.def", plain_http = true }) -- a test peer: plain HTTP asked for
  local e = json.decode(assert(c:request("GET", "/echo")).body)
  lu.assertEquals(e.headers["authorization"], "Bearer abc.def")
  e = json.decode(assert(c:request("GET", "/echo", { headers = { Authorization = "Basic x" } })).body)
  lu.assertEquals(e.headers["authorization"], "Basic x")
end

function TestHttp:test_json_roundtrip()
  local c = client()
  local obj, resp = c:json("POST", "/echo", { a = 1, list = { "x", "y" } })
  lu.assertNotNil(obj, resp)
  lu.assertEquals(resp.status, 200)
  lu.assertEquals(json.decode(obj.body), { a = 1, list = { "x", "y" } })
  lu.assertEquals(obj.headers["content-type"], "application/json")
  lu.assertEquals(obj.headers["accept"], "application/json")
  lu.assertEquals(math.type(obj.n), "integer")
  lu.assertEquals(obj.f, 1.5)
  -- a string is sent as is, with the given content type
  obj = assert(c:json("PATCH", "/echo", "a: 1\n", { content_type = "application/apply-patch+yaml",
                                                    query = { fieldManager = "kboot", force = true } }))
  lu.assertEquals(obj.body, "a: 1\n")
  lu.assertEquals(obj.headers["content-type"], "application/apply-patch+yaml")
  lu.assertEquals(obj.rawquery, "fieldManager=kboot&force=true")
  -- no value: no body, no content type
  obj = assert(c:json("GET", "/echo"))
  lu.assertNil(obj.headers["content-type"])
  -- empty 204 body
  obj, resp = c:json("DELETE", "/empty")
  lu.assertEquals(obj, {})
  lu.assertEquals(resp.status, 204)
end

function TestHttp:test_json_kubernetes_status_error()
  local obj, err = client():json("POST", "/conflict", { kind = "Secret" })
  lu.assertNil(obj)
  lu.assertEquals(err.status, 409)
  lu.assertEquals(err.op, "POST")
  -- the http layer knows statuses, not Kubernetes: the Status body is kboot.kube's to read
  lu.assertNil(err.reason)
  lu.assertStrContains(err.msg, "POST /conflict: 409: {")
  lu.assertEquals(tostring(err), err.msg)
  lu.assertStrContains("failed: " .. err, "already exists")
  local st = require("kboot.kube").status(err)
  lu.assertEquals(st.reason, "AlreadyExists")
  lu.assertEquals(st.message, 'secrets "x" already exists')
end

function TestHttp:test_json_plain_error_body_and_bad_json()
  local _, err = client():json("GET", "/status/404")
  lu.assertEquals(err.status, 404)
  lu.assertEquals(err.msg, "GET /status/404: 404: status 404 body")
  lu.assertNil(require("kboot.kube").status(err))
  _, err = client():json("GET", "/longerror")
  lu.assertEquals(err.status, 400)
  lu.assertEquals(err.msg, "GET /longerror: 400: " .. string.rep("y", 200))
  lu.assertEquals(#err.body, 1000)
  _, err = client():json("GET", "/notjson")
  lu.assertEquals(err.status, 200)
  lu.assertStrContains(err.msg, "GET /notjson: 200 response is not valid JSON")
end

function TestHttp:test_retry_503_then_ok()
  local c = client()
  local p = uniq("/flaky")
  local r = assert(c:request("GET", p))
  lu.assertEquals(r.status, 200)
  lu.assertStrContains(r.body, "ok after 3")
  lu.assertEquals(hits(p), 3)
  lu.assertEquals(c:stats().retries, 2)
  lu.assertEquals(c:stats().requests, 1)
end

function TestHttp:test_retries_override_and_exhaustion()
  local c = client({ retries = 2 })
  local p = uniq("/flaky")
  local r = assert(c:request("GET", p, { retries = 0 }))
  lu.assertEquals(r.status, 503)
  lu.assertEquals(hits(p), 1)
  p = "/status/502?" .. uniq("k")
  r = assert(c:request("GET", p))
  lu.assertEquals(r.status, 502)
  lu.assertEquals(hits("/status/502"), 3) -- 1 + 2 retries (the query is not part of the key)
  local _, err = c:json("GET", "/status/500", nil, { retries = 1 })
  lu.assertEquals(err.status, 500)
end

function TestHttp:test_retry_after_429()
  local c = client()
  local p = uniq("/ratelimit")
  local r = assert(c:request("GET", p))
  lu.assertEquals(r.status, 200)
  lu.assertEquals(hits(p), 2)
  lu.assertEquals(c:stats().retries, 1)
end

function TestHttp:test_4xx_not_retried()
  local c = client()
  for _, s in ipairs({ 400, 401, 403, 404, 409 }) do
    lu.assertEquals(assert(c:request("GET", "/status/" .. s)).status, s)
  end
  lu.assertEquals(c:stats().retries, 0)
end

function TestHttp:test_retry_deadline_bounds_attempts()
  local c = client({ retries = 50, retry_deadline = 0.5 })
  local r = assert(c:request("GET", "/status/504"))
  lu.assertEquals(r.status, 504)
  lu.assertTrue(c:stats().retries < 5, "retries: " .. c:stats().retries)
end

function TestHttp:test_keepalive_one_connection()
  local c = client()
  for i = 1, 6 do
    lu.assertEquals(assert(c:request(i % 2 == 0 and "POST" or "GET", "/echo", { body = "b" })).status, 200)
  end
  local s = c:stats()
  lu.assertEquals(s.requests, 6)
  lu.assertEquals(s.connects, 1)
  lu.assertEquals(s.retries, 0)
end

function TestHttp:test_stream_chunks()
  local c = client()
  local chunks = {}
  lu.assertTrue(c:stream("GET", "/watch/5", nil, function(chunk) chunks[#chunks + 1] = chunk end))
  local all = table.concat(chunks)
  local lines = {}
  for l in all:gmatch("[^\n]+") do lines[#lines + 1] = json.decode(l) end
  lu.assertEquals(#lines, 5)
  lu.assertEquals(lines[5].object.n, 4)
  lu.assertTrue(#chunks >= 2, "chunks arrive as they are sent")
end

function TestHttp:test_stream_stop_and_reuse()
  local c = client()
  local seen = 0
  local ok, err = c:stream("GET", "/forever", {}, function(chunk)
    seen = seen + select(2, chunk:gsub("\n", ""))
    -- the same client still serves ordinary requests from inside the callback
    assert(c:request("GET", "/echo").status == 200)
    if seen >= 3 then return false end
  end)
  lu.assertTrue(ok, err)
  lu.assertTrue(seen >= 3 and seen < 1000)
  lu.assertEquals(assert(c:request("GET", "/echo")).status, 200)
  -- streaming from inside a stream callback is refused, not undefined
  local inner
  ok = c:stream("GET", "/watch/2", {}, function()
    local _, e = c:stream("GET", "/watch/1", {}, function() end)
    inner = e
    return false
  end)
  lu.assertTrue(ok)
  lu.assertStrContains(inner.msg, "busy")
end

function TestHttp:test_stream_callback_error_propagates()
  local c = client()
  local ok, err = pcall(c.stream, c, "GET", "/watch/3", {}, function() error("callback exploded") end)
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "callback exploded")
  lu.assertTrue(c:stream("GET", "/watch/1", {}, function() end))
end

function TestHttp:test_stream_error_status()
  local called = false
  local ok, err = client():stream("GET", "/conflict", {}, function() called = true end)
  lu.assertNil(ok)
  lu.assertFalse(called)
  lu.assertEquals(err.status, 409)
  lu.assertEquals(require("kboot.kube").status(err).reason, "AlreadyExists")
  local c = client()
  ok, err = c:stream("GET", uniq("/flaky"), {}, function() end)
  lu.assertTrue(ok, err)
  lu.assertEquals(c:stats().retries, 2)
end

function TestHttp:test_unreachable_server()
  -- a port that nothing listens on (the server's own port, after stopping a second server)
  local pid, base = start_server()
  certs.kill(pid)
  local c = assert(http.client({ server = base, retries = 2 }))
  local r, err = c:request("GET", "/x")
  lu.assertNil(r)
  lu.assertEquals(err.op, "GET")
  lu.assertEquals(err.code, 7)
  lu.assertStrMatches(err.msg, "GET " .. base:gsub("%p", "%%%0") .. "/x: Couldn't connect to server %(.*%) %(after 3 attempts%)")
  lu.assertEquals(c:stats().retries, 2)
end

function TestHttp:test_empty_reply_and_timeout()
  local c = client({ retries = 1 })
  local _, err = c:request("GET", "/close")
  lu.assertEquals(err.code, 52)
  lu.assertStrContains(err.msg, "Empty reply from server")
  lu.assertStrContains(err.msg, "after 2 attempts")
  _, err = c:request("GET", "/slow/3", { timeout = 0.3, retries = 0 })
  lu.assertEquals(err.code, 28)
  lu.assertStrContains(err.msg, "GET " .. BASE .. "/slow/3: Timeout was reached")
end

function TestHttp:test_close()
  local c = client()
  c:close()
  c:close()
  lu.assertErrorMsgContains("closed http client", c.request, c, "GET", "/echo")
  lu.assertStrContains(tostring(c), "closed")
  do
    local c2 <close> = client()
    assert(c2:request("GET", "/echo"))
  end
end

-- Combinations that would give away what the caller asked for are refused, one line each.
function TestHttp:test_refused_combinations()
  local c, err = http.client({ server = BASE, token = "abc.def" })
  lu.assertNil(c)
  lu.assertEquals(err.op, "http")
  lu.assertEquals(err.msg, "server " .. BASE .. " is plain http://: the bearer token would not be protected by TLS; "
    .. "use https://, or allow it explicitly (plain_http)")
  c, err = http.client({ server = BASE:upper(), cert_pem = "x", key_pem = "y" })
  lu.assertNil(c)
  lu.assertStrContains(err.msg, "the client certificate would not be protected by TLS")
  c, err = http.client({ server = "https://127.0.0.1:1", insecure = true, ca_pem = "x" })
  lu.assertNil(c)
  lu.assertStrContains(err.msg, "insecure (skip TLS verification) together with ca_pem is refused, as client-go refuses it")
  lu.assertNotStrContains(err.msg, "\n")
  -- what stays allowed: http:// without credentials, insecure without a CA
  assert(http.client({ server = BASE })):close()
  assert(http.client({ server = "https://127.0.0.1:1", insecure = true })):close()
end

function TestHttp:test_misuse_raises()
  local c = client()
  lu.assertErrorMsgContains("option 'server' is required", http.client, {})
  lu.assertErrorMsgContains("scheme must be", http.client, { server = "ftp://x" })
  lu.assertErrorMsgContains("No host", http.client, { server = "https://" })
  lu.assertErrorMsgContains("query or fragment", http.client, { server = "https://h/?a=b" })
  lu.assertErrorMsgContains("option 'retries'", http.client, { server = BASE, retries = -1 })
  lu.assertErrorMsgContains("option 'timeout'", http.client, { server = BASE, timeout = "x" })
  lu.assertErrorMsgContains("line break", http.client, { server = BASE, token = "a\nb" })
  lu.assertErrorMsgContains("HTTP method", c.request, c, "get", "/x")
  lu.assertErrorMsgContains("path must start", c.request, c, "GET", "x")
  lu.assertErrorMsgContains("path must start", c.request, c, "GET", "/a b")
  lu.assertErrorMsgContains("option 'query'", c.request, c, "GET", "/x", { query = { a = { {} } } })
  lu.assertErrorMsgContains("option 'query'", c.request, c, "GET", "/x", { query = "a=b" })
  lu.assertErrorMsgContains("line break", c.request, c, "GET", "/x", { headers = { A = "b\r\nEvil: 1" } })
  lu.assertErrorMsgContains("bad header name", c.request, c, "GET", "/x", { headers = { ["A B"] = "x" } })
  lu.assertErrorMsgContains("option 'body'", c.request, c, "GET", "/x", { body = {} })
  lu.assertErrorMsgContains("function expected", c.stream, c, "GET", "/x", {})
  lu.assertErrorMsgContains("option 'timeout' must not be negative", c.request, c, "GET", "/x", { timeout = -1 })
  lu.assertErrorMsgContains("option 'retries'", c.request, c, "GET", "/x", { retries = -1 })
  lu.assertErrorMsgContains("Cannot serialise", c.json, c, "POST", "/x", { f = print })
  lu.assertEquals(c:stats().requests, 0)
end

-- Wrong option types are argument errors naming the options table's position and the field.
function TestHttp:test_option_errors_name_the_argument_and_the_field()
  local c = client()
  raises_arg(1, "option 'timeout': number expected, got string",
    http.client, { server = BASE, timeout = "x" })
  raises_arg(1, "option 'insecure': boolean expected, got number",
    http.client, { server = BASE, insecure = 1 })
  raises_arg(1, "option 'retries': number has no integer representation",
    http.client, { server = BASE, retries = 1.5 })
  -- c:request(method, path, opts): Lua counts the arguments after self, so opts is #3.
  raises_arg(3, "option 'body': string expected, got table",
    function() return c:request("GET", "/x", { body = {} }) end)
  raises_arg(4, "option 'content_type': string expected, got boolean",
    function() return c:json("POST", "/x", nil, { content_type = true }) end)
  raises_arg(3, "option 'query': table expected, got string",
    function() return c:request("GET", "/x", { query = "a=b" }) end)
  raises_arg(3, "option 'headers': bad header name",
    function() return c:request("GET", "/x", { headers = { ["A B"] = "x" } }) end)
  lu.assertEquals(c:stats().requests, 0)
end

local rc = lu.LuaUnit.run("-v")
os.execute("kill " .. PID)
t.cleanup()
os.exit(rc)

-- kboot.rows (lists of rows and records, rendered as tables fitted to a width) and the parts of
-- kboot.pretty the console adds: human durations and private keys shown as <private key>.
local lu = require("luaunit")
local rows = require("kboot.rows")
local pretty = require("kboot.pretty")
local pki = require("kboot.pki")
local crypto = require("kboot.crypto")

TestDurations = {}

function TestDurations:test_short_human_duration()
  local D = pretty.duration
  lu.assertEquals(D(0), "0s")
  lu.assertEquals(D(59.9), "59s") -- truncated, as Go's ShortHumanDuration
  lu.assertEquals(D(60), "1m")
  lu.assertEquals(D(3599), "59m")
  lu.assertEquals(D(3600 * 5 + 59), "5h")
  lu.assertEquals(D(86400 * 364 + 3600 * 23), "364d")
  lu.assertEquals(D(86400 * 365 * 9 + 86400 * 300), "9y")
  lu.assertEquals(D(-90), "1m") -- by its size
  lu.assertErrorMsgContains("bad argument #1 to 'duration'", D, "5")
end

function TestDurations:test_expiry()
  lu.assertEquals(pretty.expiry(364 * 86400 + 100), "in 364d")
  lu.assertEquals(pretty.expiry(-3 * 86400 - 60), "EXPIRED 3d ago")
  lu.assertEquals(pretty.expiry(-1), "EXPIRED 1s ago")
  lu.assertEquals(pretty.expiry(0), "in 0s")
end

TestRedaction = {}

function TestRedaction:test_private_keys_hidden()
  local key = pki.generate_key("ECDSA-P256")
  local pem = key:pem()
  lu.assertEquals(pretty.format(pem), "<private key>")
  lu.assertEquals(pretty.format({ k = key:pem("traditional") }), "{ k = <private key> }")
  -- a kubeconfig's base64, and the fields that hold keys whatever they look like
  local kc = require("kboot.kubeconfig").build({ server = "https://x:6443", ca_pem = "CA", cert_pem = "CERT", key_pem = pem })
  local shown = pretty.format(kc)
  lu.assertStrContains(shown, '["client-key-data"] = <private key>')
  lu.assertNotStrContains(shown, crypto.base64(pem))
  lu.assertStrContains(pretty.format({ ["client-key-data"] = "c2hvcnQ=" }), "<private key>")
  lu.assertEquals(pretty.format({ key_pem = "x" }), "{ key_pem = <private key> }")
  -- certificates and public keys are no secret
  lu.assertStrContains(pretty.format(key:public_pem()), "BEGIN PUBLIC KEY")
  lu.assertStrContains(pretty.format({ data = crypto.base64(key:public_pem()) }), crypto.base64(key:public_pem()))
  -- asked for
  lu.assertEquals(pretty.format(pem, { secrets = true }), pretty.quote(pem))
end

TestRows = {}

local function sample()
  return rows.rows({
    { name = "a", age = 100, msg = "hello world", ok = true },
    { name = "bbbbbbbb", age = 4000000, msg = "x", ok = false, list = { "p", "q" } },
  }, { "name", { "age", format = pretty.duration }, "msg", "ok", "list" }, { level = function(r) return not r.ok and "error" or nil end })
end

function TestRows:test_data_stays_data()
  local l = sample()
  lu.assertEquals(#l, 2)
  lu.assertEquals(l[2].age, 4000000) -- the format is for the eye only
  lu.assertTrue(rows.is_rows(l))
  lu.assertFalse(rows.is_rows({}))
  local n = 0
  for _ in pairs(l) do n = n + 1 end
  lu.assertEquals(n, 2) -- nothing added to the list
end

function TestRows:test_render()
  lu.assertEquals(rows.render(sample()), table.concat({
    "NAME      AGE  MSG          OK   LIST",
    "a         1m   hello world  yes",
    "bbbbbbbb  46d  x            no   p,q",
  }, "\n"))
  lu.assertEquals(rows.render(rows.rows({}, { "name" })), "(none)")
  lu.assertEquals(rows.render(rows.rows({ { a_b = 1 } }, { "a_b", { "a_b", title = "Other" } })), "A-B  Other\n1    1")
end

function TestRows:test_fits_the_width()
  local l = rows.rows({ { name = "node-1", message = ("m"):rep(80) }, { name = "n2", message = "short" } }, { "name", "message" })
  local text = rows.render(l, { width = 40 })
  for line in text:gmatch("[^\n]+") do lu.assertTrue(utf8.len(line) <= 40, line) end
  lu.assertStrContains(text, "node-1  " .. ("m"):rep(31) .. "…")
  -- never below the title (at most 12) or 6: a table too wide stays as narrow as it can
  text = rows.render(rows.rows({ { aaaaaaaaa = ("x"):rep(30), b = ("y"):rep(30) } }, { "aaaaaaaaa", "b" }), { width = 10 })
  lu.assertEquals(text, "AAAAAAAAA  B\n" .. ("x"):rep(8) .. "…  yyyyy…")
  text = rows.render(rows.rows({ { aaaaaaaaaaaaaaaa = ("x"):rep(30) } }, { "aaaaaaaaaaaaaaaa" }), { width = 10 })
  lu.assertEquals(text, ("A"):rep(11) .. "…\n" .. ("x"):rep(11) .. "…")
  -- multi-byte text is cut on characters
  text = rows.render(rows.rows({ { s = ("é"):rep(20) } }, { "s" }), { width = 8 })
  lu.assertEquals(text, "S\n" .. ("é"):rep(7) .. "…")
end

function TestRows:test_color_only_when_asked()
  local plain = rows.render(sample())
  lu.assertNil(plain:find("\27", 1, true))
  local c = rows.render(sample(), { color = true })
  lu.assertStrContains(c, "\27[1mNAME")
  lu.assertStrContains(c, "\n\27[31mbbbbbbbb  46d")
  lu.assertStrContains(c, "\na         1m") -- a good row is not coloured
  local w = rows.render(rows.rows({ { n = "w" } }, { "n" }, { level = function() return "warn" end }), { color = true })
  lu.assertStrContains(w, "\27[33mw\27[0m")
end

function TestRows:test_records()
  local inner = rows.rows({ { k = "v" } }, { "k" })
  local r = rows.record({ server = "https://x", groups = { "a", "b" }, missing = nil, nested = inner, n = 3 },
    { "server", "groups", "missing", "n", "nested" })
  lu.assertTrue(rows.is_record(r))
  lu.assertEquals(rows.render(r), table.concat({
    "server  https://x",
    "groups  a,b",
    "n       3",
    "nested",
    "  K",
    "  v",
  }, "\n"))
end

function TestRows:test_plain_lists_of_flat_tables()
  -- e.g. kboot.etcd_members.list(): shown as a table, name first
  local l = { { id = "1", name = "one", peer_urls = { "https://a:2380" }, learner = false }, { id = "2", name = "two", peer_urls = {}, learner = true } }
  lu.assertEquals(rows.auto(l), { "name", "id", "learner", "peer_urls" })
  lu.assertEquals(rows.render(l), "NAME  ID  LEARNER  PEER-URLS\none   1   no       https://a:2380\ntwo   2   yes")
  -- not flat, not a list, or empty: printed as Lua values
  lu.assertNil(rows.render({ { a = { b = 1 } } }))
  lu.assertNil(rows.render({ a = 1 }))
  lu.assertNil(rows.render({}))
  lu.assertNil(rows.render({ 1, 2 }))
  lu.assertNil(rows.render({ { 1, 2 } }))
  lu.assertNil(rows.render(setmetatable({ { a = 1 } }, {})))
end

function TestRows:test_cells()
  lu.assertEquals(rows.cell(nil), "")
  lu.assertEquals(rows.cell("a\nb"), "a b")
  lu.assertEquals(rows.cell(true), "yes")
  lu.assertEquals(rows.cell(1.5), "1.5")
  lu.assertEquals(rows.cell({ "x", 2 }), "x,2")
  lu.assertEquals(rows.cell({ a = 1 }), "{ a = 1 }")
  lu.assertEquals(rows.cell(require("kboot.error").new("op", "msg")), "msg")
end

os.exit(lu.LuaUnit.run("-v"))

-- kboot.crypto from Lua: every function, every error, and the vectors from a real cluster.
local lu = require("luaunit")
local t = require("testlib")
local crypto = require("kboot.crypto")
local json = require("cjson")
local kerror = require("kboot.error")

local function vector(name)
  return json.decode(t.read(t.vectors .. "/" .. name))
end

-- Assert f(...) returned nil, err with err a kboot.error whose message contains want.
local function assert_fails(want, op, v, err)
  lu.assertNil(v)
  lu.assertTrue(kerror.is(err), "error object expected, got " .. tostring(err))
  lu.assertStrContains(tostring(err), want)
  if op then lu.assertEquals(err.op, op) end
end

-- Assert f(...) raises (misuse) with a message containing want.
local function assert_raises(want, f, ...)
  local ok, e = pcall(f, ...)
  lu.assertFalse(ok, "expected an error")
  lu.assertStrContains(tostring(e), want)
end

TestRandom = {}

function TestRandom:test_random()
  lu.assertEquals(#crypto.random(0), 0)
  lu.assertEquals(#crypto.random(1), 1)
  local a, b = crypto.random(32), crypto.random(32)
  lu.assertEquals(#a, 32)
  lu.assertNotEquals(a, b)
  lu.assertEquals(#crypto.random(100000), 100000)
  assert_raises("size must not be negative", crypto.random, -1)
  assert_raises("number expected", crypto.random, "x")
  assert_raises("number has no integer representation", crypto.random, 1.5)
end

function TestRandom:test_random_string()
  local s = crypto.random_string(2000, "xy")
  lu.assertEquals(#s, 2000)
  lu.assertStrMatches(s, "[xy]+")
  lu.assertStrContains(s, "x")
  lu.assertStrContains(s, "y")
  lu.assertStrMatches(crypto.random_string(50), "[a-z0-9]+") -- default alphabet
  lu.assertEquals(crypto.random_string(0, "ab"), "")
  lu.assertEquals(crypto.random_string(3, "q"), "qqq")
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  lu.assertEquals(#crypto.random_string(64, table.concat(all)), 64)
  assert_raises("alphabet must have 1 to 256 characters", crypto.random_string, 5, "")
  assert_raises("alphabet must have 1 to 256 characters", crypto.random_string, 5, table.concat(all) .. "x")
  assert_raises("size must not be negative", crypto.random_string, -2, "ab")
  assert_raises("string expected", crypto.random_string, 2, {})
end

function TestRandom:test_random_string_no_modulo_bias()
  -- With 200 characters a plain `byte % 200` would pick the first 56 twice as often.
  -- Rejection sampling keeps each near 1/200; the bound (6 standard deviations) makes a
  -- false failure practically impossible while a 2x bias fails every time.
  local alphabet = {}
  for i = 0, 199 do alphabet[#alphabet + 1] = string.char(i) end
  local s = crypto.random_string(200000, table.concat(alphabet))
  local first, last = 0, 0
  for i = 1, #s do
    local b = s:byte(i)
    if b < 56 then first = first + 1 elseif b >= 144 then last = last + 1 end
  end
  -- Both ranges hold 56 characters, so they should be hit about equally often (~56000).
  lu.assertTrue(math.abs(first - last) < 6 * math.sqrt(2 * 56000), ("first %d last %d"):format(first, last))
end

TestToken = {}

function TestToken:test_token_format_and_uniqueness()
  local seen = {}
  for _ = 1, 50 do
    local tok = crypto.token()
    lu.assertStrMatches(tok, "[a-z0-9][a-z0-9][a-z0-9][a-z0-9][a-z0-9][a-z0-9]%.[a-z0-9]+")
    lu.assertEquals(#tok, 23)
    lu.assertTrue(crypto.token_valid(tok))
    lu.assertNil(seen[tok])
    seen[tok] = true
  end
end

function TestToken:test_token_parse()
  local id, secret = crypto.token_parse("abcdef.0123456789abcdef")
  lu.assertEquals(id, "abcdef")
  lu.assertEquals(secret, "0123456789abcdef")
  for _, bad in ipairs({ "", "abcdef", "abcdef.0123456789abcde", "abcdef.0123456789abcdef0",
                         "abcdef:0123456789abcdef", "ABCDEF.0123456789abcdef", "abcdef.0123456789abcdeF",
                         " abcdef.0123456789abcdef", "abcdef.0123456789abcdef\n", "abc-ef.0123456789abcdef",
                         "abcdef.0123456789abcd\0f" }) do
    local v, err = crypto.token_parse(bad)
    assert_fails("expected the form [a-z0-9]{6}.[a-z0-9]{16}", "token_parse", v, err)
    lu.assertFalse(crypto.token_valid(bad), bad)
  end
  local _, err = crypto.token_parse("qwerty.zyxwvutsrqponmlX")
  lu.assertStrContains(tostring(err), "character 16 of the secret is not in [a-z0-9]")
  lu.assertNotStrContains(tostring(err), "zyxwvu") -- a credential stays out of messages
  assert_raises("string expected", crypto.token_parse, nil)
  assert_raises("string expected", crypto.token_valid, {})
end

function TestToken:test_vector_bootstrap_token_secret()
  local v = vector("bootstrap-token-secret.json")
  local id = crypto.unbase64(v.data["token-id"])
  local secret = crypto.unbase64(v.data["token-secret"])
  lu.assertEquals(id, v.decoded["token-id"])
  lu.assertEquals(secret, v.decoded["token-secret"])
  local pid, psecret = crypto.token_parse(id .. "." .. secret)
  lu.assertEquals(pid, id)
  lu.assertEquals(psecret, secret)
  lu.assertEquals(v.metadata.name, "bootstrap-token-" .. pid)
  -- Every data value round-trips through our base64 exactly as kubeadm wrote it.
  for k, b64 in pairs(v.data) do
    lu.assertEquals(crypto.unbase64(b64), v.decoded[k], k)
    lu.assertEquals(crypto.base64(v.decoded[k]), b64, k)
  end
end

function TestToken:test_certificate_key()
  local k = crypto.certificate_key()
  lu.assertEquals(#k, 64)
  lu.assertStrMatches(k, "[0-9a-f]+")
  lu.assertNotEquals(k, crypto.certificate_key())
  lu.assertEquals(#crypto.unhex(k), 32)
end

TestDigest = {}

function TestDigest:test_sha256()
  lu.assertEquals(crypto.sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  lu.assertEquals(crypto.sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  lu.assertEquals(crypto.sha256_hex(("a"):rep(1000000)),
                  "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  lu.assertEquals(#crypto.sha256("x"), 32)
  lu.assertEquals(crypto.hex(crypto.sha256("abc")), crypto.sha256_hex("abc"))
  lu.assertEquals(crypto.sha256_hex(12), crypto.sha256_hex("12")) -- numbers are strings in Lua
  assert_raises("string expected", crypto.sha256, nil)
  assert_raises("string expected", crypto.sha256_hex, {})
end

function TestDigest:test_hmac_sha256()
  -- RFC 4231 test cases 1 and 2.
  lu.assertEquals(crypto.hex(crypto.hmac_sha256(("\x0b"):rep(20), "Hi There")),
                  "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
  lu.assertEquals(crypto.hex(crypto.hmac_sha256("Jefe", "what do ya want for nothing?")),
                  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
  lu.assertEquals(crypto.hex(crypto.hmac_sha256("", "")),
                  "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
  lu.assertEquals(crypto.hmac_sha256("k\0ey", "d\0ata"), crypto.hmac_sha256("k\0ey", "d\0ata"))
  lu.assertNotEquals(crypto.hmac_sha256("k\0ey", "data"), crypto.hmac_sha256("k", "data"))
  assert_raises("string expected", crypto.hmac_sha256, "key")
  assert_raises("string expected", crypto.hmac_sha256, nil, "data")
end

TestEncoding = {}

function TestEncoding:test_hex()
  lu.assertEquals(crypto.hex(""), "")
  lu.assertEquals(crypto.hex("\0\1\171\255"), "0001abff")
  lu.assertEquals(crypto.unhex("0001ABff"), "\0\1\171\255")
  lu.assertEquals(crypto.unhex(""), "")
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  all = table.concat(all)
  lu.assertEquals(crypto.unhex(crypto.hex(all)), all)
  local v, err = crypto.unhex("abc")
  assert_fails("invalid hex: odd length 3", "unhex", v, err)
  v, err = crypto.unhex("zz")
  assert_fails("invalid hex: byte 0x7a at offset 0 is not a hex digit", "unhex", v, err)
  v, err = crypto.unhex("00 1")
  assert_fails("offset 2", "unhex", v, err)
  assert_raises("string expected", crypto.hex, nil)
  assert_raises("string expected", crypto.unhex, true)
end

function TestEncoding:test_base64()
  local cases = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==", fooba = "Zm9vYmE=",
                  foobar = "Zm9vYmFy", ["\251\255\191"] = "+/+/" }
  for plain, enc in pairs(cases) do
    lu.assertEquals(crypto.base64(plain), enc)
    lu.assertEquals(crypto.unbase64(enc), plain)
  end
  lu.assertEquals(crypto.unbase64("Zm9v\nYmFy\n"), "foobar") -- wrapped lines are fine
  lu.assertEquals(crypto.unbase64("Zm9v\r\nYmFy\r\n"), "foobar")
  local bad = {
    ["Zm9v YmFy"] = "byte 0x20 at offset 4 is not in the alphabet",
    ["Zm9v\tYmFy"] = "byte 0x09 at offset 4",
    ["Zg"] = "missing '=' padding",
    ["Zg="] = "missing '=' padding",
    ["Zg==="] = "misplaced '='",
    ["Zg==Zg=="] = "data after '=' padding",
    ["Zm9vY"] = "truncated input",
    ["Zh=="] = "non-zero bits after the last byte",
    ["Zm9v-_"] = "byte 0x2d at offset 4",
  }
  for s, want in pairs(bad) do
    local v, err = crypto.unbase64(s)
    assert_fails("invalid base64: " .. want, "unbase64", v, err)
  end
  assert_raises("string expected", crypto.base64, nil)
  assert_raises("string expected", crypto.unbase64, {})
end

function TestEncoding:test_base64url()
  local cases = { [""] = "", f = "Zg", fo = "Zm8", foo = "Zm9v", foob = "Zm9vYg", fooba = "Zm9vYmE",
                  ["\251\255\191"] = "-_-_", ['{"alg":"HS256","kid":"8mjsec"}'] = "eyJhbGciOiJIUzI1NiIsImtpZCI6IjhtanNlYyJ9" }
  for plain, enc in pairs(cases) do
    lu.assertEquals(crypto.base64url(plain), enc)
    lu.assertEquals(crypto.unbase64url(enc), plain)
  end
  local bad = { ["Zg=="] = "'=' padding at offset 2 (base64url has none)", ["+/+/"] = "byte 0x2b at offset 0",
                ["Zm9v\nYg"] = "byte 0x0a at offset 4", ["Zm9vY"] = "truncated input",
                ["Zh"] = "non-zero bits after the last byte" }
  for s, want in pairs(bad) do
    local v, err = crypto.unbase64url(s)
    assert_fails("invalid base64url: " .. want, "unbase64url", v, err)
  end
  local r = crypto.random(1000)
  lu.assertEquals(crypto.unbase64url(crypto.base64url(r)), r)
  lu.assertEquals(crypto.unbase64(crypto.base64(r)), r)
  assert_raises("string expected", crypto.base64url, nil)
  assert_raises("string expected", crypto.unbase64url, nil)
end

-- Strictness as a property: whatever a decoder accepts is exactly what the encoder writes
-- (line breaks aside), so one value has one encoding. Random strings over the alphabet
-- plus padding and line breaks, short enough that many are accepted.
function TestEncoding:test_decoders_accept_only_canonical_input()
  local function rand_string(chars, n)
    local out = {}
    for i = 1, n do
      local k = math.random(#chars)
      out[i] = chars:sub(k, k)
    end
    return table.concat(out)
  end
  local std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/==\n"
  local url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
  local accepted = { std = 0, url = 0, hex = 0 }
  for _ = 1, 20000 do
    local s = rand_string(std, math.random(0, 9))
    local v, err = crypto.unbase64(s)
    if v then
      lu.assertEquals(crypto.base64(v), (s:gsub("\n", "")), s)
      accepted.std = accepted.std + 1
    else
      lu.assertStrContains(err.msg, "invalid base64: ")
    end
    s = rand_string(url, math.random(0, 9))
    v, err = crypto.unbase64url(s)
    if v then
      lu.assertEquals(crypto.base64url(v), s)
      accepted.url = accepted.url + 1
    else
      lu.assertStrContains(err.msg, "invalid base64url: ")
    end
    s = rand_string("0123456789abcdefABCDEFg", math.random(0, 6))
    v = crypto.unhex(s)
    if v then
      lu.assertEquals(crypto.hex(v), s:lower())
      accepted.hex = accepted.hex + 1
    end
  end
  -- The property was exercised, not vacuously true.
  lu.assertTrue(accepted.std > 100 and accepted.url > 100 and accepted.hex > 100)
end

function TestEncoding:test_equal()
  lu.assertTrue(crypto.equal("abc", "abc"))
  lu.assertTrue(crypto.equal("", ""))
  lu.assertFalse(crypto.equal("abc", "abd"))
  lu.assertFalse(crypto.equal("abc", "ab"))
  lu.assertFalse(crypto.equal("a\0b", "a\0c"))
  assert_raises("string expected", crypto.equal, "a", nil)
end

TestJws = {}

function TestJws:test_vector_sign_reproduces_exactly()
  local v = vector("cluster-info-jws.json")
  lu.assertEquals(crypto.jws_sign(v.kubeconfig, v.token_id, v.token_secret), v.jws)
  lu.assertEquals(crypto.jws_sign(v.kubeconfig, crypto.token_parse(v.token)), v.jws)
end

function TestJws:test_vector_verifies()
  local v = vector("cluster-info-jws.json")
  lu.assertTrue(crypto.jws_verify(v.jws, v.kubeconfig, v.token_id, v.token_secret))
end

function TestJws:test_vector_rejects_other_secret_and_id()
  local v = vector("cluster-info-jws.json")
  local r, err = crypto.jws_verify(v.jws, v.kubeconfig, v.token_id, "0123456789abcdef")
  assert_fails("signature mismatch", "jws_verify", r, err)
  r, err = crypto.jws_verify(v.jws, v.kubeconfig, v.token_id, v.token_secret:sub(1, 15))
  assert_fails("signature mismatch", "jws_verify", r, err)
  r, err = crypto.jws_verify(v.jws, v.kubeconfig, "abcdef", v.token_secret)
  assert_fails('kid "8mjsec" does not match token id "abcdef"', "jws_verify", r, err)
end

function TestJws:test_vector_rejects_any_changed_byte()
  local v = vector("cluster-info-jws.json")
  local kc = v.kubeconfig
  for i = 1, #kc do
    local changed = kc:sub(1, i - 1) .. string.char(kc:byte(i) ~ 0x20) .. kc:sub(i + 1)
    local r, err = crypto.jws_verify(v.jws, changed, v.token_id, v.token_secret)
    if r ~= nil then lu.fail("accepted a kubeconfig changed at byte " .. i) end
    lu.assertStrContains(err.msg, "signature mismatch")
  end
  lu.assertNil(crypto.jws_verify(v.jws, kc .. "\n", v.token_id, v.token_secret))
  lu.assertNil(crypto.jws_verify(v.jws, kc:sub(1, -2), v.token_id, v.token_secret))
  lu.assertNil(crypto.jws_verify(v.jws, "", v.token_id, v.token_secret))
end

function TestJws:test_rejects_changed_jws()
  local v = vector("cluster-info-jws.json")
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  for i = 1, #v.jws do
    local c = v.jws:sub(i, i)
    if c ~= "." then
      local repl = alphabet:sub((alphabet:find(c, 1, true) % 64) + 1, (alphabet:find(c, 1, true) % 64) + 1)
      local changed = v.jws:sub(1, i - 1) .. repl .. v.jws:sub(i + 1)
      local r, err = crypto.jws_verify(changed, v.kubeconfig, v.token_id, v.token_secret)
      if r ~= nil then lu.fail("accepted a JWS changed at byte " .. i) end
      lu.assertTrue(kerror.is(err))
    end
  end
end

local function b64u(s) return crypto.base64url(s) end
local function signed(header, payload, secret)
  local input = b64u(header) .. "." .. b64u(payload)
  return b64u(header) .. ".." .. b64u(crypto.hmac_sha256(secret, input))
end

function TestJws:test_header_checks()
  local p, sec = "payload", "0123456789abcdef"
  lu.assertTrue(crypto.jws_verify(signed('{"kid":"abcdef","alg":"HS256"}', p, sec), p, "abcdef", sec))
  local cases = {
    { '{"alg":"none","kid":"abcdef"}', 'alg must be HS256, header has "none"' },
    { '{"alg":"RS256","kid":"abcdef"}', 'alg must be HS256, header has "RS256"' },
    { '{"kid":"abcdef"}', "alg must be HS256, header has no alg" },
    { '{"alg":"HS256"}', 'JWS header has no kid; expected token id "abcdef"' },
    { '{"alg":"HS256","kid":"other1"}', 'kid "other1" does not match token id "abcdef"' },
    { '{"alg":"HS256","kid":"abcdef","crit":["b64"]}', "critical extensions (crit)" },
    { '{"alg":"HS256","alg":"HS256","kid":"abcdef"}', "malformed JWS: header repeats a member" },
    { '"HS256"', "malformed JWS: header is not a JSON object" },
    { '{"alg":"HS256","kid":"abcdef"', "malformed JWS: header is not a JSON object" },
  }
  for _, c in ipairs(cases) do
    local r, err = crypto.jws_verify(signed(c[1], p, sec), p, "abcdef", sec)
    assert_fails(c[2], "jws_verify", r, err)
  end
  local bad = {
    { "", "malformed JWS: expected <header>..<signature>" },
    { "abc.def.ghi", "the payload part must be empty (detached)" },
    { "abc..def..x", "malformed JWS: expected <header>..<signature>" },
    { "a*c..def", "malformed JWS: header: invalid base64url: byte 0x2a at offset 1" },
    { b64u('{"alg":"HS256","kid":"abcdef"}') .. "..abc", "signature is 3 characters, HS256 gives 43" },
  }
  for _, c in ipairs(bad) do
    local r, err = crypto.jws_verify(c[1], p, "abcdef", sec)
    assert_fails(c[2], "jws_verify", r, err)
  end
end

function TestJws:test_sign_round_trip_and_misuse()
  local p = crypto.random(5000)
  local tok = crypto.token()
  local id, secret = crypto.token_parse(tok)
  local jws = crypto.jws_sign(p, id, secret)
  lu.assertStrMatches(jws, "[%w_-]+%.%.[%w_-]+")
  lu.assertTrue(crypto.jws_verify(jws, p, id, secret))
  lu.assertEquals(crypto.jws_sign(p, id, secret), jws) -- deterministic
  assert_raises("token id must be 1 to 256 printable ASCII", crypto.jws_sign, p, "", secret)
  assert_raises("token id must be 1 to 256 printable ASCII", crypto.jws_sign, p, 'a"b', secret)
  assert_raises("token id must be 1 to 256 printable ASCII", crypto.jws_sign, p, ("a"):rep(257), secret)
  assert_raises("string expected", crypto.jws_sign, p, id, nil)
  assert_raises("string expected", crypto.jws_sign, nil, id, secret)
  assert_raises("string expected", crypto.jws_verify, jws, p, id, nil)
  assert_raises("string expected", crypto.jws_verify, nil, p, id, secret)
end

-- Garbage never crashes the JWS parser and never verifies.
function TestJws:test_garbage_never_verifies()
  local pieces = { "eyJ", "hbGciOiJIUzI1NiIsImtpZCI6I", "..", ".", "=", "_", "-", "A", "\0", "{", "}" }
  for _ = 1, 3000 do
    local s = {}
    for i = 1, math.random(0, 8) do s[i] = pieces[math.random(#pieces)] end
    local r, err = crypto.jws_verify(table.concat(s), "payload", "abcdef", "0123456789abcdef")
    lu.assertNil(r)
    lu.assertEquals(err.op, "jws_verify")
  end
  local p, sec = "payload", "0123456789abcdef"
  local chars = '{}[]:,"\\ a0lgkidHS256truefalsenul-.eu'
  for _ = 1, 3000 do
    local h = {}
    for i = 1, math.random(0, 20) do
      local k = math.random(#chars)
      h[i] = chars:sub(k, k)
    end
    h = table.concat(h)
    local input = crypto.base64url(h) .. "." .. crypto.base64url(p)
    local jws = crypto.base64url(h) .. ".." .. crypto.base64url(crypto.hmac_sha256(sec, input))
    local r, err = crypto.jws_verify(jws, p, "abcdef", sec)
    if r then lu.fail("accepted header " .. h) end
    lu.assertEquals(err.op, "jws_verify")
  end
end

TestAesGcm = {}

function TestAesGcm:test_vector_kubeadm_certs_open()
  local v = vector("kubeadm-certs.json")
  local key = crypto.unhex(v.certificate_key)
  local checked, opened = 0, 0
  for name, b64 in pairs(v.secret.data) do
    local blob = crypto.unbase64(b64)
    local pt, err = crypto.aes_gcm_open(key, blob)
    lu.assertNotNil(pt, name .. ": " .. tostring(err))
    lu.assertEquals(#pt, #blob - 28)
    if name:match("%.crt$") then lu.assertStrContains(pt, "-----BEGIN CERTIFICATE-----") end
    if name:match("%.key$") then lu.assertStrContains(pt, "PRIVATE KEY-----") end
    opened = opened + 1
    if v.plaintext[name] then
      lu.assertEquals(pt, v.plaintext[name], name)
      checked = checked + 1
    end
  end
  lu.assertEquals(opened, 8)
  lu.assertEquals(checked, 2)
end

function TestAesGcm:test_vector_wrong_key_and_tamper()
  local v = vector("kubeadm-certs.json")
  local key = crypto.unhex(v.certificate_key)
  local blob = crypto.unbase64(v.secret.data["sa.pub"])
  local other = crypto.unhex(crypto.certificate_key())
  local r, err = crypto.aes_gcm_open(other, blob)
  assert_fails("authentication failed", "aes_gcm_open", r, err)
  for _, i in ipairs({ 1, 12, 13, 100, #blob - 16, #blob - 15, #blob }) do
    local changed = blob:sub(1, i - 1) .. string.char(blob:byte(i) ~ 1) .. blob:sub(i + 1)
    r, err = crypto.aes_gcm_open(key, changed)
    assert_fails("authentication failed", "aes_gcm_open", r, err)
  end
  r, err = crypto.aes_gcm_open(key, blob:sub(1, -2))
  assert_fails("authentication failed", "aes_gcm_open", r, err)
  r, err = crypto.aes_gcm_open(key, blob:sub(1, 27))
  assert_fails("ciphertext too short: 27 bytes, need at least 28", "aes_gcm_open", r, err)
  r, err = crypto.aes_gcm_open(key, "")
  assert_fails("ciphertext too short: 0 bytes", "aes_gcm_open", r, err)
end

function TestAesGcm:test_seal_round_trip()
  local key = crypto.random(32)
  for _, pt in ipairs({ "", "x", ("secret\0"):rep(1000) }) do
    local blob = crypto.aes_gcm_seal(key, pt)
    lu.assertEquals(#blob, #pt + 28)
    lu.assertEquals(crypto.aes_gcm_open(key, blob), pt)
    lu.assertNotEquals(crypto.aes_gcm_seal(key, pt):sub(1, 12), blob:sub(1, 12)) -- fresh nonce
  end
  -- What kubeadm's upload-certs stores is base64(seal(...)); the vector's own key works too.
  local v = vector("kubeadm-certs.json")
  local key2 = crypto.unhex(v.certificate_key)
  local stored = crypto.base64(crypto.aes_gcm_seal(key2, v.plaintext["ca.crt"]))
  lu.assertEquals(crypto.aes_gcm_open(key2, crypto.unbase64(stored)), v.plaintext["ca.crt"])
end

function TestAesGcm:test_key_misuse()
  assert_raises("AES-256 key must be 32 raw bytes, got 64", crypto.aes_gcm_seal, crypto.certificate_key(), "x")
  assert_raises("AES-256 key must be 32 raw bytes, got 16", crypto.aes_gcm_open, ("k"):rep(16), ("x"):rep(40))
  assert_raises("AES-256 key must be 32 raw bytes, got 0", crypto.aes_gcm_seal, "", "x")
  assert_raises("string expected", crypto.aes_gcm_seal, nil, "x")
  assert_raises("string expected", crypto.aes_gcm_seal, crypto.random(32), nil)
  assert_raises("string expected", crypto.aes_gcm_open, crypto.random(32), nil)
end

TestModule = {}

TestDigest = {}
function TestDigest:test_sha512_256_fips_vectors()
  -- FIPS 180-4 examples (NIST CSRC "SHA-512/256")
  lu.assertEquals(crypto.hex(crypto.sha512_256("abc")), "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23")
  lu.assertEquals(crypto.hex(crypto.sha512_256("")), "c672b8d1ef56ed28ab87c3622c5114069bdd3ad7b8f9737498d0c01ecef0967a")
  lu.assertEquals(#crypto.sha512_256(("x"):rep(1000)), 32)
  assert_raises("string expected", crypto.sha512_256, {})
end

function TestModule:test_exports_exactly_the_contract()
  local want = { "random", "random_string", "token", "token_parse", "token_valid", "certificate_key",
                 "sha256", "sha256_hex", "sha512_256", "hmac_sha256", "hex", "unhex", "base64", "unbase64", "base64url",
                 "unbase64url", "jws_sign", "jws_verify", "aes_gcm_seal", "aes_gcm_open", "equal" }
  local n = 0
  for _, name in ipairs(want) do lu.assertIsFunction(crypto[name], name) end
  for _ in pairs(crypto) do n = n + 1 end
  lu.assertEquals(n, #want)
end

os.exit(lu.LuaUnit.run("-v"))

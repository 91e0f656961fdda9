-- kboot.crypto against real peers: the openssl CLI (digests, HMAC, base64), coreutils
-- basenc (base64url), and python3-cryptography's AES-GCM when it is installed.
local lu = require("luaunit")
local t = require("testlib")
local crypto = require("kboot.crypto")

-- Inputs that exercise every length class and every byte value.
local function inputs()
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  return { "", "a", "ab", "abc", table.concat(all), crypto.random(1000), crypto.random(4097),
           ("line\n"):rep(100) }
end

local function file(dir, name, data)
  local p = dir .. "/" .. name
  t.write(p, data)
  return t.q(p)
end

-- First hex field of `openssl dgst -r` output ("<hex> *stdin").
local function hexfield(out) return (out:match("^(%x+)")) end

TestOpenssl = {}
function TestOpenssl:tearDown() t.cleanup() end

function TestOpenssl:test_sha256_matches_openssl_dgst()
  local d = t.tmpdir()
  for i, data in ipairs(inputs()) do
    local f = file(d, "in" .. i, data)
    local want = hexfield(t.must("openssl dgst -sha256 -r " .. f))
    lu.assertEquals(crypto.sha256_hex(data), want, "input " .. i)
    lu.assertEquals(crypto.hex(crypto.sha256(data)), want)
  end
end

function TestOpenssl:test_hmac_sha256_matches_openssl_mac()
  local d = t.tmpdir()
  local keys = { "k", "0123456789abcdef", crypto.random(32), crypto.random(64), crypto.random(131) }
  for i, data in ipairs(inputs()) do
    local key = keys[(i % #keys) + 1]
    local f = file(d, "in" .. i, data)
    local want = hexfield(t.must(("openssl dgst -sha256 -mac HMAC -macopt hexkey:%s -r %s")
                                 :format(crypto.hex(key), f)))
    lu.assertEquals(crypto.hex(crypto.hmac_sha256(key, data)), want, "input " .. i)
  end
  -- The plain-text key form, as one would type a token secret.
  local want = hexfield(t.must("printf %s payload | openssl dgst -sha256 -mac HMAC -macopt key:2copzlairpsqjfy6 -r"))
  lu.assertEquals(crypto.hex(crypto.hmac_sha256("2copzlairpsqjfy6", "payload")), want)
end

function TestOpenssl:test_base64_both_ways_with_openssl()
  local d = t.tmpdir()
  for i, data in ipairs(inputs()) do
    -- kboot encodes (one line), openssl decodes.
    local enc = file(d, "enc" .. i, crypto.base64(data))
    t.must(("openssl base64 -d -A -in %s -out %s"):format(enc, t.q(d .. "/dec" .. i)))
    lu.assertEquals(t.read(d .. "/dec" .. i), data, "openssl decode of input " .. i)
    -- openssl encodes (wrapped at 64 columns), kboot decodes.
    local raw = file(d, "raw" .. i, data)
    local wrapped = t.must(("openssl base64 -in %s"):format(raw))
    lu.assertEquals(crypto.unbase64(wrapped), data, "kboot decode of input " .. i)
    lu.assertEquals(crypto.base64(data), (wrapped:gsub("\n", "")))
  end
end

function TestOpenssl:test_base64url_both_ways_with_basenc()
  if not t.sh("basenc --version") then
    print("basenc not installed; skipped")
    return
  end
  local d = t.tmpdir()
  for i, data in ipairs(inputs()) do
    local raw = file(d, "raw" .. i, data)
    -- basenc pads; JWS base64url (and ours) does not.
    local peer = t.must("basenc --base64url -w0 " .. raw):gsub("=+$", "")
    lu.assertEquals(crypto.base64url(data), peer, "input " .. i)
    lu.assertEquals(crypto.unbase64url(peer), data)
    local enc = crypto.base64url(data)
    local padded = enc .. ("="):rep((4 - #enc % 4) % 4)
    t.must(("basenc --base64url -d %s > %s"):format(file(d, "enc" .. i, padded), t.q(d .. "/dec" .. i)))
    lu.assertEquals(t.read(d .. "/dec" .. i), data)
  end
end

function TestOpenssl:test_jws_signature_is_openssl_hmac_of_signing_input()
  local d = t.tmpdir()
  local id, secret = crypto.token_parse(crypto.token())
  local payload = "apiVersion: v1\nkind: Config\nclusters: []\n"
  local jws = crypto.jws_sign(payload, id, secret)
  local header, sig = jws:match("^([%w_-]+)%.%.([%w_-]+)$")
  lu.assertNotNil(header)
  lu.assertEquals(crypto.unbase64url(header), ('{"alg":"HS256","kid":"%s"}'):format(id))
  local f = file(d, "input", header .. "." .. crypto.base64url(payload))
  local want = hexfield(t.must(("openssl dgst -sha256 -mac HMAC -macopt key:%s -r %s"):format(secret, f)))
  lu.assertEquals(crypto.hex(crypto.unbase64url(sig)), want)
end

-- python3-cryptography wraps OpenSSL too, but through its own GCM code path and API; the
-- kubeadm vector (Go's crypto/cipher) in tests/lua is the independent peer.
local py = [[
import sys, binascii
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
key = binascii.unhexlify(sys.argv[2])
data = open(sys.argv[3], "rb").read()
if sys.argv[1] == "open":
    out = AESGCM(key).decrypt(data[:12], data[12:], None)
else:
    import os
    nonce = os.urandom(12)
    out = nonce + AESGCM(key).encrypt(nonce, data, None)
open(sys.argv[4], "wb").write(out)
]]

function TestOpenssl:test_aes_gcm_with_python_cryptography()
  if not t.sh("python3 -c 'import cryptography.hazmat.primitives.ciphers.aead'") then
    print("python3-cryptography not installed; AES-GCM relies on the kubeadm vector and NIST KAT")
    return
  end
  local d = t.tmpdir()
  local script = file(d, "gcm.py", py)
  local key = crypto.random(32)
  for i, data in ipairs(inputs()) do
    local sealed = file(d, "sealed" .. i, crypto.aes_gcm_seal(key, data))
    t.must(("python3 %s open %s %s %s"):format(script, crypto.hex(key), sealed, t.q(d .. "/opened" .. i)))
    lu.assertEquals(t.read(d .. "/opened" .. i), data, "python open of input " .. i)
    local plain = file(d, "plain" .. i, data)
    t.must(("python3 %s seal %s %s %s"):format(script, crypto.hex(key), plain, t.q(d .. "/py" .. i)))
    lu.assertEquals(crypto.aes_gcm_open(key, t.read(d .. "/py" .. i)), data, "kboot open of input " .. i)
  end
  -- A blob python rejects is one we reject too.
  local blob = crypto.aes_gcm_seal(key, "x")
  local bad = blob:sub(1, -2) .. string.char(blob:byte(-1) ~ 1)
  local ok = t.sh(("python3 %s open %s %s %s"):format(script, crypto.hex(key), file(d, "bad", bad), t.q(d .. "/o")))
  lu.assertFalse(ok)
  lu.assertNil(crypto.aes_gcm_open(key, bad))
end

os.exit(lu.LuaUnit.run("-v"))

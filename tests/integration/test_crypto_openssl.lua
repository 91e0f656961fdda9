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

-- One shell command covers all inputs (each process costs on a busy machine); its output
-- is split into lines, one per input.
local function lines(cmd)
  local out = {}
  for l in t.must(cmd):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- First hex field of `openssl dgst -r` output ("<hex> *file").
local function hexfield(out) return (out:match("^(%x+)")) end

TestOpenssl = {}
function TestOpenssl:tearDown() t.cleanup() end

function TestOpenssl:test_sha256_matches_openssl_dgst()
  local d, data, files = t.tmpdir(), inputs(), {}
  for i = 1, #data do files[i] = file(d, "in" .. i, data[i]) end
  local got = lines("openssl dgst -sha256 -r " .. table.concat(files, " "))
  lu.assertEquals(#got, #data)
  for i = 1, #data do
    lu.assertEquals(crypto.sha256_hex(data[i]), hexfield(got[i]), "input " .. i)
    lu.assertEquals(crypto.hex(crypto.sha256(data[i])), hexfield(got[i]))
  end
end

function TestOpenssl:test_hmac_sha256_matches_openssl_mac()
  local d, data, cmds = t.tmpdir(), inputs(), {}
  local keys = { "k", "0123456789abcdef", crypto.random(32), crypto.random(64), crypto.random(131) }
  for i = 1, #data do
    cmds[i] = ("openssl dgst -sha256 -mac HMAC -macopt hexkey:%s -r %s")
              :format(crypto.hex(keys[i % #keys + 1]), file(d, "in" .. i, data[i]))
  end
  -- The plain-text key form too, as one would type a token secret.
  cmds[#cmds + 1] = "printf %s payload | openssl dgst -sha256 -mac HMAC -macopt key:2copzlairpsqjfy6 -r"
  local got = lines(table.concat(cmds, "; "))
  lu.assertEquals(#got, #data + 1)
  for i = 1, #data do
    lu.assertEquals(crypto.hex(crypto.hmac_sha256(keys[i % #keys + 1], data[i])), hexfield(got[i]), "input " .. i)
  end
  lu.assertEquals(crypto.hex(crypto.hmac_sha256("2copzlairpsqjfy6", "payload")), hexfield(got[#got]))
end

function TestOpenssl:test_base64_both_ways_with_openssl()
  local d, data, cmds = t.tmpdir(), inputs(), {}
  for i = 1, #data do
    -- kboot encodes (one line) and openssl decodes; openssl encodes (wrapped at 64 columns).
    cmds[#cmds + 1] = ("openssl base64 -d -A -in %s -out %s"):format(file(d, "enc" .. i, crypto.base64(data[i])),
                                                                 t.q(d .. "/dec" .. i))
    cmds[#cmds + 1] = ("openssl base64 -in %s -out %s"):format(file(d, "raw" .. i, data[i]), t.q(d .. "/wrapped" .. i))
  end
  t.must(table.concat(cmds, " && "))
  for i = 1, #data do
    lu.assertEquals(t.read(d .. "/dec" .. i), data[i], "openssl decode of input " .. i)
    local wrapped = t.read(d .. "/wrapped" .. i)
    lu.assertEquals(crypto.unbase64(wrapped), data[i], "kboot decode of input " .. i)
    lu.assertEquals(crypto.base64(data[i]), (wrapped:gsub("\n", "")))
  end
end

function TestOpenssl:test_base64url_both_ways_with_basenc()
  if not t.sh("basenc --version") then
    print("basenc not installed; skipped")
    return
  end
  local d, data, cmds = t.tmpdir(), inputs(), {}
  for i = 1, #data do
    local enc = crypto.base64url(data[i])
    local padded = enc .. ("="):rep((4 - #enc % 4) % 4) -- basenc wants padding; JWS has none
    cmds[#cmds + 1] = ("basenc --base64url -d %s > %s"):format(file(d, "enc" .. i, padded), t.q(d .. "/dec" .. i))
    cmds[#cmds + 1] = ("basenc --base64url -w0 %s > %s"):format(file(d, "raw" .. i, data[i]), t.q(d .. "/peer" .. i))
  end
  t.must(table.concat(cmds, " && "))
  for i = 1, #data do
    lu.assertEquals(t.read(d .. "/dec" .. i), data[i], "basenc decode of input " .. i)
    local peer = t.read(d .. "/peer" .. i):gsub("=+$", "")
    lu.assertEquals(crypto.base64url(data[i]), peer, "input " .. i)
    lu.assertEquals(crypto.unbase64url(peer), data[i])
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

-- python3-cryptography ends in OpenSSL as well, so this checks the layout (nonce first, tag
-- last, no AAD) against another API more than the cipher itself; the kubeadm vector (Go's
-- crypto/cipher) in tests/lua and the GCM known answers in tests/unit cover the cipher.
local py = [[
import sys, os, binascii
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
key = AESGCM(binascii.unhexlify(sys.argv[1]))
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    if path.endswith(".sealed"):
        try:
            out = key.decrypt(data[:12], data[12:], None)
        except Exception:
            out = b"REJECTED"
        open(path[:-7] + ".opened", "wb").write(out)
    else:
        nonce = os.urandom(12)
        open(path + ".py", "wb").write(nonce + key.encrypt(nonce, data, None))
]]

function TestOpenssl:test_aes_gcm_with_python_cryptography()
  if not t.sh("python3 -c 'import cryptography.hazmat.primitives.ciphers.aead'") then
    print("python3-cryptography not installed; AES-GCM relies on the kubeadm vector and NIST KAT")
    return
  end
  local d, data, args = t.tmpdir(), inputs(), {}
  local key = crypto.random(32)
  for i = 1, #data do
    args[#args + 1] = file(d, i .. ".sealed", crypto.aes_gcm_seal(key, data[i]))
    args[#args + 1] = file(d, i .. ".plain", data[i])
  end
  -- A blob with one flipped tag bit: python must reject it as we do.
  local blob = crypto.aes_gcm_seal(key, "x")
  local bad = blob:sub(1, -2) .. string.char(blob:byte(-1) ~ 1)
  args[#args + 1] = file(d, "bad.sealed", bad)
  t.must(("python3 %s %s %s"):format(file(d, "gcm.py", py), crypto.hex(key), table.concat(args, " ")))
  for i = 1, #data do
    lu.assertEquals(t.read(d .. "/" .. i .. ".opened"), data[i], "python open of input " .. i)
    lu.assertEquals(crypto.aes_gcm_open(key, t.read(d .. "/" .. i .. ".plain.py")), data[i],
                    "kboot open of input " .. i)
  end
  lu.assertEquals(t.read(d .. "/bad.opened"), "REJECTED")
  lu.assertNil(crypto.aes_gcm_open(key, bad))
end

os.exit(lu.LuaUnit.run("-v"))

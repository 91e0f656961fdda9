-- kboot.pki's fast issue path (SubjectPublicKeyInfo from the key's parameters, one DER round
-- trip instead of encoder/decoder look-ups; inline batches of cheap keys; SEC1/PKCS#1 PEM
-- written directly): the output must be what the OpenSSL encoder path wrote before.
-- GOLDEN holds fingerprints made by the code before the change (`kboot THIS_FILE golden`
-- with an old binary to remake them); openssl CLI checks compare keys and certs as a peer.
local lu = require("luaunit")
local t = require("testlib")
local pki = require("kboot.pki")
local crypto = require("kboot.crypto")

local T0, T1 = 1700000000, 1700000000 + 400 * 86400

-- Fixed keys (openssl genpkey), so certificates with fixed serials and dates are fixed too.
local PEM = {
  rsa2048 = [[
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCVamI6FmqqWEkA
w2w6htaU1DyHVtuXdCrLhxBgzvSZ80aSLGWOMufbgiKtIPETHBZY672SafV45Jy0
wkil4tNoLz0+jEKyqN8MiQAY5NaX956krWCwMbwZsp92Ir08xfF3Yaujh5VdR1aB
7wG6rmhBmiuo4wHsXa14H/Bw3AW8v2P3WxFtXYgk5ATEFBoqhdaCm5YSDpkLkTBt
WqrPda+7zk8azWcXs03ZnqIJZgn9xdCldVOUOALIt+jyf3IJca2VfuOav930sjLN
iMqfW3D56fMOKBlnGPAmdDY2c/A+t2LhYDdaH2ryctDaq7jsTneW2exo4SvNE+Bt
CR3v5KR9AgMBAAECggEACa7jj0apIoGGt6cykidvbCVGB/Jb2Filtlt6Nv/qj7iZ
q/r3GOxZJNtt8mDmZrnlA93BQyYdS7irJDbMHP4Se9fF5RITd38kt2wAhtx7wM0C
KcN3tut+OH8gQPh24aOlZrp8dGRizHEFXPXXm5jWdlvutOsDUqVuitCtFS9ZKtZ2
H9koWvJzzOZzbhso9gnHiqkWj2BNbnbW+yLQh50Dgs3zj84PYfBMCkEdkU2Or8I/
AU4oq9uBUy/hwh+RLNnUxRmjFXUw40rmgAeAD+ABP6RLlESjgwVqit6M46YdMCHQ
J1NtpcDHT4Z8O12qfoREMMqKrZ2m24c3A/XUfL5I+QKBgQDKAY2os0QchE9CCn7U
u5/B1zzVkwKnnZt/im2sclTsZosO8bD3nHqEwpZxUDwn5ET/385LaSPvOUDpsT2D
HiPjkYCFWRjapjhln07mOqAdO0dB30hETfrp0pfjEHWULJZmN6fuEEav27ArRl1O
19TKV2MiZIhsD/mB3zbSYfEdRQKBgQC9WkcXMxyOCad4ka0TVVP0uke6m0sfRGJe
aubdo6GXgnDH5d4lUFsgyTVga5VDMpD321s9ByEVrGoGvmHn5vLbqkA07sYUG+dB
zO2nnUey0Ys/RqOxIoZADZr4zOC6xuvpzcYmpmMd4+qMRekhwUA86IEc6i7Mt4nQ
WzsCg0BR2QKBgC26tErgaibafObCYXvfDYdgJlFi+lLfhvgUakeDil4JyKkVZa5o
KgQr2MrGExgkwMn77EN+Bbh+CYfdq8Mm65D0u1d0l//HaTT4H3BXDTAQ30y2MzHj
RU3xcpjgfP2SKmnxZ36pCJd+8B6byzux+GXl6nc6svdjlmQkF9EAgwjRAoGAfvTZ
t3dgjOdyLwfVeKH8cZi4YSigHK24GsAoXLDKtpAR2CWKZZBUGU5vCF/5qx1rT5P2
v5tZFnQMfssFT/xsFtY2yIbTrkXrLxYcvgZZPU77wwg01p5kTuwQXQLZJsIbCR8b
3WwwBql66GQzZJty26O0ddOaX04sC9QvY4bnCDkCgYA+TVvwpxLm91WD2LwE+Vwo
/Nt3peokOnp+sOwY9KSOA6nh+ljU3DHhIPGwbSfShjFmEWetM/M7y2jJNziVxCOy
aOuJXcVw47hQxQZkycIkV/NhRFnXI6K7Fm/DpE/8OiKfXtKz/YmkhzhvSFvBbtuN
W4P5r7WYaYaxksbnNHK+DA==
-----END PRIVATE KEY-----]],
  rsa3072 = [[
-----BEGIN PRIVATE KEY-----
MIIG/AIBADANBgkqhkiG9w0BAQEFAASCBuYwggbiAgEAAoIBgQD2qGIBsfQ2yOfA
TXwT+txULvPKhQSOP6JPTdv+SxeuOY2Jh07JxKVrSwrUeIrkrGBgOa8z9xCxdcdE
Mogy4xHQEC45lOEX8FN149sDiOkJtbfWUh8mmOKeJYtLRKWJHS2OLFO169JsNvm6
9uQ848a6ZMkpD15KE2sRIsU0Eh+26x0fosBi5KFbV+6c4lMlyeTpYM2yNVkPcdjU
b6EJnssAa5fq6aLaXlK5evo5tyD/09Y+GnUfhkBgGJHmupGzd6B7kh18hIn8viH/
eRZ9uwDtcWHhmojb04XLOcEF6pqERtl3xmavyK2zsRAcG5BD784B1TvsJ9weMtzW
yVfTdTqzxnv1gddvxyr+wpX1y4niGwQgmDbARg6+n814b7b7QKlnkxoLC1zE1ReH
oPNUxhnVCjFxuXsW5p27gknxo92uHhRhYNoXn+BUsR59CY2sjYKeWbWYNlY07Ot6
ldJPuufPSmIbnWi9k5Xk0TUhyuBmAOFMvaOvHwNSFhF0vu8TMDMCAwEAAQKCAYAU
O7vOZ8qgs9pO7AxBl1J7lV5qPn8hLBckaj6hnYdTw2TY40CTTI5FPuKkiz7Zg0pk
mlbE7H9yDzdJYNvLUNUlPC6OiqfsTsqJ4ScWIyT6pu1tp07m26O7VVkX04nAtaQH
BZvYUH/yYJAbxiTy2bxzjdDyjVAuw2kE/tUucE4psx+weKlPc3HJDG2GcQphDy63
9jjpZXbozW37/yw2ndAJOMo9euzg/NvMW0orcdpDIh1w+rqg22Jsf5d4VdWd4zId
ttA+PU7SbizX6+i6HcMYvpa7qRJSYj5M/9gTnUMhiGtlmFAmJXlvYhPLuxI/IruC
oT4Yx8g1iXcy+qVSTyX5ELHJpW26b5jYcjxZc2oV0yak2mTPruJlgMTdW2MZbZJj
u21flJTYnqg2Kh20/wDzAhSnmvDIRWLGA5cIqK97DQXV7wSUvpEyhPij7+42Z16h
bhzmpYOUBHdxs7vULEJ0kVd01pGgPQX/Hlki1XWpRw3SGtmlyrc2WhPBKQeNKAEC
gcEA/C7v2EorL6uUDjXQggwdZCgYO2fiNPsyd0A5+223sZN4ahMeL2bLqRbIPfTA
NhCLXnQXTIBY1S3eUrbn19zh3qstpwF8qrZXVuhd6aRz8MVESzgffWE50FJl+dg6
uorwxmTq0LzLn2yfvPrKXx5SeQt7xO3/aCqj5EQ1j+VoKnZhck/eWU4y2NvxRoKJ
M8Bh/3VclgSo0b3G8BX1aNYcaPn6xN+BiF8Xdc27nwfCFkj3I4Zi87uMCovGA53o
2CQdAoHBAPpkCZdkaj36NUVq3I2o7SGWQ9Pr49IOY100tuBULxImkqv/9koE81V7
pzXTGXkQRvRLxm6czI5F6VoUU+/0JKG91jH3n1kAq6dTIihauhL9iVtr0jXD+IgO
bzPpv9U/0zvzdxWkc5CredkDsJ70crEvG08Zj1bSTqGbLC3ypJMPRppDh8E3fW6W
K0PVZCuVRMXneYs4zzgiaA6J4p7jt4z9i52xZ6VE9Xl5LUOXSQnHk6EvEvy0XtkA
q6sv2PvUjwKBwGsghUKcPzxA5uQieDDGdLXXUnPp7W4UR5vg7MCiGyaUPtLQzEHW
qS1rQCURk5Vj8dBuAHe/Df2BPrBkgphwfILatMn9F7htPSzuCPb3pUjig+BwNvBM
HQMh/a/k6w3Td/TPafDCQr22pyTgZJeDigVhm3JMp/LYKkcNsrMuANII99xXkVze
mzsEM7qAOUiCsR6T/IC9+fkfZSMYMOgYDHmLt7tqNtx3iL/CZbFo2kodNN8id2aS
hSr1tWhT7FXlAQKBwENYgsfoZzbyRD++hUHIzLb67pViXe1Sl2ErW4Csw9hS7aI7
fyfbewNj9c5hT/mi6iKs+tsna1Fc9m2XCBiDBxNFtwXLf11187VWg9psxJ10+evP
7UMuyXr2vuwsk78sooj+a+ozSC4CIQzAlFG8l9iWPfchfc8xU5rd3J0jJSa0th2p
yiqq3R7QXySokX+zb0L3hlZu2jVT877tUTnBL85JJ7MrUyA9kvSwJf+HAksSFeAF
hErZzKT7LDEn9mmNewKBwDlb8twvN81+9q4uwo/DWIMCkB1aOMR5vfkzqjbk+t+E
AsIrb0SS/98dbeoL9wAnBNdAjkWnHcMV8Qx8qHdCdL3vV/RbVolfz8cNleKk3App
4WsRrx8zdTK+PFgBZV/NDtqW1PQMZ4Y9CGBmKD6B704JjXP1h8mvqSH5wXggVEa/
qRAY3sHEwjcg6XImDHb1pnhSVRY4nGXVOLR06Cx0MYuYZYbmfGuv+3hEKBa9QKTx
NK0AuBOK4AIcuEqe1aHIFw==
-----END PRIVATE KEY-----]],
  p256 = [[
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9ecgifdyU/rHSfew
zVSS2uqTms8gO+NsFPZzTIKlTQahRANCAASlpmVoG0NbZJRbweUHHceKhimoWvkz
HDGW/hh1gWj0CMQFU5P0klrzz+2y0vh1J5G0tzsWdzX3wQpsFdeSREZj
-----END PRIVATE KEY-----]],
  p384 = [[
-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDDnb5GMAgyq35poNOVo
g63EnAZeezHuIp5oX2GnYxkxkBnYLqiEYbWdPKP7dNnOu1ehZANiAAQGJDVoNIw3
Wi3TSEGf63sA/Oanfre09n0FWRWtVRU+pfvRo6Vr7Q+DcGDKxJZpnXsC9nlSzpMD
dbunPwWffsjuRvkf+95/KPqyBRm04wGtMeste0gPxpQFz8C8sGcB3fA=
-----END PRIVATE KEY-----]],
  -- a compressed public point: left to OpenSSL's encoders
  p256c = [[
-----BEGIN EC PRIVATE KEY-----
MFcCAQEEIPXnIIn3clP6x0n3sM1Uktrqk5rPIDvjbBT2c0yCpU0GoAoGCCqGSM49
AwEHoSQDIgADpaZlaBtDW2SUW8HlBx3HioYpqFr5Mxwxlv4YdYFo9Ag=
-----END EC PRIVATE KEY-----
]],
  ed25519 = [[
-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIOfg1eXRcnFFnWwAXHpD5RjbhZgxZ1HPXQDky081u2Uf
-----END PRIVATE KEY-----]],
}

-- Made by the encoder-based code (commit 50816ef) with `kboot test_pki_fast.lua golden`.
local GOLDEN = {
  ["ca_der.ed25519"] = "0a0da84edf67dcc0236c956966c436f563f25ee62c90f98a64b06d29e1115161",
  ["ca_der.rsa2048"] = "522d8bc3e446b28370d0612597b8f6909c0a4b46ae7c795f82be475b728ade98",
  ["ca_tbs.ed25519"] = "8c76ef5907a77433a01662d13811f259b28294d1fb20a581d3e870a1892cac7a",
  ["ca_tbs.p256"] = "ee3abfae85cc32330073d7b28a5ee4cb420da0f079d07cc104c99aeeadb4ee1d",
  ["ca_tbs.p256c"] = "33fa010019b00a9d2d1972a4b8926a227e18c27b1717f32442aa8d220b374220",
  ["ca_tbs.p384"] = "7931ae06fbe88cdfefbe18fd63952c5f11f020d22e99bd3a5a0acfdbbb5e3f09",
  ["ca_tbs.rsa2048"] = "d6efe179bfe4b531d1cd3a879447fbb9f6748460ad568a3caf235b8355e1c892",
  ["ca_tbs.rsa3072"] = "0d210eae544c86830f5cd28952a61619b7d60c1fc4a2c9a6f0b671ff6149500c",
  ["csr_cert_der.ed25519"] = "1c01bb0774e203a822b71cfd17fd6e181b954d2fe193c8db700ec91483c556e7",
  ["csr_cert_der.p256"] = "274af8eed3e5ff00611cfaa7b9904295cae0ce4bd0d59d07615d53b72c24cd7d",
  ["csr_cert_der.p256c"] = "8f492701e5ce0f0b14a40fcfcd070fe8a99b30290d1e746a6ae967dfca1709ee",
  ["csr_cert_der.p384"] = "6b71a27d88024a3760c3027ac94662bbdc460b205eede790951dd613ca4c7cad",
  ["csr_cert_der.rsa2048"] = "5eb7abe500dbea668b3b19a919ff345f4d6d8dbc01541eee2008942c4776a337",
  ["csr_cert_der.rsa3072"] = "3d9710358b793b177f294910b929d9a2c296558026388fe59fd469e9e8f508a5",
  ["key_pkcs8.ed25519"] = "4fca82b7ed03a06d88b9a64dad1b6f14925e89cb14cc77d5b0a79f41bad2b8e6",
  ["key_pkcs8.p256"] = "66b74c1981f0160b3057527c105a784e558368316e87215f699d225667daef12",
  ["key_pkcs8.p256c"] = "aaaa1190717e5c81916ce21848d616ed12ef223b1b59059e6c8e303b5a46eb8e",
  ["key_pkcs8.p384"] = "acec97d79cffe9fbdbe5c29d38aa5943bebb9c2539c798e4fe2f03b8973bb976",
  ["key_pkcs8.rsa2048"] = "ab165ce4822b9e8fa57794ae9357f9cc388c016f2007605c3fd556a0e451d49a",
  ["key_pkcs8.rsa3072"] = "8fe8a3766e526a8eb6af8334c5eab52bc08e5be5c14297ce9edaa570e1d46f4e",
  ["key_trad.p256"] = "60fcc225a70752ea3cec33973183f6fdbfdd6ef7f55c31e43b980ec81f3d88c0",
  ["key_trad.p256c"] = "60fcc225a70752ea3cec33973183f6fdbfdd6ef7f55c31e43b980ec81f3d88c0",
  ["key_trad.p384"] = "827f4a87dba383766dc6a8d60d2cc8460236105b89bb9b0257443fa2ceadb0f9",
  ["key_trad.rsa2048"] = "c512911e725f8005099a3991ccd0f6311cf017d1bb87ea8fe80bc754e5c7e1e7",
  ["key_trad.rsa3072"] = "11817c463b683efa3a21aae2bf742c164dc1bee559aca18f17d024805ea29bf0",
  ["leaf_der.ed25519.ed25519"] = "6b03800fd3d5512cb540f2659c3b1eb5178102a2530b1acdf9c3e24e732c2e1b",
  ["leaf_der.ed25519.rsa2048"] = "44aa3fd73298a61f68bb38cf6258c61c14319e3ffc2b1e13cc51214ccbe6b88f",
  ["leaf_der.p256.ed25519"] = "0017907273c203755103b273803189f82ca0a9dede813cb93335e678209695f3",
  ["leaf_der.p256.rsa2048"] = "8bc63df46e45d61e2ee2e8968bb80496e56159a9db31e40a187084069e50a99b",
  ["leaf_der.p256c.ed25519"] = "2ec443c94e790b5376d3f5b2bd17d6bf0a6aaa74564109fbe7387dca1429a6ab",
  ["leaf_der.p256c.rsa2048"] = "faed95d323862d1d879991067f6c33d6bdf22de06a28303ae5d9a4c48b073cef",
  ["leaf_der.p384.ed25519"] = "3e4f7c0e12780444ee774b75f981b44bf16aacd6f7adf89e74daea33d6e9c45d",
  ["leaf_der.p384.rsa2048"] = "2df70fa32bc6ee9e4e9d9ebc84d431c7438f13581794f5a9657a335d06e8325e",
  ["leaf_der.rsa2048.ed25519"] = "ef6fe61910799ab14d845d4e98dffa2fb8cf4bdb797b31826dfa566c61814167",
  ["leaf_der.rsa2048.rsa2048"] = "64088ccad23a6bf5db919858a6885b0422109245d5f0161e045e7745ba1f0ca4",
  ["leaf_der.rsa3072.ed25519"] = "264af928a68d7f70e337dd8757e4be1b3947c4307ac9c0b45240299ad3e89e42",
  ["leaf_der.rsa3072.rsa2048"] = "c1729c36ecc58d62cac0b60f472473be4b33ab57f64502023b9326ef4605c450",
  ["leaf_tbs.ed25519.ed25519"] = "84fbb47b44f8360508cb351fdf54315b423ec20c4244d8a06af7684b173bcf0f",
  ["leaf_tbs.ed25519.p256"] = "f87f15e90c6ff98e9df4fc26c6225fd0f4c15cfc8be6a4d3e8e19627a3af1cb9",
  ["leaf_tbs.ed25519.rsa2048"] = "c31cce3c6523fb1c86267c7471ac10c7daea938c6108d821c721c25ced8001b3",
  ["leaf_tbs.p256.ed25519"] = "7a15480827d6a986de225ffd1daa3060ed3bab6a1894460d2cd16535b3f73dc2",
  ["leaf_tbs.p256.p256"] = "d3f7c2a8278b5a8c031ca3642fcd1af0c74f518ccde58cfd03ed77f85c36947b",
  ["leaf_tbs.p256.rsa2048"] = "d50bc8c6ea039639fc52f50e42c505b27f2aee91a4bfc1648147a3d637ac6b6b",
  ["leaf_tbs.p256c.ed25519"] = "c713118a7712e10caffb3a02e488973a4655bc4ffeb4bc2151957f5f6269987e",
  ["leaf_tbs.p256c.p256"] = "8f342c1478d295d328d3285643d9e22ed2e23afb61f1271901b87f1c6a76766e",
  ["leaf_tbs.p256c.rsa2048"] = "3681c44ec238e8a658dc7463ab7a26509535ac9aeb5b5840cf21f893c426c499",
  ["leaf_tbs.p384.ed25519"] = "842ca1977c4abf7cccef2ca2ceacc604cff1efbd70b12b1943727dffe62fccc1",
  ["leaf_tbs.p384.p256"] = "57fa7e114e2b6a7a8abca9ced2acb0d4f955c9a7839548e0e21594f9d1d1da15",
  ["leaf_tbs.p384.rsa2048"] = "6e8ba6faedbfd6d6764224a302f016f749d52d2820317fa094d13cbc324dd10c",
  ["leaf_tbs.rsa2048.ed25519"] = "05657cf72149d5d76d16ce6a5e843a49324d2c41bcc92c25d32630f30d0aaad0",
  ["leaf_tbs.rsa2048.p256"] = "69905621a8ee2d7da2a098f0664a7ee1b01ccb6b8484ce7564be5eee17b00a1a",
  ["leaf_tbs.rsa2048.rsa2048"] = "47f8386d089ceb9e896edc89c94520304be2bc36a1031d523f8147a7b4f678e9",
  ["leaf_tbs.rsa3072.ed25519"] = "82d25819b42ee98a1b4ea2168700b9a5c535ea5cf9895defde7a36d96af30494",
  ["leaf_tbs.rsa3072.p256"] = "12b3005ba79cf8c17912de95ea91840ef46d08af82a17cf60f7ce0849f4ec995",
  ["leaf_tbs.rsa3072.rsa2048"] = "76e71da15b9e62fab4898bad35fdab8e89dfae5b46d0ec03d212f0aabf8b88d6",
  ["mid_der.ed25519"] = "59c7b06c4998f68bdb3d037a88d426596c3446b449f868b64ed2a5dc2134b637",
  ["mid_der.p256"] = "124b4c6a0f936ed393818f9294bf984230787b64d6e798df01ab9d157b75c447",
  ["mid_der.p256c"] = "c76e2819357a5792ba50e50bee8186a37677c271837fb54af81e9a1eac671135",
  ["mid_der.p384"] = "871714e4c5a2d0d9ba79516bd3ce18909bfaf169a190cafd383ec84cf3fa2b17",
  ["mid_der.rsa2048"] = "cf6cef65200dd74cb969290f71cdfdf36a57a2816a32f9627b238fce53a7b9e6",
  ["mid_der.rsa3072"] = "0752a032dc10ce1576cb594fb5c889e9897f99645edb73ef5cf738c7b3b4c47b",
  ["pub.ed25519"] = "fdfc681be37fa0ce08b40c716ba3e8acc222d1c0cc5b257cc947634ec473cb1f",
  ["pub.p256"] = "4e39cc926fa729d58ea37d4998aed73ce881a93221425ec328836d29b41e71d7",
  ["pub.p256c"] = "b0a7f35642749cc1680ae84e077106d7496dcf1af3a9123abd5cf897af115e86",
  ["pub.p384"] = "6c232fc3272b5b9afa76de852a2b1ba983bd63d1e33625a32ca259554e27ae20",
  ["pub.rsa2048"] = "debfc8ede7d7fb6e2427ed727165e09fd0f474fba9ca840b019d66f6dc94e3f4",
  ["pub.rsa3072"] = "effa50116687bd61f21af36477cd57fa187cb3b664e31620b3d215cecbe750d4",
  ["pub_leaf_der.ed25519"] = "6b03800fd3d5512cb540f2659c3b1eb5178102a2530b1acdf9c3e24e732c2e1b",
  ["pub_leaf_der.p256"] = "0017907273c203755103b273803189f82ca0a9dede813cb93335e678209695f3",
  ["pub_leaf_der.p256c"] = "2ec443c94e790b5376d3f5b2bd17d6bf0a6aaa74564109fbe7387dca1429a6ab",
  ["pub_leaf_der.p384"] = "3e4f7c0e12780444ee774b75f981b44bf16aacd6f7adf89e74daea33d6e9c45d",
  ["pub_leaf_der.rsa2048"] = "ef6fe61910799ab14d845d4e98dffa2fb8cf4bdb797b31826dfa566c61814167",
  ["pub_leaf_der.rsa3072"] = "264af928a68d7f70e337dd8757e4be1b3947c4307ac9c0b45240299ad3e89e42",
}

local SUBJECTS = { "rsa2048", "rsa3072", "p256", "p384", "ed25519", "p256c" }
local CAS = { "rsa2048", "p256", "ed25519" }
local DETERMINISTIC = { rsa2048 = true, ed25519 = true } -- PKCS#1 v1.5 and Ed25519 signatures

local function h(s) return crypto.sha256_hex(s) end

-- The tbsCertificate of a DER certificate (ECDSA signatures differ run to run; the content must not).
local function tlv(s, pos)
  local len, hdr = s:byte(pos + 1), 2
  if len >= 0x80 then
    local n = len - 0x80
    len = 0
    for i = 1, n do len = len * 256 + s:byte(pos + 1 + i) end
    hdr = 2 + n
  end
  return pos + hdr, pos + hdr + len - 1
end
local function tbs(der)
  local inner = tlv(der, 1)
  local _, last = tlv(der, inner)
  return der:sub(inner, last)
end

local LEAF = { cn = "leaf", o = { "system:masters", "b" }, dns = { "kubernetes", "a.example" },
               ip = { "10.96.0.1", "::1" }, ext_key_usages = { "server auth", "client auth" },
               serial = "0abc", not_before = T0, not_after = T1 }

local function fingerprints()
  local fp, keys, cas = {}, {}, {}
  for _, s in ipairs(SUBJECTS) do
    keys[s] = assert(pki.load_key(PEM[s]))
    cas[s] = assert(pki.self_signed_ca(keys[s], { cn = "golden-" .. s, o = { "kboot" }, serial = 1,
                                                  not_before = T0, not_after = T1 }))
  end
  for _, s in ipairs(SUBJECTS) do
    local k = keys[s]
    if s ~= "ed25519" then fp["key_trad." .. s] = h(k:pem("traditional")) end
    fp["key_pkcs8." .. s] = h(k:pem())
    fp["pub." .. s] = h(k:public_pem())
    fp["ca_tbs." .. s] = h(tbs(cas[s]:der()))
    if DETERMINISTIC[s] then fp["ca_der." .. s] = h(cas[s]:der()) end
    for _, c in ipairs(CAS) do
      local leaf = assert(pki.sign(LEAF, k, cas[c], keys[c]))
      fp["leaf_tbs." .. s .. "." .. c] = h(tbs(leaf:der()))
      if DETERMINISTIC[c] then fp["leaf_der." .. s .. "." .. c] = h(leaf:der()) end
    end
    local mid = assert(pki.sign({ cn = "mid-" .. s, is_ca = true, path_len = 0, serial = 7,
                                  not_before = T0, not_after = T1 }, k, cas.ed25519, keys.ed25519))
    fp["mid_der." .. s] = h(mid:der())
    local csr = assert(pki.csr(k, { cn = "csr-" .. s, o = { "g" }, dns = { "x.example" } }))
    local fromcsr = assert(pki.sign_csr(csr, { serial = 3, not_before = T0, not_after = T1,
                                               ext_key_usages = { "client auth" } }, cas.rsa2048, keys.rsa2048))
    fp["csr_cert_der." .. s] = h(fromcsr:der())
    -- A public-only subject key gives the same certificate.
    local pubonly = assert(pki.load_key(k:public_pem()))
    fp["pub_leaf_der." .. s] = h(assert(pki.sign(LEAF, pubonly, cas.ed25519, keys.ed25519)):der())
  end
  return fp
end

if arg and arg[1] == "golden" then
  local fp, names = fingerprints(), {}
  for n in pairs(fp) do names[#names + 1] = n end
  table.sort(names)
  io.write("local GOLDEN = {\n")
  for _, n in ipairs(names) do io.write(string.format("  [%q] = %q,\n", n, fp[n])) end
  io.write("}\n")
  return 0
end

TestGolden = {}

-- Every certificate, key PEM and public PEM equals what the encoder-based code wrote.
function TestGolden:test_same_bytes_as_before()
  local fp = fingerprints()
  local n = 0
  for name, want in pairs(GOLDEN) do
    lu.assertEquals(fp[name], want, name)
    n = n + 1
  end
  for name in pairs(fp) do lu.assertNotNil(GOLDEN[name], "no golden value for " .. name) end
  lu.assertEquals(n, 73)
end

local ALGS = { "RSA-2048", "RSA-3072", "ECDSA-P256", "ECDSA-P384", "ED25519" }
local dir
local function file(name, data)
  local p = dir .. "/" .. name
  if data then t.write(p, data) end
  return p
end
local function openssl(args) return t.must("openssl " .. args) end

TestOpenssl = {}
function TestOpenssl:setUp() dir = t.tmpdir() end
function TestOpenssl:tearDown() t.cleanup() end

-- openssl's view of each issued certificate's key is the key's public half, and the key
-- PEMs are what openssl itself writes for the key.
function TestOpenssl:test_cert_public_key_is_the_key()
  local cak = assert(pki.generate_key("ECDSA-P256"))
  local ca = assert(pki.self_signed_ca(cak, { cn = "ca" }))
  file("ca.crt", ca:pem())
  local keys = assert(pki.generate_batch(ALGS))
  for i, alg in ipairs(ALGS) do
    local k = keys[i]
    lu.assertEquals(k:algorithm(), alg)
    local self = assert(pki.self_signed_ca(k, { cn = "self-" .. alg }))
    local leaf = assert(pki.sign({ cn = "leaf-" .. alg, dns = { "x" } }, k, ca, cak))
    local csr = assert(pki.csr(k, { cn = "csr-" .. alg }))
    local fromcsr = assert(pki.sign_csr(csr, {}, ca, cak))
    file("key.pem", k:pem())
    local pub = openssl("pkey -in " .. file("key.pem") .. " -pubout")
    lu.assertEquals(k:public_pem(), pub, alg)
    for what, c in pairs({ self = self, leaf = leaf, csr = fromcsr }) do
      file("c.crt", c:pem())
      lu.assertEquals(openssl("x509 -in " .. file("c.crt") .. " -noout -pubkey"), pub, alg .. " " .. what)
      lu.assertEquals(c:public_key():public_pem(), pub)
      lu.assertFalse(c:public_key():is_private())
      lu.assertTrue(k:matches(c))
      lu.assertEquals(c:spki_pin(), k:spki_pin())
    end
    file("leaf.crt", leaf:pem())
    lu.assertStrContains(openssl("verify -CAfile " .. file("ca.crt") .. " " .. file("leaf.crt")), ": OK")
    file("self.crt", self:pem())
    lu.assertStrContains(openssl("verify -CAfile " .. file("self.crt") .. " " .. file("self.crt")), ": OK")
    lu.assertEquals(openssl("pkey -in " .. file("key.pem")), k:pem(), alg)
    if alg ~= "ED25519" then
      local tool = alg:find("^RSA") and "rsa -traditional" or "ec"
      lu.assertEquals(openssl(tool .. " -in " .. file("key.pem") .. " 2>/dev/null"), k:pem("traditional"), alg)
    end
  end
end

-- The SKI is SHA-1 of the subjectPublicKey bits (computed here by openssl from the key), and
-- each leaf's AKI is its CA's SKI.
function TestOpenssl:test_ski_and_aki()
  for _, alg in ipairs(ALGS) do
    local k = assert(pki.generate_key(alg))
    local ca = assert(pki.self_signed_ca(k, { cn = "ca-" .. alg }))
    file("pub.der", openssl("pkey -in " .. file("k.pem", k:pem()) .. " -pubout -outform DER"))
    -- SubjectPublicKeyInfo: SEQUENCE { algorithm, BIT STRING }; hash the bits after the
    -- unused-bits octet.
    local der = t.read(file("pub.der"))
    local inner = tlv(der, 1)
    local _, alg_end = tlv(der, inner)
    local bits_start = tlv(der, alg_end + 1)
    file("bits", der:sub(bits_start + 1))
    local sha1 = openssl("dgst -sha1 -r " .. file("bits")):match("^(%x+)")
    lu.assertEquals(ca:info().ski, sha1, alg)
    file("ca.crt", ca:pem())
    local ext = openssl("x509 -in " .. file("ca.crt") .. " -noout -ext subjectKeyIdentifier")
    lu.assertStrContains(ext:gsub(":", ""):lower(), sha1)
    local leaf = assert(pki.sign({ cn = "leaf" }, assert(pki.generate_key("ED25519")), ca, k))
    lu.assertEquals(leaf:info().aki, sha1)
    lu.assertNil(leaf:info().ski)
  end
end

TestBatch = {}

function TestBatch:test_cheap_keys_correct_and_distinct()
  for _, alg in ipairs({ "ECDSA-P256", "ECDSA-P384", "ED25519" }) do
    local keys = assert(pki.generate_batch(16, alg))
    lu.assertEquals(#keys, 16)
    local seen = {}
    for i, k in ipairs(keys) do
      lu.assertEquals(k:algorithm(), alg)
      lu.assertTrue(k:is_private())
      local pin = k:spki_pin()
      lu.assertNil(seen[pin], alg .. " key " .. i .. " repeats key " .. tostring(seen[pin]))
      seen[pin] = i
      -- Each key signs and is what its PEM says.
      local again = assert(pki.load_key(k:pem()))
      lu.assertTrue(again:matches(k))
      local c = assert(pki.self_signed_ca(k, { cn = "k" .. i }))
      lu.assertTrue(c:issued_by(c))
    end
  end
end

function TestBatch:test_mixed_batch_in_order()
  local want = { "ED25519", "RSA-2048", "ECDSA-P384", "ECDSA-P256", "RSA-2048", "ED25519", "ECDSA-P256" }
  local keys = assert(pki.generate_batch(want))
  local seen = {}
  for i, alg in ipairs(want) do
    lu.assertEquals(keys[i]:algorithm(), alg, "key " .. i)
    lu.assertNil(seen[keys[i]:spki_pin()])
    seen[keys[i]:spki_pin()] = true
  end
end

function TestBatch:test_openssl_checks_batch_keys()
  local d = t.tmpdir()
  for i, k in ipairs(assert(pki.generate_batch(4, "ECDSA-P256"))) do
    local p = d .. "/k" .. i .. ".pem"
    t.write(p, k:pem("traditional"))
    lu.assertStrContains(t.must("openssl ec -in " .. p .. " -check -noout 2>&1"), "valid")
  end
  t.cleanup()
end

-- Certificates issued in this process decode their key object on first use only; each method,
-- called first on a fresh certificate, answers as on the same certificate loaded from PEM.
TestDeferred = {}

local function fresh()
  local cak = assert(pki.generate_key("ECDSA-P256"))
  local ca = assert(pki.self_signed_ca(cak, { cn = "fresh-ca" }))
  local k = assert(pki.generate_key("ED25519"))
  local leaf = assert(pki.sign({ cn = "leaf", dns = { "leaf" } }, k, ca, cak)) -- ca: still fresh
  return ca, cak, leaf, k
end

function TestDeferred:test_each_method_first()
  local checks = {
    info = function(ca, _, leaf) lu.assertEquals(leaf:info(), pki.load_cert(leaf:pem()):info())
                                 lu.assertEquals(ca:info(), pki.load_cert(ca:pem()):info()) end,
    public_key = function(_, _, leaf, k) lu.assertEquals(leaf:public_key():public_pem(), k:public_pem()) end,
    verify = function(ca, _, leaf) lu.assertTrue(leaf:verify(ca)) lu.assertTrue(ca:verify(ca)) end,
    issued_by = function(ca, _, leaf) lu.assertTrue(leaf:issued_by(ca)) lu.assertFalse(ca:issued_by(leaf)) end,
    matches = function(ca, cak, leaf, k) lu.assertTrue(k:matches(leaf)) lu.assertTrue(cak:matches(ca)) end,
    eq = function(ca, _, leaf) lu.assertTrue(leaf == pki.load_cert(leaf:pem())) lu.assertFalse(leaf == ca) end,
    spki_pin = function(_, _, leaf, k) lu.assertEquals(leaf:spki_pin(), k:spki_pin()) end,
    der = function(_, _, leaf) lu.assertEquals(leaf:der(), pki.load_cert(leaf:pem()):der()) end,
    expires_in = function(_, _, leaf) lu.assertTrue(leaf:expires_in() > 364 * 86400) end,
    sign_csr = function(ca, cak, _, k)
      local c = assert(pki.sign_csr(assert(pki.csr(k, { cn = "r" })), {}, ca, cak))
      lu.assertTrue(c:verify(ca))
    end,
  }
  for name, check in pairs(checks) do
    local ca, cak, leaf, k = fresh()
    local ok, err = pcall(check, ca, cak, leaf, k)
    lu.assertTrue(ok, name .. ": " .. tostring(err))
  end
end

function TestDeferred:test_fresh_ca_checks()
  local ca, cak, leaf, k = fresh()
  local v, e = pki.sign({ cn = "x" }, k, ca, assert(pki.generate_key("ECDSA-P256")))
  lu.assertNil(v)
  lu.assertStrContains(tostring(e), "CA key does not match CA certificate")
  v, e = pki.sign({ cn = "x" }, k, leaf, k)
  lu.assertNil(v)
  lu.assertStrContains(tostring(e), "not a CA")
  local mid = assert(pki.sign({ cn = "mid", is_ca = true }, cak, ca, cak))
  lu.assertEquals(mid:info().aki, ca:info().ski)
end

os.exit(lu.LuaUnit.run("-v"))

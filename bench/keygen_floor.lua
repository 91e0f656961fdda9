-- The floor for bench_init.sh: N keys of ALG with the batch primitive alone, in one process.
-- Usage: kboot bench/keygen_floor.lua N ALG
local n, alg = ...
local keys = require("kboot.pki").generate_batch(math.tointeger(tonumber(n)), alg or "RSA-2048")
assert(#keys == tonumber(n))

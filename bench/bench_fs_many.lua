-- kboot.fs: many new files in one directory (a tenants run writing hundreds of kubeconfigs, say).
-- For each N, the median over ROUNDS fresh directories of the time to write N new files one by one
-- (each durable) and N in one batch (one commit), in microseconds per file, and the ratio of that
-- per-file cost to the smallest N's: near 1.0 means the cost per file does not grow with the
-- directory (before the per-directory temp scan it grew with N: each write read the directory).
-- Run: kboot bench/bench_fs_many.lua DIR [ROUNDS=5] [N,N,...=250,1000,4000]  (DIR: empty, to use)
local fs = require("kboot.fs")
local time = require("kboot.time")
local dir = assert(..., "usage: kboot bench/bench_fs_many.lua DIR [ROUNDS] [N,N,...]")
local ROUNDS = math.tointeger(tonumber(select(2, ...) or 5))
local sizes = {}
for n in (select(3, ...) or "250,1000,4000"):gmatch("%d+") do sizes[#sizes + 1] = math.tointeger(tonumber(n)) end
assert(fs.set_root(dir))

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local run = 0
local function per_file(n, batch)
  local r = {}
  for i = 1, ROUNDS do
    run = run + 1
    local d = "/d" .. run
    assert(fs.mkdir(d, "0755"))
    local write = function() for k = 1, n do assert(fs.write(d .. "/f" .. k, "x", "0644")) end return true end
    local t0 = time.now()
    if batch then assert(fs.batch(write)) else write() end
    r[i] = (time.now() - t0) * 1e6 / n
    assert(fs.remove(d, { recursive = true }))
  end
  return median(r)
end

print(("kboot.fs: N new files in one directory under %s, median of %d rounds, us per file"):format(dir, ROUNDS))
for _, mode in ipairs { { "one by one", false }, { "one batch", true } } do
  local base
  for _, n in ipairs(sizes) do
    local us = per_file(n, mode[2])
    base = base or us
    print(("  %-10s N=%-6d %9.1f us/file  %5.2fx the N=%d cost"):format(mode[1], n, us, us / base, sizes[1]))
  end
end

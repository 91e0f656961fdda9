-- kboot.fs per-operation cost under a sandbox root, at the depth kboot's own paths have
-- (/etc/kubernetes/pki/etcd/x): exists, stat, read, an unchanged write, a new write inside a
-- batch (temp only) and a batch commit of 34 files on tmpfs-or-disk, each the median over ROUNDS
-- rounds of N operations, in microseconds per operation. Prints the resolver in use (openat2, the
-- walk with KBOOT_FS_RESOLVE=walk, or "n/a" for a kboot from before confinement).
-- Run: kboot bench/bench_fs_ops.lua DIR [N=2000] [ROUNDS=9] [tsv]   (DIR: an empty directory to
-- use; tsv: "resolver<TAB>name<TAB>us" lines, for bench_fs.sh)
local fs = require("kboot.fs")
local time = require("kboot.time")
local dir = assert(..., "usage: kboot bench/bench_fs_ops.lua DIR [N] [ROUNDS]")
local N = math.tointeger(tonumber(select(2, ...) or 2000))
local ROUNDS = math.tointeger(tonumber(select(3, ...) or 9))
local TSV = select(4, ...) == "tsv"
assert(fs.set_root(dir))

local D = "/etc/kubernetes/pki/etcd"
local key = ("k"):rep(1700) -- a PEM key's size
assert(fs.write(D .. "/ca.key", key, "0600", { mkdir = true }))

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local function per_op(n, f)
  local r = {}
  for i = 1, ROUNDS do
    local t0 = time.now()
    f(n)
    r[i] = (time.now() - t0) * 1e6 / n
  end
  return median(r)
end

local cases = {
  { "exists", function(n) for _ = 1, n do fs.exists(D .. "/ca.key") end end },
  { "stat", function(n) for _ = 1, n do fs.stat(D .. "/ca.key") end end },
  { "read", function(n) for _ = 1, n do fs.read(D .. "/ca.key") end end },
  { "write, unchanged", function(n) for _ = 1, n do fs.write(D .. "/ca.key", key, "0600") end end },
  { "write in a batch (temp only) + commit, 34 files", function(n)
      for _ = 1, n // 34 do
        fs.batch(function() for i = 1, 34 do assert(fs.write(D .. "/f" .. i, key .. i, "0600")) end end)
      end
    end, 34 * (N // 34) },
}
local resolver = fs.resolver and fs.resolver() or "n/a"
if not TSV then
  print(("kboot.fs per operation under a root (%s), median of %d rounds, resolver %s"):format(dir, ROUNDS, resolver))
end
for _, c in ipairs(cases) do
  local n = c[3] or N
  local us = per_op(n, function() c[2](n) end)
  print(TSV and ("%s\t%s\t%.3f"):format(resolver, c[1], us) or ("  %-50s %8.2f us"):format(c[1], us))
end

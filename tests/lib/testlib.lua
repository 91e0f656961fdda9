-- Small helpers for kboot's Lua tests (run inside the kboot host, with luaunit).
local M = {}

M.bin = os.getenv("KBOOT_BIN") or "kboot"
M.src = os.getenv("KBOOT_SRC") or "."
M.vectors = os.getenv("KBOOT_VECTORS") or (M.src .. "/../shared/vectors")

function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Run a shell command; returns ok (exit 0), combined stdout+stderr, exit code.
function M.sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1", "r"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok == true, out, code
end

-- Like sh, but fails the test with the output when the command fails.
function M.must(cmd)
  local ok, out, code = M.sh(cmd)
  if not ok then error(("command failed (exit %s): %s\n%s"):format(tostring(code), cmd, out), 2) end
  return out
end

-- A fresh empty directory, removed by M.cleanup() (call it from teardown).
local dirs = {}
function M.tmpdir()
  local d = M.must("mktemp -d /tmp/kboot-test.XXXXXX"):gsub("%s+$", "")
  dirs[#dirs + 1] = d
  return d
end
function M.cleanup()
  for _, d in ipairs(dirs) do os.execute("rm -rf " .. M.q(d)) end
  dirs = {}
end

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function M.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- A TCP port on 127.0.0.1 that no socket uses now, below the kernel's ephemeral range: the local
-- ports of outgoing connections (other tests' clients, an API server talking to etcd) come from
-- that range, so a port picked inside it can be taken before the server binds it.
local function ephemeral_low()
  local f = io.open("/proc/sys/net/ipv4/ip_local_port_range")
  local low = f and tonumber((f:read("l") or ""):match("^%s*(%d+)"))
  if f then f:close() end
  return low or 32768
end
function M.free_port()
  local hi = math.max(ephemeral_low() - 1, 20000)
  for _ = 1, 50 do
    local port = math.random(10000, hi)
    if not M.sh(("ss -Htan 'sport = :%d' | grep -q ."):format(port)) then return port end
  end
  error("no free port found")
end

-- Every path under dir with its type, mode and link target, then the SHA-256 of every file:
-- equal before and after means nothing was written, chmod-ed, created or removed.
function M.tree_hash(dir)
  local d = M.q(dir)
  return M.must(("cd %s && find . -printf '%%p %%y %%m %%l\\n' | LC_ALL=C sort && "
    .. "find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum"):format(d))
end

-- Run kboot with args (a string already quoted as needed); returns ok, output, code.
function M.kboot(args)
  return M.sh(M.q(M.bin) .. " " .. args)
end

-- An argument error: "bad argument #n to '<name>' (msg)"; the name depends on how the function was reached.
function M.raises_arg(n, msg, f, ...)
  local lu = require("luaunit")
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, "expected an error")
  lu.assertStrContains(tostring(err), ("bad argument #%d to '"):format(n))
  lu.assertStrContains(tostring(err), "' (" .. msg)
end

-- pid() -> this test process's pid (peers exit with it)
function M.pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end

-- start_peer(script) -> pid, port: a python test peer (tests/lib/peer.py's serve) started on
-- 127.0.0.1; it exits with this process. Debian's python3 (python3-yaml is installed for it), not
-- whatever PATH finds first. env: { NAME = value } set for the peer only.
function M.start_peer(script, env)
  local d = M.tmpdir()
  local pf = d .. "/port"
  local python = io.open("/usr/bin/python3") and "/usr/bin/python3" or "python3"
  local vars = {}
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. M.q(v) .. " " end
  table.sort(vars)
  python = table.concat(vars) .. python
  local pid = M.must(("%s %s %s %s >%s 2>&1 </dev/null & echo $!"):format(python,
    M.q(M.src .. "/tests/lib/" .. script), M.q(pf), M.pid(), M.q(d .. "/log"))):match("%d+")
  for _ = 1, 200 do
    local f = io.open(pf)
    if f then
      local port = f:read("a")
      f:close()
      return pid, port
    end
    os.execute("sleep 0.05")
  end
  os.execute("kill " .. pid)
  error(script .. " did not start: " .. M.read(d .. "/log"))
end

math.randomseed(os.time() ~ tonumber(tostring({}):match("0x(%x+)") or "0", 16))
-- Benchmarks: now_ms() on the monotonic clock, median(xs) of a list of numbers (xs unchanged).
function M.now_ms() return require("kboot.time").now() * 1000 end
function M.median(xs)
  local s = { table.unpack(xs) }
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

return M

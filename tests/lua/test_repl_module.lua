-- kboot.repl, the C half of `kboot repl`: argument checks, history files, the interruptible
-- pcall (with a real SIGINT), and readline without a terminal.
local lu = require("luaunit")
local t = require("testlib")
local repl = require("kboot.repl")

-- Under valgrind, /proc shows valgrind's own handlers for every signal.
local under_valgrind = (os.getenv("LD_PRELOAD") or ""):find("vgpreload", 1, true) ~= nil

-- Is a SIGINT handler installed? nil when that cannot be seen.
local function sigint_caught()
  if under_valgrind then return nil end
  -- SigCgt is a hex mask of signals with a handler; SIGINT (2) is bit 1.
  local status = t.read("/proc/self/status")
  local mask = tonumber(status:match("SigCgt:%s*(%x+)"), 16)
  return mask & 2 ~= 0
end

local function self_pid()
  return t.read("/proc/self/stat"):match("^(%d+)")
end

TestReplModule = {}
function TestReplModule:tearDown() t.cleanup() end

function TestReplModule:test_misuse_raises()
  lu.assertErrorMsgContains("bad argument #1 to 'kboot.repl.set_completer'", repl.set_completer, 42)
  lu.assertErrorMsgContains("bad argument #1 to 'kboot.repl.load_history'", repl.load_history)
  lu.assertErrorMsgContains("bad argument #1 to 'kboot.repl.save_history'", repl.save_history, {})
  lu.assertErrorMsgContains("bad argument #1 to 'kboot.repl.add_history'", repl.add_history)
  lu.assertErrorMsgContains("bad argument #1 to 'kboot.repl.isatty'", repl.isatty, -1)
  lu.assertErrorMsgContains("bad argument #1 to 'kboot.repl.readline'", repl.readline, {})
  lu.assertErrorMsgContains("bad argument #1 to 'kboot.repl.pcall_interruptible'", repl.pcall_interruptible)
  repl.set_completer(function() return {} end)
  repl.set_completer(nil) -- clearing is allowed
end

function TestReplModule:test_isatty()
  local d = t.tmpdir()
  lu.assertIsBoolean(repl.isatty())
  lu.assertFalse(repl.isatty(1023)) -- not open
  t.write(d .. "/s.lua", 'local r = require("kboot.repl") print(r.isatty(0), r.isatty(2))\n')
  local out = t.must(t.q(t.bin) .. " " .. t.q(d .. "/s.lua") .. " < /dev/null 2>/dev/null")
  lu.assertEquals(out, "false\tfalse\n")
end

function TestReplModule:test_pcall_interruptible_is_pcall()
  local r = table.pack(repl.pcall_interruptible(function(a, b) return a + b, "x", nil end, 1, 2))
  lu.assertEquals(r, { n = 4, true, 3, "x", nil })
  local ok, err = repl.pcall_interruptible(error, { code = 7 })
  lu.assertFalse(ok)
  lu.assertEquals(err, { code = 7 })
  ok, err = repl.pcall_interruptible(function() local x = nil; return x.y end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "attempt to index a nil value")
  ok, err = repl.pcall_interruptible(42)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "attempt to call a number value")
  -- nesting works and the handler is only installed while a call runs
  if under_valgrind then return end
  lu.assertFalse(sigint_caught())
  local inner
  ok, inner = repl.pcall_interruptible(function()
    return select(2, repl.pcall_interruptible(sigint_caught)) and sigint_caught()
  end)
  lu.assertTrue(ok)
  lu.assertTrue(inner)
  lu.assertFalse(sigint_caught())
end

function TestReplModule:test_sigint_interrupts_running_lua()
  local pid = self_pid()
  local ran_after = false
  local ok, err = repl.pcall_interruptible(function()
    -- popen, not os.execute: system() ignores SIGINT in the caller while it waits
    local p = assert(io.popen("kill -INT " .. pid))
    p:close()
    for _ = 1, 1e12 do end -- bounded only by the interrupt; the hook fires at once
    ran_after = true
  end)
  lu.assertFalse(ok)
  lu.assertEquals(err, "interrupted") -- no position: where the hook fired means nothing
  lu.assertFalse(ran_after)
  if not under_valgrind then lu.assertFalse(sigint_caught()) end -- previous disposition restored
  -- the hook is gone: ordinary code keeps running
  local n = 0
  for i = 1, 1000 do n = n + i end
  lu.assertEquals(n, 500500)
end

-- SIGINT a little later, from outside (the way a terminal's Ctrl-C comes).
local function sigint_in(seconds)
  local p = assert(io.popen(("(sleep %s; kill -INT %s) >/dev/null 2>&1 &"):format(seconds, self_pid())))
  p:close()
end

local time = require("kboot.time")

function TestReplModule:test_sigint_interrupts_a_sleep()
  local t0 = time.now()
  local ok, err = repl.pcall_interruptible(function()
    sigint_in(0.2)
    time.sleep(30)
    return "slept"
  end)
  lu.assertFalse(ok)
  lu.assertEquals(err, "interrupted")
  lu.assertTrue(time.now() - t0 < 10, "the sleep ran to its end")
  -- no interrupt is left pending: the next sleep sleeps
  t0 = time.now()
  time.sleep(0.1)
  lu.assertTrue(time.now() - t0 >= 0.09)
end

function TestReplModule:test_sigint_interrupts_a_waiting_http_request()
  local _, port = t.start_peer("http_test_server.py")
  local c = assert(require("kboot.http").client({ server = "http://127.0.0.1:" .. port, retries = 3 }))
  local t0 = time.now()
  local ok, err = repl.pcall_interruptible(function()
    sigint_in(0.3)
    c:request("GET", "/slow/30")
    return "answered"
  end)
  lu.assertFalse(ok)
  lu.assertEquals(err, "interrupted")
  lu.assertTrue(time.now() - t0 < 5, "the request was not cut short")
  lu.assertEquals(c:stats().retries, 0) -- an interrupted request is not tried again
  -- the client still works afterwards
  lu.assertEquals(assert(c:request("GET", "/status/200")).status, 200)
  -- and a streamed request is cut too
  t0 = time.now()
  local lines = 0
  local got
  ok, err = repl.pcall_interruptible(function()
    sigint_in(0.3)
    got = table.pack(c:stream("GET", "/slow/30", nil, function() lines = lines + 1 end))
    return "streamed"
  end)
  lu.assertFalse(ok, got and require("kboot.pretty").format(got))
  lu.assertEquals(err, "interrupted")
  lu.assertTrue(time.now() - t0 < 5)
end

function TestReplModule:test_user_hook_survives()
  local count = 0
  debug.sethook(function() count = count + 1 end, "", 1000)
  repl.pcall_interruptible(function() for _ = 1, 10000 do end end)
  local h = debug.gethook()
  debug.sethook()
  lu.assertNotNil(h)
  lu.assertTrue(count > 0)
end

function TestReplModule:test_history_round_trip()
  local d = t.tmpdir()
  local path = d .. "/hist"
  repl.add_history("return 1 + 1")
  repl.add_history("for i = 1, 2 do\nprint(i)\nend")
  repl.add_history("") -- empty lines are not history
  lu.assertTrue(repl.save_history(path))
  local text = t.read(path)
  lu.assertStrContains(text, "return\\0401\\040+\\0401") -- libedit's vis(3) encoding
  lu.assertEquals(t.must("stat -c %a " .. t.q(path)), "600\n") -- may hold tokens typed at the prompt
  lu.assertTrue(repl.load_history(path))
end

function TestReplModule:test_history_is_bounded()
  local d = t.tmpdir()
  local path = d .. "/hist"
  for i = 1, repl.history_max + 50 do repl.add_history("x = " .. i) end
  lu.assertTrue(repl.save_history(path))
  local lines = 0
  for _ in t.read(path):gmatch("\n") do lines = lines + 1 end
  lu.assertTrue(lines <= repl.history_max + 1, tostring(lines)) -- + the header line
  lu.assertStrContains(t.read(path), "x\\040=\\040" .. (repl.history_max + 50))
  lu.assertNotStrContains(t.read(path), "x\\040=\\0401\n")
end

function TestReplModule:test_history_errors_name_the_file()
  local d = t.tmpdir()
  local ok, err = repl.load_history(d .. "/missing")
  lu.assertNil(ok)
  lu.assertEquals(err.op, "repl.load_history")
  lu.assertStrContains(tostring(err), d .. "/missing: No such file or directory")
  ok, err = repl.save_history(d .. "/no/such/dir/hist")
  lu.assertNil(ok)
  lu.assertEquals(err.op, "repl.save_history")
  lu.assertStrContains(tostring(err), d .. "/no/such/dir/hist:")
  lu.assertEquals(t.must("ls -A " .. t.q(d)), "") -- nothing written
end

function TestReplModule:test_readline_without_terminal()
  local d = t.tmpdir()
  t.write(d .. "/r.lua", [[
    local repl = require("kboot.repl")
    while true do
      local line, err = repl.readline("PROMPT> ")
      if line == nil then print("EOF", err) break end
      print(("[%s]"):format(line))
    end
  ]])
  t.write(d .. "/in", "one\n\n  two  \nlast-no-newline")
  local out = t.must(t.q(t.bin) .. " " .. t.q(d .. "/r.lua") .. " < " .. t.q(d .. "/in"))
  lu.assertEquals(out, "[one]\n[]\n[  two  ]\n[last-no-newline]\nEOF\tnil\n") -- no prompt, no libedit
  -- a read error (a directory as stdin) is reported, not taken for end of input
  out = t.must(t.q(t.bin) .. " " .. t.q(d .. "/r.lua") .. " < " .. t.q(d))
  lu.assertEquals(out, "EOF\tcannot read standard input: Is a directory\n")
end

os.exit(lu.LuaUnit.run("-v"))

-- kboot does not link libedit: the REPL dlopen()s it on first use (KBOOT_LIBEDIT names another
-- file). Without it the prompt still reads plain lines on a terminal and history calls fail
-- with one clear error. (Line editing itself: test_repl_tty.lua.)
local lu = require("luaunit")
local t = require("testlib")

local MISSING = "KBOOT_LIBEDIT=/nonexistent/libedit.so.2"
local WHY = "/nonexistent/libedit.so.2 cannot be loaded: /nonexistent/libedit.so.2: cannot open shared "
  .. "object file: No such file or directory; install libedit2"

local function run(env, code)
  local d = t.tmpdir()
  t.write(d .. "/s.lua", [[
    local function edit_mapped()
      local f = assert(io.open("/proc/self/maps"))
      local m = f:read("a")
      f:close()
      return m:find("libedit", 1, true) ~= nil
    end
  ]] .. code)
  return t.sh(env .. " " .. t.q(t.bin) .. " " .. t.q(d .. "/s.lua") .. " </dev/null")
end

TestReplDlopen = {}
function TestReplDlopen:tearDown() t.cleanup() end

function TestReplDlopen:test_libedit_is_not_needed()
  local out = t.must("readelf -d " .. t.q(t.bin))
  lu.assertStrContains(out, "[liblua5.4.so.0]")
  lu.assertNil(out:find("libedit", 1, true), out)
end

function TestReplDlopen:test_loaded_on_first_use_only()
  local d = t.tmpdir()
  local ok, out = run("", ([[
    local repl = require("kboot.repl")
    io.write(tostring(repl.readline("> ")), " ", tostring(edit_mapped()), " ") -- stdin is no tty
    assert(repl.save_history(%q))
    print(edit_mapped())
  ]]):format(d .. "/h"))
  lu.assertTrue(ok, out)
  lu.assertEquals(out, "nil false true\n")
end

function TestReplDlopen:test_missing_library_is_one_clear_error()
  local d = t.tmpdir()
  local before = t.tree_hash(d)
  local ok, out = run(MISSING, ([[
    local repl = require("kboot.repl")
    repl.add_history("1+1") -- nothing to add to: no error
    for _, f in ipairs({ "load_history", "save_history", "save_history" }) do
      local r, err = repl[f](%q)
      print(r, err.op, err.msg)
    end
    print(edit_mapped())
  ]]):format(d .. "/h"))
  lu.assertTrue(ok, out)
  lu.assertEquals(out, ("nil\trepl.load_history\t%s\n" .. ("nil\trepl.save_history\t%s\n"):rep(2)
    .. "false\n"):format(WHY, WHY, WHY))
  lu.assertEquals(t.tree_hash(d), before) -- no history file written
end

function TestReplDlopen:test_library_without_libedit_symbols()
  local ok, out = run("KBOOT_LIBEDIT=libyaml-0.so.2", [[
    print(select(2, require("kboot.repl").load_history("/nonexistent")))
  ]])
  lu.assertTrue(ok, out)
  lu.assertEquals(out, "libyaml-0.so.2 cannot be used: it has no readline; install libedit2\n")
end

-- On a terminal (tmux) without libedit: a warning, then plain prompts that still evaluate,
-- drop the line on Ctrl-C and end on Ctrl-D.
function TestReplDlopen:test_terminal_without_libedit()
  lu.skipIf(not t.sh("command -v tmux >/dev/null"), "tmux is not installed")
  local d = t.tmpdir()
  local sock = d .. "/tmux.sock"
  local function tmux(args) return t.must("tmux -S " .. t.q(sock) .. " " .. args) end
  local function screen() return (tmux("capture-pane -p -t repl"):gsub("[ \n]+$", "")) end
  local function wait_for(what, pred)
    local s
    for _ = 1, 600 do
      s = screen()
      if pred(s) then return s end
      os.execute("sleep 0.05")
    end
    error(("timed out waiting for %s; screen:\n%s"):format(what, s), 2)
  end
  t.write(d .. "/tmux.conf", "set -g remain-on-exit on\nset -g status off\n")
  local cmd = ("trap : INT; HOME=%s %s %s repl; echo $? > %s"):format(t.q(d), MISSING, t.q(t.bin),
    t.q(d .. "/status"))
  t.must(("tmux -S %s -f %s new-session -d -s repl -x 200 -y 40 %s"):format(t.q(sock),
    t.q(d .. "/tmux.conf"), t.q("sh -c " .. t.q(cmd))))
  local ok, err = pcall(function()
    local s = wait_for("the first prompt", function(s) return s:match("\n> ?$") ~= nil end)
    lu.assertStrContains(s, "[repl] warning: " .. WHY .. " (no line editing or history)")
    tmux("send-keys -t repl -l '6*7'"); tmux("send-keys -t repl Enter")
    -- (repl.lua also warns that the history is not saved, before the result)
    wait_for("42", function(s) return s:find("> 6%*7\n.*\n42\n> ?$") ~= nil end)
    -- the typed text on screen before Ctrl-C (a Ctrl-C sent with it races the keys under load)
    tmux("send-keys -t repl -l '1+'")
    wait_for("the typed 1+", function(s) return s:find("\n> 1%+$") ~= nil end)
    tmux("send-keys -t repl C-c")
    wait_for("a fresh prompt after Ctrl-C", function(s) return s:find("\n> 1%+^C\n> ?$") ~= nil end)
    tmux("send-keys -t repl C-d")
    for _ = 1, 600 do
      local f = io.open(d .. "/status")
      local status = f and f:read("n")
      if f then f:close() end
      if status then
        lu.assertEquals(status, 0)
        return lu.assertStrContains(screen(), "\n42\n")
      end
      os.execute("sleep 0.05")
    end
    error("kboot repl did not exit; screen:\n" .. screen())
  end)
  t.sh("tmux -S " .. t.q(sock) .. " kill-server")
  if not ok then error(err, 0) end
end

os.exit(lu.LuaUnit.run("-v"))

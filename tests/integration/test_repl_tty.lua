-- `kboot repl` on a real terminal: a detached tmux session runs it, send-keys types, capture-pane
-- reads the screen. Checks evaluation, Tab completion, Ctrl-C in a loop and at the prompt,
-- multi-line input, Ctrl-D, and the history file. Waits are bounded polls, never timed asserts.
local lu = require("luaunit")
local t = require("testlib")

-- When this test runs under valgrind, so does the kboot it starts (errors exit 99).
local under_valgrind = (os.getenv("LD_PRELOAD") or ""):find("vgpreload", 1, true) ~= nil
local BIN = under_valgrind and ("env -u LD_PRELOAD valgrind --quiet --error-exitcode=99 --leak-check=full "
  .. "--errors-for-leak-kinds=definite,indirect " .. t.q(t.bin)) or t.q(t.bin)

local have_tmux = t.sh("command -v tmux >/dev/null")

local S -- the session: { sock, dir }
local POLLS = 600 -- x 0.05 s: generous for sanitizer builds; a pass is usually far quicker

local function tmux(args)
  return t.must("tmux -S " .. t.q(S.sock) .. " " .. args)
end

local function screen()
  return (tmux("capture-pane -p -t repl"):gsub("[ \n]+$", ""))
end

local function display(fmt)
  return (tmux("display-message -p -t repl " .. t.q(fmt)):gsub("\n$", ""))
end

-- Poll until pred(screen) is true; fail with the screen if it never is.
local function wait_for(what, pred)
  local s
  for _ = 1, POLLS do
    s = screen()
    if pred(s) then return s end
    os.execute("sleep 0.05")
  end
  error(("timed out waiting for %s; screen:\n%s"):format(what, s), 2)
end

local function wait_text(text)
  return wait_for(("%q"):format(text), function(s) return s:find(text, 1, true) ~= nil end)
end

local function type_text(text) tmux("send-keys -t repl -l " .. t.q(text)) end
local function keys(k) tmux("send-keys -t repl " .. k) end

local function last_line(s) return s:match("([^\n]*)$") end

-- start{ history = FILE, args = "..." }: kboot repl in a new tmux server of its own
local function start(o)
  o = o or {}
  local d = t.tmpdir()
  S = { sock = d .. "/tmux.sock", dir = d, history = o.history or (d .. "/history") }
  t.write(d .. "/tmux.conf", "set -g remain-on-exit on\nset -g status off\n")
  -- The shell records the exit status (tmux may report a dead pane before it reaps the child);
  -- its SIGINT trap keeps it alive on Ctrl-C while kboot gets the default disposition.
  local cmd = ("trap : INT; HOME=%s KBOOT_HISTORY=%s %s repl %s; echo $? > %s"):format(
    t.q(d), t.q(S.history), BIN, o.args or "", t.q(d .. "/status"))
  t.must(("tmux -S %s -f %s new-session -d -s repl -x 100 -y 40 %s"):format(
    t.q(S.sock), t.q(d .. "/tmux.conf"), t.q("sh -c " .. t.q(cmd))))
  wait_for("the first prompt", function(s) return last_line(s) == ">" end)
end

local function stop()
  if S then t.sh("tmux -S " .. t.q(S.sock) .. " kill-server") end
  S = nil
end

-- The exit status once kboot has exited.
local function exit_status()
  local path = S.dir .. "/status"
  for _ = 1, POLLS do
    local f = io.open(path)
    local status = f and f:read("n")
    if f then f:close() end
    if status then return status end
    os.execute("sleep 0.05")
  end
  error("kboot repl did not exit; screen:\n" .. screen())
end

-- Ctrl-D on an empty line.
local function quit()
  keys("C-u C-d")
  return exit_status()
end

TestReplTTY = {}

function TestReplTTY:setUp()
  lu.skipIf(not have_tmux, "tmux is not installed: tools/install-deps.sh must add the Debian package tmux")
end

function TestReplTTY:tearDown()
  stop()
  t.cleanup()
end

function TestReplTTY:test_session()
  start()
  -- an expression without `return`
  type_text("6*7"); keys("Enter")
  wait_text("> 6*7\n42\n>")

  -- Tab completes a unique field in place
  type_text("string.fo"); keys("Tab")
  wait_for("string.format completed", function(s) return last_line(s) == "> string.format" end)
  lu.assertEquals(display("#{cursor_x}"), tostring(#"> string.format")) -- nothing appended
  keys("C-u")
  -- Tab Tab lists the candidates of an ambiguous prefix
  type_text("log."); keys("Tab Tab")
  local s = wait_text("log.set_level")
  for _, name in ipairs({ "log.debug", "log.info", "log.warn", "log.error", "log.set_json" }) do
    lu.assertStrContains(s, name)
  end
  keys("C-u")
  -- an ambiguous prefix completes as far as the candidates agree
  type_text("crypto.unb"); keys("Tab")
  wait_for("crypto.unbase64", function(x) return last_line(x) == "> crypto.unbase64" end)
  keys("C-u")
  type_text("pki.gen"); keys("Tab")  -- generate_key and generate_batch share "generate_"
  wait_for("pki.generate_", function(x) return last_line(x) == "> pki.generate_" end)
  keys("C-u")
  -- a completer that fails or returns odd values cannot break the prompt
  type_text('repl.set_completer(function() error("boom") end)'); keys("Enter")
  wait_text("end)\n>")
  type_text("pri"); keys("Tab")
  type_text("nt(0)"); keys("Enter")
  wait_text("> print(0)\n0\n>")
  type_text('repl.set_completer(function() return { "alpha", true, "alps" } end)'); keys("Enter")
  wait_text("end)\n>")
  type_text("a"); keys("Tab")
  wait_for("the common prefix", function(x) return last_line(x) == "> alp" end)
  keys("C-u")
  type_text("repl.set_completer(repl.complete)"); keys("Enter")
  wait_text("repl.set_completer(repl.complete)\n>")
  -- globals complete too
  type_text("prett"); keys("Tab")
  wait_for("pretty completed", function(x) return last_line(x) == "> pretty" end)
  keys("C-u")

  -- Ctrl-C stops a running loop and the prompt comes back
  -- (the file says the chunk runs, so Ctrl-C cannot come before the handler is in place)
  local flag = S.dir .. "/looping"
  type_text(("io.open(%q, 'w'):close() while true do end"):format(flag)); keys("Enter")
  wait_for("the loop to run", function()
    local f = io.open(flag)
    if f then f:close() end
    return f ~= nil
  end)
  keys("C-c")
  s = wait_text("interrupted")
  lu.assertNotStrContains(s, "repl.lua") -- no position of the REPL's own code
  wait_for("the prompt after Ctrl-C", function(x) return last_line(x) == ">" end)
  type_text("1+1"); keys("Enter")
  wait_text("> 1+1\n2\n>")

  -- Ctrl-C at the prompt drops the line being typed
  -- (the whole line on screen first: a Ctrl-C while the line editor still reads the keys races them)
  type_text("half_typed_line"); wait_text("> half_typed_line"); keys("C-c")
  wait_for("a fresh prompt", function(x) return last_line(x) == ">" end)
  type_text("3+4"); keys("Enter")
  s = wait_text("> 3+4\n7\n>")
  lu.assertNotStrContains(s, "half_typed_line3")

  -- multi-line input continues with ">>"
  type_text("for i = 1, 2 do"); keys("Enter")
  wait_text(">>")
  type_text("print(i * 10)"); keys("Enter")
  type_text("end"); keys("Enter")
  wait_text(">> end\n10\n20\n>")

  -- Ctrl-D exits with 0 and saves the history
  lu.assertEquals(quit(), 0)
  local hist = t.read(S.history)
  lu.assertStrContains(hist, "6*7\n")
  lu.assertStrContains(hist, "1+1\n")
  lu.assertStrContains(hist, "for\\040i\\040=\\0401,\\0402\\040do\\012print(i\\040*\\04010)\\012end\n")
  lu.assertNotStrContains(hist, "half_typed_line")
  lu.assertNotStrContains(hist, "string.fo")
  lu.assertEquals(t.must("stat -c %a " .. t.q(S.history)), "600\n")
end

function TestReplTTY:test_history_loaded_in_next_session()
  start()
  type_text("'from the first session'"); keys("Enter")
  wait_text('"from the first session"\n>')
  -- saved as it goes: os.exit() skips the end of the script, not the history
  type_text("os.exit(5)"); keys("Enter")
  lu.assertEquals(exit_status(), 5)
  local history = S.history
  stop()
  -- same history file, new process: Up recalls the lines
  start({ history = history })
  keys("Up")
  wait_for("the last line", function(s) return last_line(s) == "> os.exit(5)" end)
  keys("Up")
  wait_for("the line before", function(s) return last_line(s) == "> 'from the first session'" end)
  keys("Enter")
  wait_text('"from the first session"\n>')
  lu.assertEquals(quit(), 0)
end

function TestReplTTY:test_no_history_option()
  start({ args = "--no-history" })
  type_text("2^10"); keys("Enter")
  wait_text("1024.0")
  lu.assertEquals(quit(), 0)
  lu.assertEquals(t.must("ls -A " .. t.q(S.dir)), "status\ntmux.conf\ntmux.sock\n")
end

os.exit(lu.LuaUnit.run("-v"))

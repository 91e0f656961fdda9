-- A real terminal for tests: a detached tmux server of its own runs a command; send-keys types,
-- capture-pane reads the screen. Waits are bounded polls, never timed asserts.
--   local s = tty.start{ cmd = "kboot repl", width = 160, height = 50 }
--   s:type("1+1"); s:keys("Enter"); s:wait_text("2\n>"); s:stop()
local t = require("testlib")

local M = {}

M.POLLS = 600 -- x 0.05 s: generous for sanitizer builds; a pass is usually far quicker

function M.available() return t.sh("command -v tmux >/dev/null") end

local S = {}
S.__index = S

function S:tmux(args) return t.must("tmux -S " .. t.q(self.sock) .. " " .. args) end

-- The screen's text; escapes = true keeps the colour escapes (capture-pane -e).
function S:screen(escapes)
  return (self:tmux("capture-pane -p " .. (escapes and "-e " or "") .. "-t s -S -2000"):gsub("[ \n]+$", ""))
end

function S:type(text) self:tmux("send-keys -t s -l " .. t.q(text)) end
function S:keys(k) self:tmux("send-keys -t s " .. k) end
function S:clear() self:tmux("clear-history -t s") self:keys("C-l") end

function M.last_line(s) return s:match("([^\n]*)$") end

-- Poll until pred(screen) is true; fail with the screen if it never is. Returns the screen.
function S:wait_for(what, pred, escapes)
  local s
  for _ = 1, M.POLLS do
    s = self:screen(escapes)
    if pred(s) then return s end
    os.execute("sleep 0.05")
  end
  error(("timed out waiting for %s; screen:\n%s"):format(what, s), 2)
end

function S:wait_text(text)
  return self:wait_for(("%q"):format(text), function(s) return s:find(text, 1, true) ~= nil end)
end

function S:wait_prompt()
  return self:wait_for("the prompt", function(s) return M.last_line(s) == ">" end)
end

-- The exit status, once the command has exited.
function S:exit_status()
  for _ = 1, M.POLLS do
    local f = io.open(self.dir .. "/status")
    local status = f and f:read("n")
    if f then f:close() end
    if status then return status end
    os.execute("sleep 0.05")
  end
  error("the command did not exit; screen:\n" .. self:screen())
end

function S:stop() t.sh("tmux -S " .. t.q(self.sock) .. " kill-server") end

-- start{ cmd = shell command, width = 160, height = 50, env = "VAR=x ..." }: the command in a
-- new tmux server; its exit status is written to DIR/status. The shell traps SIGINT, so Ctrl-C
-- reaches only the command.
function M.start(o)
  local d = t.tmpdir()
  local self = setmetatable({ sock = d .. "/tmux.sock", dir = d }, S)
  t.write(d .. "/tmux.conf", "set -g remain-on-exit on\nset -g status off\nset -g history-limit 5000\n")
  local cmd = ("trap : INT; %s; echo $? > %s"):format(o.cmd, t.q(d .. "/status"))
  t.must(("tmux -S %s -f %s new-session -d -s s -x %d -y %d %s"):format(t.q(self.sock), t.q(d .. "/tmux.conf"),
    o.width or 160, o.height or 50, t.q("sh -c " .. t.q(cmd))))
  return self
end

return M

-- kboot.fs batches from Lua: fs.batch / fs.begin / fs.commit / fs.flush / fs.discard / fs.pending; pending
-- writes seen by kboot's reads but not on disk (checked with io.open, stat and ls, not kboot.fs);
-- errors raised inside a batch; a commit failing; the host committing a batch a script left open
-- (return, error) but not after os.exit; the number of syncs, counted with strace.
local lu = require("luaunit")
local t = require("testlib")
local fs = require("kboot.fs")

local root
local function setup()
  root = t.tmpdir()
  fs.set_dry_run(false)
  assert(fs.set_root(root))
end
local function teardown()
  fs.set_dry_run(false)
  while select(2, fs.pending()) > 0 do fs.commit() end
  fs.set_root(nil)
  t.cleanup()
end
local function host(p) return root .. p end
local function on_disk(p) -- content of the host file, or nil
  local f = io.open(host(p), "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
local function mode_of(p) return (t.must("stat -c %a " .. t.q(host(p))):gsub("%s+$", "")) end
local function temps(dir) -- temp file names in a host directory
  local out = {}
  for name in t.must("ls -A " .. t.q(host(dir))):gmatch("[^\n]+") do
    if name:find(".kboot-tmp-", 1, true) then out[#out + 1] = name end
  end
  return out
end

-- Run a kboot script (source text) with the root as arg[1]; returns ok, output, exit code.
local function run_script(src)
  local f = root .. ".script.lua"
  t.write(f, src)
  return t.kboot(t.q(f) .. " " .. t.q(root))
end

TestBatch = { setUp = setup, tearDown = teardown }

function TestBatch:test_pending_visible_to_kboot_not_on_disk()
  t.must("mkdir -p " .. t.q(host("/etc")) .. " && printf old > " .. t.q(host("/etc/old")))
  local a, b = fs.batch(function(x, y)
    lu.assertEquals({ fs.write("/etc/new", "new " .. x, "0640") }, { true, "written" })
    lu.assertEquals({ fs.write("/etc/old", "replaced", "0644") }, { true, "written" })
    lu.assertEquals({ fs.write("/etc/d/e/f", y, "0600", { mkdir = true, dir_mode = "0700" }) }, { true, "written" })
    lu.assertEquals({ fs.pending() }, { 3, 1 })
    -- the disk: targets untouched, temps beside them
    lu.assertNil(on_disk("/etc/new"))
    lu.assertEquals(on_disk("/etc/old"), "old")
    lu.assertNil(on_disk("/etc/d/e/f"))
    lu.assertEquals(#temps("/etc"), 2)
    -- kboot's view
    lu.assertEquals(fs.read("/etc/new"), "new X")
    lu.assertEquals(fs.read("/etc/old"), "replaced")
    lu.assertTrue(fs.exists("/etc/d/e/f"))
    local st = assert(fs.stat("/etc/new"))
    lu.assertEquals({ st.type, st.mode, st.size }, { "file", 416, 5 })
    lu.assertEquals(fs.list("/etc"), { "d", "new", "old" })
    local v, err = fs.readlink("/etc/new")
    lu.assertNil(v)
    lu.assertEquals(err.code, 22)
    lu.assertEquals({ fs.write("/etc/old", "replaced", "0644") }, { true, "unchanged" })
    return "r1", "r2"
  end, "X", "Y")
  lu.assertEquals({ a, b }, { "r1", "r2" })
  lu.assertEquals({ fs.pending() }, { 0, 0 })
  lu.assertEquals(on_disk("/etc/new"), "new X")
  lu.assertEquals(mode_of("/etc/new"), "640")
  lu.assertEquals(on_disk("/etc/old"), "replaced")
  lu.assertEquals(mode_of("/etc/old"), "644")
  lu.assertEquals(on_disk("/etc/d/e/f"), "Y")
  lu.assertEquals(mode_of("/etc/d/e"), "700")
  lu.assertEquals(temps("/etc"), {})
  lu.assertEquals(temps("/etc/d/e"), {})
  -- no results: true
  lu.assertEquals({ fs.batch(function() end) }, { true })
end

function TestBatch:test_error_inside_is_raised_after_commit()
  local boom = setmetatable({ msg = "boom" }, { __tostring = function(e) return e.msg end })
  local ok, err = pcall(fs.batch, function()
    assert(fs.write("/a", "a", "0600"))
    error(boom)
  end)
  lu.assertFalse(ok)
  lu.assertIs(err, boom) -- the same object
  lu.assertEquals(on_disk("/a"), "a") -- committed
  lu.assertEquals({ fs.pending() }, { 0, 0 })
  ok, err = pcall(fs.batch, function() error("plain") end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "plain")
end

function TestBatch:test_discard_leaves_the_old_files_and_no_temps()
  assert(fs.write("/a", "old a", "0644"))
  fs.begin()
  fs.begin()
  assert(fs.write("/a", "new a", "0600"))
  assert(fs.write("/b", "new b", "0644"))
  lu.assertEquals(fs.read("/a"), "new a")
  fs.discard()
  lu.assertEquals({ fs.pending() }, { 0, 0 })
  lu.assertEquals(on_disk("/a"), "old a")
  lu.assertEquals(mode_of("/a"), "644")
  lu.assertNil(on_disk("/b"))
  lu.assertEquals(fs.read("/a"), "old a")
  lu.assertFalse(fs.exists("/b"))
  lu.assertEquals(temps("/"), {})
end

function TestBatch:test_commit_failure_returns_nil_err()
  t.must("printf old > " .. t.q(host("/c")))
  local v, err = fs.batch(function()
    assert(fs.write("/a", "a", "0600"))
    assert(fs.write("/b", "b", "0600"))
    assert(fs.write("/c", "c", "0600"))
    for _, n in ipairs(temps("/")) do
      if n:sub(1, 3) == ".b." then assert(os.remove(host("/" .. n))) end
    end
    return "not returned"
  end)
  lu.assertNil(v)
  lu.assertEquals(getmetatable(err).__name, "kboot.error")
  lu.assertEquals(err.op, "commit")
  lu.assertEquals(err.code, 2)
  lu.assertStrContains(tostring(err), "cannot commit the write of /b (rename ")
  lu.assertEquals(on_disk("/a"), "a")
  lu.assertNil(on_disk("/b"))
  lu.assertEquals(on_disk("/c"), "old")
  lu.assertEquals(temps("/"), {})
end

function TestBatch:test_begin_commit_flush_nesting_and_misuse()
  lu.assertErrorMsgContains("no batch is open (call fs.begin first)", fs.commit)
  lu.assertErrorMsgContains("function expected", fs.batch, nil)
  fs.begin()
  fs.begin()
  assert(fs.write("/n", "n", "0600"))
  lu.assertEquals({ fs.pending() }, { 1, 2 })
  lu.assertTrue(fs.commit()) -- inner
  lu.assertNil(on_disk("/n"))
  lu.assertTrue(fs.flush()) -- everything now, the batch stays open
  lu.assertEquals(on_disk("/n"), "n")
  lu.assertEquals({ fs.pending() }, { 0, 1 })
  assert(fs.write("/m", "m", "0600"))
  -- nested fs.batch inside begin: its end commits nothing
  fs.batch(function() assert(fs.write("/o", "o", "0600")) end)
  lu.assertNil(on_disk("/o"))
  -- a mutator commits first
  assert(fs.chmod("/n", "0644"))
  lu.assertEquals(on_disk("/m"), "m")
  lu.assertEquals(on_disk("/o"), "o")
  lu.assertTrue(fs.commit())
  lu.assertEquals({ fs.pending() }, { 0, 0 })
  lu.assertTrue(fs.flush()) -- nothing pending, no batch: fine
end

function TestBatch:test_prune_takes_back_only_the_empty_dirs_the_batch_made()
  t.must("mkdir -p " .. t.q(host("/had/empty")))
  fs.begin()
  assert(fs.mkdir("/had/empty/new/deeper", "0755"))       -- made: new, deeper (empty)
  assert(fs.mkdir("/etc/kubernetes", "0755"))              -- made: etc, kubernetes
  local lock = assert(fs.lock("/var/lib/x/.lock", { mkdir = true }))  -- made: var, lib, x
  assert(fs.write("/srv/a/file", "x", "0644", { mkdir = true }))       -- made: srv, a (a pending temp inside)
  assert(fs.remove("/var/lib/x/.lock"))  -- (commits the pending write)
  lock:close()
  assert(fs.write("/etc/kubernetes/pki/p", "y", "0600", { mkdir = true }))  -- made: pki; only a temp in it
  lu.assertEquals(fs.prune(), 5)  -- deeper, new, var/lib/x, var/lib, var
  lu.assertEquals(fs.prune(), 0)  -- forgotten
  lu.assertEquals({ fs.pending() }, { 1, 1 })
  assert(fs.commit())
  lu.assertEquals(t.must("cd " .. t.q(root) .. " && find . | LC_ALL=C sort"),
    ".\n./etc\n./etc/kubernetes\n./etc/kubernetes/pki\n./etc/kubernetes/pki/p\n./had\n./had/empty\n./srv\n./srv/a\n./srv/a/file\n")
  -- a dry run makes nothing and so takes nothing back; outside a batch nothing is noted
  fs.set_dry_run(true)
  fs.begin()
  assert(fs.mkdir("/dry", "0755"))
  lu.assertEquals(fs.prune(), 0)
  assert(fs.commit())
  fs.set_dry_run(false)
  assert(fs.mkdir("/unbatched", "0755"))
  fs.begin()
  lu.assertEquals(fs.prune(), 0)
  assert(fs.commit())
  lu.assertTrue(t.sh("test -d " .. t.q(host("/unbatched"))))
  -- a commit ends what prune may take back
  fs.begin()
  assert(fs.mkdir("/later", "0755"))
  assert(fs.commit())
  fs.begin()
  lu.assertEquals(fs.prune(), 0)
  assert(fs.commit())
end

function TestBatch:test_dry_run_batch_writes_nothing()
  fs.set_dry_run(true)
  local r = fs.batch(function()
    assert(fs.write("/x/y", "dry", "0600", { mkdir = true }))
    lu.assertEquals(fs.read("/x/y"), "dry")
    return 1
  end)
  lu.assertEquals(r, 1)
  lu.assertEquals(t.must("ls -A " .. t.q(root)), "")
  local rec = fs.recorded()
  lu.assertEquals(#rec, 2)
  lu.assertEquals(rec[2].op, "write")
end

function TestBatch:test_host_commits_a_batch_left_open()
  -- the script returns inside fs.begin: the host commits
  local ok, out = run_script([[
    local fs = require("kboot.fs")
    assert(fs.set_root(arg[1]))
    fs.begin(); fs.begin()
    assert(fs.write("/ret", "returned", "0600"))
    return 0
  ]])
  lu.assertTrue(ok, out)
  lu.assertEquals(on_disk("/ret"), "returned")
  -- the script raises inside fs.begin: committed, the error reported, exit 1
  local code
  ok, out, code = run_script([[
    local fs = require("kboot.fs")
    assert(fs.set_root(arg[1]))
    fs.begin()
    assert(fs.write("/raised", "raised", "0600"))
    error("script failed")
  ]])
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "script failed")
  lu.assertEquals(on_disk("/raised"), "raised")
  lu.assertEquals(temps("/"), {})
  -- the commit at exit fails: a warning, and success becomes exit 1
  ok, out, code = run_script([[
    local fs = require("kboot.fs")
    assert(fs.set_root(arg[1]))
    fs.begin()
    assert(fs.write("/lost", "lost", "0600"))
    local p = io.popen("ls -A " .. arg[1])
    for n in p:lines() do if n:find("^%.lost%.kboot%-tmp%-") then os.remove(arg[1] .. "/" .. n) end end
    p:close()
    return 0
  ]])
  lu.assertEquals(code, 1, out)
  lu.assertStrContains(out, "cannot commit the write of /lost")
  lu.assertNil(on_disk("/lost"))
end

function TestBatch:test_os_exit_leaves_temps_the_next_write_removes()
  t.must("printf old > " .. t.q(host("/f")))
  local ok, out, code = run_script([[
    local fs = require("kboot.fs")
    assert(fs.set_root(arg[1]))
    fs.begin()
    assert(fs.write("/f", "new", "0600"))
    assert(fs.write("/g", "new", "0600"))
    os.exit(3)
  ]])
  lu.assertEquals(code, 3, out)
  lu.assertEquals(on_disk("/f"), "old")
  lu.assertNil(on_disk("/g"))
  lu.assertEquals(#temps("/"), 2)
  -- the next write of each path removes its leftover temp, batched or not
  assert(fs.write("/f", "later", "0600"))
  lu.assertEquals(#temps("/"), 1)
  fs.batch(function() assert(fs.write("/g", "later", "0600")) end)
  lu.assertEquals(temps("/"), {})
  lu.assertEquals(on_disk("/f"), "later")
  lu.assertEquals(on_disk("/g"), "later")
end

function TestBatch:test_init_runner_commits_before_online_phases_and_failures()
  local phases = require("kboot.phases")
  local seen = {}
  local ctx = { fs = fs, log = require("kboot.log") }
  local function write(p) return function() assert(fs.write(p, p, "0600", { mkdir = true })) return true end end
  local list = {
    { name = "a", run = write("/p/a") },
    { name = "b", run = function() seen.b = { on_disk("/p/a"), (fs.pending()) } return true end },
    { name = "c", online = true, no_api = true, run = function() seen.c = { on_disk("/p/a"), (fs.pending()) } return true end },
    { name = "d", run = write("/p/d") },
    { name = "e", run = function() seen.e = { on_disk("/p/d"), (fs.pending()) } return true end },
  }
  lu.assertTrue(phases.run(ctx, list))
  lu.assertEquals(seen.b, { nil, 1 }) -- offline phases share one batch
  lu.assertEquals(seen.c, { "/p/a", 0 }) -- committed before the online phase
  lu.assertEquals(seen.e, { nil, 1 })
  lu.assertEquals(on_disk("/p/d"), "/p/d") -- and at the end
  lu.assertEquals({ fs.pending() }, { 0, 0 })
  -- a failing phase: the files before it land, then the error
  list = { { name = "w", run = write("/p/w") }, { name = "x", run = function() return nil, "broken" end } }
  local ok, failures = phases.run(ctx, list)
  lu.assertNil(ok)
  lu.assertEquals(phases.error_line(failures[1]), "error execution phase x: broken")
  lu.assertEquals(on_disk("/p/w"), "/p/w")
  lu.assertEquals({ fs.pending() }, { 0, 0 })
  -- a fake fs without batches still works
  local fake = setmetatable({ begin = nil }, { __index = fs })
  lu.assertTrue(phases.run({ fs = fake, log = ctx.log }, { { name = "f", run = write("/p/f") } }))
  lu.assertEquals(on_disk("/p/f"), "/p/f")
end

-- fsync/syncfs calls of a kboot script writing 12 files in 3 new directories.
local function count_syncs(batched)
  local script = root .. ".sync.lua"
  t.write(script, ([[
    local fs = require("kboot.fs")
    assert(fs.set_root(arg[1]))
    local function all()
      for d = 1, 3 do
        for i = 1, 4 do assert(fs.write(("/etc/d%%d/f%%d"):format(d, i), "x", "0600", { mkdir = true })) end
      end
    end
    if %s then assert(fs.batch(all)) else all() end
  ]]):format(tostring(batched)))
  local trace = root .. ".strace"
  local dir = root .. (batched and "/b" or "/u")
  t.must("mkdir " .. t.q(dir))
  -- LeakSanitizer cannot run under ptrace: off for this traced run of a sanitizer build
  t.must(("ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -o %s -e trace=fsync,syncfs %s %s %s"):format(t.q(trace), t.q(t.bin), t.q(script), t.q(dir)))
  local n = { fsync = 0, syncfs = 0 }
  for line in io.lines(trace) do
    local call = line:match("^%d*%s*(%w+)%(")
    if n[call] then n[call] = n[call] + 1 end
  end
  return n
end

function TestBatch:test_sync_counts_with_strace()
  if not t.sh("strace -f -qq -o /dev/null true") then lu.skip("strace cannot trace here") end
  -- unbatched: per file fsync(file) + fsync(dir), and one fsync per directory made (/etc, /etc/dN)
  lu.assertEquals(count_syncs(false), { fsync = 12 * 2 + 4, syncfs = 0 })
  -- batched: one syncfs before the renames, one after; nothing else
  lu.assertEquals(count_syncs(true), { fsync = 0, syncfs = 2 })
end

os.exit(lu.LuaUnit.run("-v"))

-- kboot.fs: every function and its errors, checked against the real file system (stat, ls, sha256sum).
local lu = require("luaunit")
local t = require("testlib")
local fs = require("kboot.fs")

local ENOENT, ENOTDIR, EISDIR, EINVAL, ENOTEMPTY, EEXIST = 2, 20, 21, 22, 39, 17

local root
local function setup()
  root = t.tmpdir()
  fs.set_dry_run(false)
  assert(fs.set_root(root))
end
local function teardown()
  fs.set_dry_run(false)
  fs.set_root(nil)
  t.cleanup()
end
local function host(p) return root .. p end
local function mode_of(p) return t.must("stat -c %a " .. t.q(host(p))):gsub("%s+$", "") end
local function raises(pattern, f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, "expected an error")
  lu.assertStrContains(tostring(err), pattern)
end
local raises_arg = t.raises_arg
local function fails(code, pattern, v, err)
  lu.assertNil(v)
  lu.assertEquals(getmetatable(err).__name, "kboot.error")
  if code then lu.assertEquals(err.code, code, tostring(err)) end
  lu.assertStrContains(tostring(err), pattern)
  return err
end

---------------------------------------------------------------------------------------------------
TestRoot = { setUp = setup, tearDown = teardown }

function TestRoot:test_path_joins_and_normalises()
  lu.assertEquals(fs.root(), (t.must("realpath " .. t.q(root)):gsub("%s+$", "")))
  lu.assertEquals(fs.path("/etc//kubernetes/./pki/../pki/ca.crt"), root .. "/etc/kubernetes/pki/ca.crt")
  lu.assertEquals(fs.path("/"), root)
  lu.assertEquals(fs.path("/a/"), root .. "/a")
  lu.assertEquals(fs.path("/a/.."), root)
  lu.assertTrue(fs.set_root("/"))
  lu.assertEquals(fs.root(), "/")
  lu.assertEquals(fs.path("//etc///x"), "/etc/x")
  lu.assertTrue(fs.set_root(nil))
  lu.assertEquals(fs.root(), "/")
  -- a root given with a trailing slash or "." parts is canonical
  lu.assertTrue(fs.set_root(root .. "/./"))
  lu.assertEquals(fs.path("/x"), root .. "/x")
end

function TestRoot:test_resolver()
  local r = fs.resolver()
  lu.assertTrue(r == "openat2" or r == "walk", r) -- under valgrind, which has no openat2: the walk
  assert(fs.set_root("/"))
  lu.assertEquals(fs.resolver(), "none")
  assert(fs.set_root(root))
end

function TestRoot:test_bad_paths_are_argument_errors()
  raises("absolute path expected, got 'etc/x'", fs.path, "etc/x")
  raises("absolute path expected", fs.read, "")
  raises("escapes the root", fs.path, "/..")
  raises("escapes the root", fs.write, "/etc/../../x", "d", 420)
  raises("escapes the root", fs.remove, "/a/../../b", { recursive = true })
  raises("NUL", fs.exists, "/a\0b")
  raises("string expected", fs.stat, nil)
  raises("too long", fs.path, "/" .. string.rep("a/", 3000))
end

function TestRoot:test_set_root_needs_a_directory()
  fails(ENOENT, "cannot use root " .. root .. "/nope", fs.set_root(root .. "/nope"))
  t.write(root .. "/file", "x")
  fails(ENOTDIR, "cannot use root", fs.set_root(root .. "/file"))
  lu.assertEquals(fs.root(), (t.must("realpath " .. t.q(root)):gsub("%s+$", "")), "root unchanged after a failure")
end

---------------------------------------------------------------------------------------------------
TestWrite = { setUp = setup, tearDown = teardown }

function TestWrite:test_write_then_unchanged_then_written()
  lu.assertEquals({ fs.write("/a.conf", "one", "0600") }, { true, "written" })
  lu.assertEquals(t.read(host("/a.conf")), "one")
  lu.assertEquals(mode_of("/a.conf"), "600")
  local before = t.must("stat -c %i:%Y " .. t.q(host("/a.conf")))
  lu.assertEquals({ fs.write("/a.conf", "one", 0x180) }, { true, "unchanged" })
  lu.assertEquals(t.must("stat -c %i:%Y " .. t.q(host("/a.conf"))), before, "unchanged must not rewrite")
  lu.assertEquals({ fs.write("/a.conf", "one", "0644") }, { true, "written" }, "mode differs")
  lu.assertEquals(mode_of("/a.conf"), "644")
  lu.assertEquals({ fs.write("/a.conf", "two", 420) }, { true, "written" })
  lu.assertEquals(t.read(host("/a.conf")), "two")
  lu.assertEquals({ fs.write("/a.conf", "twO", 420) }, { true, "written" }, "same size, other bytes")
  lu.assertEquals(t.must("ls -A " .. t.q(root)), "a.conf\n", "no temp file left")
end

function TestWrite:test_binary_empty_and_large()
  local bin = "a\0b\255\0" .. string.rep("\1\2\3", 100000)
  assert(fs.write("/bin", bin, 420))
  lu.assertEquals(t.read(host("/bin")), bin)
  lu.assertEquals(fs.read("/bin"), bin)
  assert(fs.write("/empty", "", 420))
  lu.assertEquals(t.must("stat -c %s " .. t.q(host("/empty"))), "0\n")
  lu.assertEquals({ fs.write("/empty", "", 420) }, { true, "unchanged" })
end

function TestWrite:test_mode_ignores_umask()
  -- a child kboot with umask 0777 still gets exactly the requested modes
  local s = root .. "/s.lua"
  t.write(s, ([[
    local fs = require("kboot.fs")
    assert(fs.set_root(%q))
    assert(fs.write("/etc/k/f", "x", "0640", { mkdir = true, dir_mode = "0750" }))
    assert(fs.mkdir("/var/lib/x", 0x1ed))
    assert(fs.write("/etc/k/g", "y", "4755"))
  ]]):format(root))
  t.must("umask 0777; " .. t.q(t.bin) .. " " .. t.q(s))
  lu.assertEquals(mode_of("/etc/k/f"), "640")
  lu.assertEquals(mode_of("/etc/k"), "750")
  lu.assertEquals(mode_of("/etc"), "755", "a missing parent gets 0755, the leaf its own mode")
  lu.assertEquals(mode_of("/var/lib/x"), "755")
  lu.assertEquals(mode_of("/var"), "755")
  lu.assertEquals(mode_of("/etc/k/g"), "4755")
end

function TestWrite:test_mkdir_option()
  fails(ENOENT, "cannot write /etc/kubernetes/pki/ca.crt (" .. root .. "/etc/kubernetes/pki/ca.crt)",
    fs.write("/etc/kubernetes/pki/ca.crt", "x", 420))
  lu.assertEquals(t.must("ls -A " .. t.q(root)), "", "nothing created on failure")
  local _, err = fs.write("/etc/kubernetes/pki/ca.crt", "x", 420)
  lu.assertStrContains(tostring(err), "directory /etc/kubernetes/pki is missing")
  assert(fs.write("/etc/kubernetes/pki/ca.crt", "x", 420, { mkdir = true }))
  lu.assertEquals(mode_of("/etc/kubernetes/pki"), "755")
  assert(fs.write("/opt/x/y", "x", 420, { mkdir = true, dir_mode = 0x1c0 }))
  lu.assertEquals(mode_of("/opt/x"), "700")
end

function TestWrite:test_bad_arguments()
  raises("string expected", fs.write, "/a", nil, 420)
  raises("mode", fs.write, "/a", "x")
  raises("bad mode '0800'", fs.write, "/a", "x", "0800")
  raises("bad mode 'rw'", fs.write, "/a", "x", "rw")
  raises("bad mode '4096'", fs.write, "/a", "x", 4096)
  raises("bad mode '-1'", fs.write, "/a", "x", -1)
  raises("bad mode '1.5'", fs.write, "/a", "x", 1.5)
  raises("mode", fs.write, "/a", "x", {})
  raises("bad dir_mode '9'", fs.write, "/a", "x", 420, { dir_mode = "9" })
  raises("option 'mkdir'", fs.write, "/a", "x", 420, { mkdir = "yes" })
  lu.assertFalse(fs.exists("/a"))
end

-- An option of the wrong type is an argument error that names the options table's position and the field.
function TestWrite:test_option_errors_name_the_argument_and_the_field()
  raises_arg(4, "option 'mkdir': boolean expected, got string",
    fs.write, "/a", "x", 420, { mkdir = "yes" })
  raises_arg(4, "option 'dir_mode': integer or octal string expected, got table",
    fs.write, "/a", "x", 420, { mkdir = true, dir_mode = {} })
  raises_arg(4, "bad dir_mode '9'", fs.write, "/a", "x", 420, { dir_mode = "9" })
  raises_arg(2, "option 'recursive': boolean expected, got number",
    fs.remove, "/x", { recursive = 1 })
  lu.assertFalse(fs.exists("/a"))
end

function TestWrite:test_failures_leave_the_tree_unchanged()
  t.must("mkdir -p " .. t.q(host("/etc/dir")) .. " && echo old > " .. t.q(host("/etc/file")))
  local before = t.tree_hash(root)
  fails(EISDIR, "cannot write /etc/dir", fs.write("/etc/dir", "new", 420))
  fails(ENOTDIR, "cannot write /etc/file/x", fs.write("/etc/file/x", "new", 420))
  fails(ENOTDIR, "cannot create directory /etc/file/x", fs.write("/etc/file/x/y", "new", 420, { mkdir = true }))
  lu.assertEquals(t.tree_hash(root), before)
  lu.assertEquals(t.must("ls -A " .. t.q(host("/etc"))), "dir\nfile\n", "no temp files")
end

function TestWrite:test_failure_half_way_keeps_old_file_and_no_temp()
  -- A child kboot with an 8 KiB file size limit (SIGXFSZ ignored, so write() fails with EFBIG).
  t.must("mkdir " .. t.q(host("/etc")) .. " && echo old > " .. t.q(host("/etc/big")))
  local before = t.tree_hash(root)
  local s = t.tmpdir() .. "/s.lua" -- outside the tree being checked
  t.write(s, ([[
    local fs = require("kboot.fs")
    assert(fs.set_root(%q))
    local ok, err = fs.write("/etc/big", string.rep("x", 65536), "0644")
    print(ok, err, err and err.code)
  ]]):format(root))
  local out = t.must("trap '' XFSZ; ulimit -f 8; " .. t.q(t.bin) .. " " .. t.q(s))
  lu.assertStrContains(out, "nil\tcannot write /etc/big (" .. root .. "/etc/big): File too large\t27")
  lu.assertEquals(t.tree_hash(root), before)
  lu.assertEquals(t.must("ls -A " .. t.q(host("/etc"))), "big\n")
end

function TestWrite:test_leftover_temps_removed_by_next_write()
  t.must("mkdir -p " .. t.q(host("/d")))
  t.write(host("/d/.f.kboot-tmp-AbC123"), "partial")
  t.write(host("/d/.g.kboot-tmp-XyZ789"), "other file's temp")
  t.write(host("/d/.f.kboot-tmp-short"), "not a temp name")
  assert(fs.write("/d/f", "full", 420))
  lu.assertEquals(t.must("ls -A " .. t.q(host("/d"))), ".f.kboot-tmp-short\n.g.kboot-tmp-XyZ789\nf\n")
end

function TestWrite:test_replaces_a_symlink_not_its_target()
  t.must("mkdir -p " .. t.q(host("/d")) .. " && echo outside > " .. t.q(host("/out")))
  t.must("ln -s ../out " .. t.q(host("/d/l")))
  assert(fs.write("/d/l", "new", 420))
  lu.assertEquals(t.read(host("/out")), "outside\n")
  lu.assertEquals(fs.stat("/d/l").type, "file")
end

---------------------------------------------------------------------------------------------------
TestRead = { setUp = setup, tearDown = teardown }

function TestRead:test_read_and_errors()
  t.must("mkdir -p " .. t.q(host("/proc/self")))
  t.write(host("/proc/self/status"), "Name:\tfake\n")
  lu.assertEquals(fs.read("/proc/self/status"), "Name:\tfake\n")
  local err = fails(ENOENT, "cannot read /etc/kubernetes/admin.conf (" .. root ..
    "/etc/kubernetes/admin.conf): No such file or directory", fs.read("/etc/kubernetes/admin.conf"))
  lu.assertEquals(err.op, "read")
  fails(EISDIR, "cannot read /proc", fs.read("/proc"))
  -- without a root prefix the message names the path once
  fs.set_root(nil)
  fails(ENOENT, "cannot read /nonexistent/kboot: No such file", fs.read("/nonexistent/kboot"))
  -- a real /proc file (size 0 in stat) reads completely
  lu.assertStrContains(fs.read("/proc/self/status"), "Name:")
end

function TestRead:test_exists_stat_list()
  t.must(("cd %s && mkdir -p d/sub && echo -n hello > d/f && chmod 640 d/f && ln -s nowhere d/l && mkfifo d/p")
    :format(t.q(root)))
  lu.assertTrue(fs.exists("/d/f"))
  lu.assertTrue(fs.exists("/d/l"), "a dangling link exists (lstat)")
  lu.assertFalse(fs.exists("/d/none"))
  lu.assertFalse(fs.exists("/d/f/under-a-file"))
  local st = fs.stat("/d/f")
  lu.assertEquals({ st.type, st.mode, st.size }, { "file", 0x1a0, 5 })
  lu.assertEquals(st.mtime, tonumber(t.must("stat -c %Y " .. t.q(host("/d/f")))))
  lu.assertEquals(st.uid, tonumber(t.must("stat -c %u " .. t.q(host("/d/f")))))
  lu.assertEquals(st.gid, tonumber(t.must("stat -c %g " .. t.q(host("/d/f")))))
  lu.assertEquals(fs.stat("/d").type, "dir")
  lu.assertEquals(fs.stat("/d/l").type, "link")
  lu.assertEquals(fs.stat("/d/p").type, "other")
  fails(ENOENT, "cannot stat /d/none", fs.stat("/d/none"))
  lu.assertEquals(fs.list("/d"), { "f", "l", "p", "sub" })
  lu.assertEquals(fs.list("/d/sub"), {})
  fails(ENOENT, "cannot list /nope", fs.list("/nope"))
  fails(ENOTDIR, "cannot list /d/f", fs.list("/d/f"))
end

---------------------------------------------------------------------------------------------------
TestDirs = { setUp = setup, tearDown = teardown }

function TestDirs:test_mkdir()
  lu.assertTrue(fs.mkdir("/var/lib/etcd", "0700"))
  lu.assertEquals(mode_of("/var/lib/etcd"), "700")
  lu.assertTrue(fs.mkdir("/var/lib/etcd", "0755"), "existing dir is fine")
  lu.assertEquals(mode_of("/var/lib/etcd"), "700", "and keeps its mode")
  lu.assertTrue(fs.mkdir("/", 493))
  t.write(host("/var/file"), "x")
  local before = t.tree_hash(root)
  fails(EEXIST, "cannot create directory /var/file", fs.mkdir("/var/file", 493))
  fails(ENOTDIR, "cannot create directory /var/file/x", fs.mkdir("/var/file/x", 493))
  lu.assertEquals(t.tree_hash(root), before)
  raises("mode", fs.mkdir, "/x")
end

-- mkdir -p as kubeadm's callers expect: the missing parents 0755, the directory asked for its mode
-- (a fresh root must not get var and var/lib at 0700 because var/lib/etcd is 0700); the same in a
-- dry run's overlay and in a batch.
function TestDirs:test_mkdir_parents_get_0755()
  local function modes(...)
    local r = {}
    for i, p in ipairs({ ... }) do r[i] = (mode_of(p)) end
    return r
  end
  assert(fs.mkdir("/var/lib/etcd", "0700"))
  lu.assertEquals(modes("/var", "/var/lib", "/var/lib/etcd"), { "755", "755", "700" })
  assert(fs.write("/etc/kubernetes/pki/etcd/ca.key", "k", "0600", { mkdir = true, dir_mode = "0700" }))
  lu.assertEquals(modes("/etc", "/etc/kubernetes", "/etc/kubernetes/pki", "/etc/kubernetes/pki/etcd"),
    { "755", "755", "755", "700" })
  assert(fs.batch(function() assert(fs.mkdir("/opt/a/b", "0711")) end))
  lu.assertEquals(modes("/opt", "/opt/a", "/opt/a/b"), { "755", "755", "711" })
  fs.set_dry_run(true)
  assert(fs.mkdir("/srv/x/y", "0700"))
  lu.assertEquals({ fs.stat("/srv").mode, fs.stat("/srv/x").mode, fs.stat("/srv/x/y").mode }, { 493, 493, 448 })
  fs.set_dry_run(false)
end

function TestDirs:test_mkdir_follows_links_to_dirs()
  t.must(("cd %s && mkdir real && ln -s real link"):format(t.q(root)))
  assert(fs.mkdir("/link/sub", 493))
  lu.assertEquals(fs.stat("/real/sub").type, "dir")
end

function TestDirs:test_remove()
  t.must(("cd %s && mkdir -p a/b/c && echo 1 > a/b/c/f && echo 2 > a/g && echo 3 > top"):format(t.q(root)))
  lu.assertTrue(fs.remove("/top"))
  lu.assertFalse(fs.exists("/top"))
  lu.assertTrue(fs.remove("/top"), "missing is fine")
  lu.assertTrue(fs.remove("/no/such/dir", { recursive = true }))
  local before = t.tree_hash(root)
  fails(ENOTEMPTY, "cannot remove /a", fs.remove("/a"))
  lu.assertEquals(t.tree_hash(root), before)
  lu.assertTrue(fs.remove("/a", { recursive = true }))
  lu.assertEquals(t.must("ls -A " .. t.q(root)), "")
  t.must("mkdir " .. t.q(host("/empty")))
  lu.assertTrue(fs.remove("/empty"))
  lu.assertFalse(fs.exists("/empty"))
  fails(EINVAL, "refusing to remove the root", fs.remove("/", { recursive = true }))
  raises("option 'recursive'", fs.remove, "/x", { recursive = 1 })
end

function TestDirs:test_recursive_remove_does_not_follow_links()
  local outside = t.tmpdir()
  t.must(("echo keep > %s/keep && mkdir %s/sub && echo keep2 > %s/sub/k"):format(t.q(outside), t.q(outside), t.q(outside)))
  t.must(("cd %s && mkdir -p tree/d && ln -s %s tree/d/link && ln -s %s/keep tree/filelink")
    :format(t.q(root), t.q(outside), t.q(outside)))
  local before = t.tree_hash(outside)
  assert(fs.remove("/tree", { recursive = true }))
  lu.assertFalse(fs.exists("/tree"))
  lu.assertEquals(t.tree_hash(outside), before)
  -- removing the link itself removes only the link
  t.must(("ln -s %s %s"):format(t.q(outside), t.q(host("/l"))))
  assert(fs.remove("/l", { recursive = true }))
  lu.assertEquals(t.tree_hash(outside), before)
end

function TestDirs:test_recursive_remove_stops_at_mount_points()
  local mnt = host("/var/lib/kubelet/pods/p1/volumes/secret")
  t.must("mkdir -p " .. t.q(mnt))
  if not t.sh("mount -t tmpfs kboot-test " .. t.q(mnt)) then
    lu.skip("cannot mount tmpfs here")
  end
  local ok, err = pcall(function()
    t.write(mnt .. "/token", "secret")
    local v, e = fs.remove("/var/lib/kubelet", { recursive = true })
    fails(18, "cannot remove /var/lib/kubelet: kubelet/pods/p1/volumes/secret is a mount point", v, e)
    lu.assertEquals(t.read(mnt .. "/token"), "secret")
    -- the mount point itself as the target is refused too
    fails(18, "is a mount point", fs.remove("/var/lib/kubelet/pods/p1/volumes/secret", { recursive = true }))
    lu.assertEquals(t.read(mnt .. "/token"), "secret")
  end)
  t.must("umount " .. t.q(mnt))
  if not ok then error(err, 0) end
  assert(fs.remove("/var/lib/kubelet", { recursive = true }))
  lu.assertFalse(fs.exists("/var/lib/kubelet"))
end

function TestDirs:test_chmod()
  t.write(host("/f"), "x")
  lu.assertTrue(fs.chmod("/f", "0600"))
  lu.assertEquals(mode_of("/f"), "600")
  lu.assertTrue(fs.chmod("/f", 0x1ed))
  lu.assertEquals(mode_of("/f"), "755")
  fails(ENOENT, "cannot chmod /nope", fs.chmod("/nope", 420))
  raises("bad mode", fs.chmod, "/f", "999")
end

function TestDirs:test_symlink_and_readlink()
  t.must("mkdir " .. t.q(host("/pki")))
  lu.assertEquals({ fs.symlink("/var/lib/kubelet/pki/a.pem", "/pki/current.pem") }, { true, "written" })
  lu.assertEquals(t.must("readlink " .. t.q(host("/pki/current.pem"))), "/var/lib/kubelet/pki/a.pem\n")
  lu.assertEquals(fs.readlink("/pki/current.pem"), "/var/lib/kubelet/pki/a.pem")
  lu.assertEquals({ fs.symlink("/var/lib/kubelet/pki/a.pem", "/pki/current.pem") }, { true, "unchanged" })
  lu.assertEquals({ fs.symlink("b.pem", "/pki/current.pem") }, { true, "written" })
  lu.assertEquals(fs.readlink("/pki/current.pem"), "b.pem")
  lu.assertEquals(fs.list("/pki"), { "current.pem" }, "no temp left")
  -- a file is replaced by the link; a directory is not
  t.write(host("/pki/file"), "x")
  assert(fs.symlink("b.pem", "/pki/file"))
  lu.assertEquals(fs.stat("/pki/file").type, "link")
  t.must("mkdir " .. t.q(host("/pki/dir")))
  fails(EISDIR, "cannot create symlink /pki/dir", fs.symlink("x", "/pki/dir"))
  fails(ENOENT, "cannot create symlink /nodir/l", fs.symlink("x", "/nodir/l"))
  fails(EINVAL, "cannot readlink /pki/dir", fs.readlink("/pki/dir"))
  fails(ENOENT, "cannot readlink /pki/none", fs.readlink("/pki/none"))
  raises("non-empty target", fs.symlink, "", "/pki/x")
end

function TestDirs:test_clean_temps()
  t.must("mkdir " .. t.q(host("/d")))
  for _, n in ipairs { ".a.kboot-tmp-123456", ".b.c.kboot-tmp-zzzzzz", ".kboot-tmp-123456", "x.kboot-tmp-123456",
                       ".a.kboot-tmp-12345", "keep" } do
    t.write(host("/d/" .. n), "x")
  end
  lu.assertEquals(fs.clean_temps("/d"), 2)
  lu.assertEquals(fs.list("/d"), { ".a.kboot-tmp-12345", ".kboot-tmp-123456", "keep", "x.kboot-tmp-123456" })
  lu.assertEquals(fs.clean_temps("/d"), 0)
  fails(ENOENT, "cannot clean temp files in /nope", fs.clean_temps("/nope"))
end

---------------------------------------------------------------------------------------------------
TestLock = { setUp = setup, tearDown = teardown }

local function try_lock_in_child(path)
  local s = root .. "/child.lua"
  t.write(s, ([[
    local fs = require("kboot.fs")
    assert(fs.set_root(%q))
    local l, err = fs.lock(%q)
    if not l then print(tostring(err)) return 3 end
    print("locked")
  ]]):format(root, path))
  return t.sh(t.q(t.bin) .. " " .. t.q(s))
end

function TestLock:test_lock_excludes_another_process()
  local l = assert(fs.lock("/etc/kubernetes/.kboot.lock", { mkdir = true }))
  lu.assertEquals(mode_of("/etc/kubernetes/.kboot.lock"), "600")
  lu.assertStrContains(tostring(l), "kboot.fs.lock (/etc/kubernetes/.kboot.lock")
  local ok, out = try_lock_in_child("/etc/kubernetes/.kboot.lock")
  lu.assertFalse(ok)
  lu.assertStrMatches(out, "another kboot holds /etc/kubernetes/%.kboot%.lock %(pid %d+%)\n")
  -- in the same process too (flock is per open file)
  local l2, err = fs.lock("/etc/kubernetes/.kboot.lock")
  fails(11, "another kboot holds /etc/kubernetes/.kboot.lock", l2, err)
  lu.assertTrue(l:close())
  lu.assertTrue(l:close(), "closing twice is fine")
  lu.assertStrContains(tostring(l), "closed")
  ok, out = try_lock_in_child("/etc/kubernetes/.kboot.lock")
  lu.assertTrue(ok, out)
  lu.assertEquals(out, "locked\n")
end

function TestLock:test_close_and_gc_release()
  do
    local l <close> = assert(fs.lock("/.lock"))
    lu.assertFalse(try_lock_in_child("/.lock"))
  end
  lu.assertTrue(try_lock_in_child("/.lock"))
  local l = assert(fs.lock("/.lock"))
  l = nil
  collectgarbage()
  collectgarbage()
  lu.assertTrue(try_lock_in_child("/.lock"))
  fails(ENOENT, "cannot open lock file /no/dir/.lock", fs.lock("/no/dir/.lock"))
  raises("kboot.fs.lock expected", function() return fs.lock("/.lock").close(io.stdout) end)
end

---------------------------------------------------------------------------------------------------
TestDryRun = { setUp = setup, tearDown = teardown }

function TestDryRun:test_nothing_on_disk_but_everything_recorded_and_visible()
  t.must(("cd %s && mkdir -p etc/kubernetes/manifests var/lib/old/sub && echo old > etc/kubernetes/admin.conf" ..
    " && echo x > var/lib/old/sub/f && echo y > var/lib/old/g && echo same > etc/same && chmod 644 etc/same")
    :format(t.q(root)))
  local before = t.tree_hash(root)
  local modes_before = t.must("cd " .. t.q(root) .. " && find . -printf '%p %m %y\\n' | sort")
  fs.set_dry_run(true)
  lu.assertTrue(fs.dry_run())
  lu.assertEquals({ fs.write("/etc/kubernetes/pki/ca.crt", "CERT", "0644", { mkdir = true }) }, { true, "written" })
  lu.assertEquals({ fs.write("/etc/kubernetes/admin.conf", "new", "0600") }, { true, "written" })
  lu.assertEquals({ fs.write("/etc/same", "same\n", "0644") }, { true, "unchanged" })
  assert(fs.mkdir("/var/lib/etcd", "0700"))
  assert(fs.mkdir("/var/lib/etcd", "0700")) -- exists now in the overlay: not recorded again
  assert(fs.remove("/var/lib/old", { recursive = true }))
  assert(fs.remove("/var/lib/never-there"))
  assert(fs.chmod("/etc/kubernetes/manifests", "0700"))
  assert(fs.symlink("/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/ca-link"))
  -- reads see the overlay
  lu.assertEquals(fs.read("/etc/kubernetes/pki/ca.crt"), "CERT")
  lu.assertEquals(fs.read("/etc/kubernetes/admin.conf"), "new")
  lu.assertEquals(fs.read("/etc/kubernetes/ca-link"), "CERT", "links made in the dry run are followed")
  lu.assertEquals(fs.readlink("/etc/kubernetes/ca-link"), "/etc/kubernetes/pki/ca.crt")
  lu.assertTrue(fs.exists("/var/lib/etcd"))
  lu.assertFalse(fs.exists("/var/lib/old"))
  lu.assertFalse(fs.exists("/var/lib/old/sub/f"))
  fails(ENOENT, "cannot read /var/lib/old/g", fs.read("/var/lib/old/g"))
  lu.assertEquals(fs.stat("/etc/kubernetes/pki/ca.crt").mode, 0x1a4)
  lu.assertEquals(fs.stat("/etc/kubernetes/pki/ca.crt").size, 4)
  lu.assertEquals(fs.stat("/etc/kubernetes/pki").type, "dir")
  lu.assertEquals(fs.stat("/etc/kubernetes/manifests").mode, 0x1c0)
  lu.assertEquals(fs.stat("/etc/kubernetes/ca-link").type, "link")
  lu.assertEquals(fs.list("/etc/kubernetes"), { "admin.conf", "ca-link", "manifests", "pki" })
  lu.assertEquals(fs.list("/var/lib"), { "etcd" })
  lu.assertEquals(fs.list("/etc/kubernetes/pki"), { "ca.crt" })
  -- what would happen, in order
  local rec = fs.recorded()
  local summary = {}
  for i, r in ipairs(rec) do summary[i] = r.op .. " " .. r.path end
  lu.assertEquals(summary, {
    "mkdir /etc/kubernetes/pki", "write /etc/kubernetes/pki/ca.crt", "write /etc/kubernetes/admin.conf",
    "mkdir /var/lib/etcd", "remove /var/lib/old", "chmod /etc/kubernetes/manifests",
    "symlink /etc/kubernetes/ca-link" })
  lu.assertEquals(rec[1].mode, 0x1ed)
  lu.assertEquals(rec[2], { op = "write", path = "/etc/kubernetes/pki/ca.crt", mode = 0x1a4, data = "CERT" })
  lu.assertEquals(rec[4].mode, 0x1c0)
  lu.assertTrue(rec[5].recursive)
  lu.assertEquals(rec[7].target, "/etc/kubernetes/pki/ca.crt")
  -- the disk is untouched
  lu.assertEquals(t.tree_hash(root), before)
  lu.assertEquals(t.must("cd " .. t.q(root) .. " && find . -printf '%p %m %y\\n' | sort"), modes_before)
  fs.reset_recorded()
  lu.assertEquals(fs.recorded(), {})
  lu.assertEquals(fs.read("/etc/kubernetes/pki/ca.crt"), "CERT", "overlay survives reset_recorded")
  fs.set_dry_run(false)
  lu.assertFalse(fs.dry_run())
  lu.assertFalse(fs.exists("/etc/kubernetes/pki/ca.crt"), "leaving dry run drops the overlay")
  lu.assertEquals(fs.read("/etc/kubernetes/admin.conf"), "old\n")
end

function TestDryRun:test_remove_then_recreate_hides_old_children()
  t.must(("cd %s && mkdir -p a/b && echo x > a/b/f && echo y > a/g"):format(t.q(root)))
  local before = t.tree_hash(root)
  fs.set_dry_run(true)
  assert(fs.remove("/a", { recursive = true }))
  assert(fs.write("/a/b/new", "n", 420, { mkdir = true }))
  lu.assertEquals(fs.list("/a"), { "b" })
  lu.assertEquals(fs.list("/a/b"), { "new" })
  lu.assertFalse(fs.exists("/a/b/f"))
  assert(fs.remove("/a/b/new"))
  lu.assertEquals(fs.list("/a/b"), {})
  assert(fs.remove("/a/b"))
  fails(ENOENT, "cannot write /a/b/z", fs.write("/a/b/z", "z", 420))
  lu.assertEquals(t.tree_hash(root), before)
end

function TestDryRun:test_errors_match_real_mode()
  t.must(("cd %s && mkdir -p d/sub && echo x > d/f && echo y > d/sub/y"):format(t.q(root)))
  local before = t.tree_hash(root)
  fs.set_dry_run(true)
  fails(ENOENT, "directory /no is missing", fs.write("/no/x", "x", 420))
  fails(EISDIR, "cannot write /d/sub", fs.write("/d/sub", "x", 420))
  fails(ENOTDIR, "cannot write /d/f/x", fs.write("/d/f/x", "x", 420))
  fails(EEXIST, "cannot create directory /d/f", fs.mkdir("/d/f", 493))
  fails(ENOTEMPTY, "cannot remove /d", fs.remove("/d"))
  fails(ENOENT, "cannot chmod /nope", fs.chmod("/nope", 420))
  fails(EINVAL, "refusing", fs.remove("/", { recursive = true }))
  lu.assertEquals(fs.recorded(), {})
  -- chmod of a disk file, then read and stat it through the overlay
  assert(fs.chmod("/d/f", "0600"))
  lu.assertEquals(fs.stat("/d/f").mode, 0x180)
  lu.assertEquals(fs.read("/d/f"), "x\n")
  lu.assertEquals(fs.clean_temps("/d"), 0)
  lu.assertEquals(t.tree_hash(root), before)
  lu.assertEquals(mode_of("/d/f"), "644")
end

function TestDryRun:test_lock_in_dry_run_creates_nothing()
  fs.set_dry_run(true)
  local l = assert(fs.lock("/etc/kubernetes/.kboot.lock", { mkdir = true }))
  lu.assertEquals(t.must("ls -A " .. t.q(root)), "")
  l:close()
  -- an existing lock file held by a real run is still honoured
  fs.set_dry_run(false)
  local real = assert(fs.lock("/.kboot.lock"))
  fs.set_dry_run(true)
  fails(11, "another kboot holds /.kboot.lock", fs.lock("/.kboot.lock"))
  real:close()
end

function TestDryRun:test_set_root_drops_overlay()
  fs.set_dry_run(true)
  assert(fs.write("/x", "x", 420))
  lu.assertTrue(fs.exists("/x"))
  assert(fs.set_root(root))
  lu.assertFalse(fs.exists("/x"))
end

os.exit(lu.LuaUnit.run("-v"))

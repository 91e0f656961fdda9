-- The README's two commands, as a new user runs them on a fresh Debian machine: as root, where
-- there is no sudo (and through sudo for a normal user, by tools/install-deps.sh). The first one's
-- build and run on a clean copy of the tree with no sudo on the PATH; CI's entry point runs the
-- second one as the README gives it (the suite itself is not run again from here).
local lu = require("luaunit")
local t = require("testlib")

-- the README's "Two commands" section: its sh blocks, each one command line
local function readme_commands()
  local text = t.read(t.src .. "/README.md")
  local section = text:match("\n## Two commands[^\n]*\n(.-)\n## ")
  lu.assertNotNil(section, "README.md has no '## Two commands' section")
  local cmds = {}
  for block in section:gmatch("```sh\n(.-)\n```") do cmds[#cmds + 1] = block end
  lu.assertEquals(#cmds, 2, section)
  return cmds
end

-- a directory of links to every program on PATH but sudo: a PATH as a machine without sudo has it
local function path_without_sudo(dir)
  t.must("mkdir -p " .. t.q(dir))
  local script = [[
IFS=:; for d in $PATH; do
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    n=${f##*/}
    [ "$n" = sudo ] && continue
    [ -x "$f" ] && [ ! -d "$f" ] && [ ! -e "$DEST/$n" ] && ln -s "$f" "$DEST/$n"
  done
done; true]]
  t.must(("DEST=%s sh -c %s"):format(t.q(dir), t.q(script)))
  lu.assertFalse(t.sh(("PATH=%s command -v sudo"):format(t.q(dir))), "sudo is still on the PATH")
  return dir
end

TestReadme = {}
function TestReadme:tearDown() t.cleanup() end

function TestReadme:test_the_commands_need_no_sudo_and_ci_runs_the_test_command()
  local cmds = readme_commands()
  for _, c in ipairs(cmds) do
    lu.assertNil(c:find("\n", 1, true), "one line each: " .. c)
    lu.assertNil(c:match("%f[%w]sudo%f[%W]"), "a README command calls sudo: " .. c)
  end
  lu.assertStrMatches(cmds[1], "tools/build%.sh && .*")
  -- .ci/run's one command is the README's test command, word for word
  local run = {}
  for line in t.read(t.src .. "/.ci/run"):gmatch("[^\n]+") do
    if not line:match("^%s*#") and not line:match("^set ") and not line:match("^cd ") then run[#run + 1] = line end
  end
  lu.assertEquals(run, { cmds[2] })
  -- the scripts they call run apt-get (but for `apt-get source`, a download into the user's own
  -- directory) through tools/as_root.sh, the one place that calls sudo, and only for a user who is
  -- not root
  for _, f in ipairs({ "tools/build.sh", "tools/test.sh", "tools/install-deps.sh", ".ci/run",
                       "tests/e2e/build-control-plane.sh" }) do
    for line in t.read(t.src .. "/" .. f):gmatch("[^\n]+") do
      if not line:match("^%s*#") then
        lu.assertNil(line:match("%f[%w]sudo%s+[%w%-]"), f .. " runs sudo itself: " .. line)
        if line:match("%f[%w]apt%-get ") and not line:match("apt%-get source") then -- a user's own download
          lu.assertNotNil(line:find("as_root apt-get", 1, true), f .. ": apt-get not through as_root: " .. line)
        end
      end
    end
  end
end

-- install-deps.sh's two ways to apt-get, seen through stand-ins for id, dpkg-query, apt-get and
-- sudo (nothing is installed): root runs apt-get itself, another user through sudo, keeping the
-- non-interactive frontend; without sudo that user gets one line and exit 1.
function TestReadme:test_install_deps_as_root_and_through_sudo()
  local d = t.tmpdir()
  local bin = path_without_sudo(d .. "/bin")
  local log = d .. "/calls"
  local function stub(name, body)
    t.must("rm -f " .. t.q(bin .. "/" .. name))
    t.write(bin .. "/" .. name, "#!/bin/sh\n" .. body .. "\n")
    t.must("chmod +x " .. t.q(bin .. "/" .. name))
  end
  -- one package missing: valgrind
  stub("dpkg-query", [[for a; do p=$a; done; [ "$p" = valgrind ] && exit 1; echo "install ok installed"]])
  stub("apt-get", ([[echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND uid=$(id -u)" >> %s]]):format(t.q(log)))
  local deps = t.q(t.src .. "/tools/install-deps.sh")
  -- root, no sudo anywhere
  stub("id", [[echo 0]])
  local ok, out = t.sh(("PATH=%s %s"):format(t.q(bin), deps))
  lu.assertTrue(ok, out)
  lu.assertEquals(t.read(log), "apt-get update -qq DEBIAN_FRONTEND=noninteractive uid=0\n"
    .. "apt-get install -y -qq --no-install-recommends valgrind DEBIAN_FRONTEND=noninteractive uid=0\n")
  -- a normal user without sudo: one line, nothing run
  stub("id", [[echo 1000]])
  t.write(log, "")
  local code
  ok, out, code = t.sh(("PATH=%s %s"):format(t.q(bin), deps))
  lu.assertEquals(code, 1)
  lu.assertEquals(out, "install-deps: missing valgrind; run this as root (or install sudo) to install them\n")
  lu.assertEquals(t.read(log), "")
  -- a normal user with sudo: apt-get through it, the frontend passed on (sudo resets the environment)
  stub("sudo", ([[echo "sudo $*" >> %s; unset DEBIAN_FRONTEND; "$@"]]):format(t.q(log)))
  ok, out = t.sh(("PATH=%s %s"):format(t.q(bin), deps))
  lu.assertTrue(ok, out)
  lu.assertEquals(t.read(log), "sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq\n"
    .. "apt-get update -qq DEBIAN_FRONTEND=noninteractive uid=1000\n"
    .. "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind\n"
    .. "apt-get install -y -qq --no-install-recommends valgrind DEBIAN_FRONTEND=noninteractive uid=1000\n")
end

-- The first command, as written, in a clean copy of the tree (the files git tracks, as a clone has
-- them, without any build directory), with no sudo on the PATH: it builds, runs kboot init into
-- build/sandbox, and changes nothing outside build/.
function TestReadme:test_the_first_command_on_a_clean_copy_without_sudo()
  if not t.sh("git -C " .. t.q(t.src) .. " rev-parse --is-inside-work-tree") then
    lu.skip("the source tree is not a git checkout: no clean copy to make")
  end
  local d = t.tmpdir()
  local copy = d .. "/kboot"
  t.must("mkdir " .. t.q(copy))
  t.must(("git -C %s ls-files -z | tar -C %s --null --no-recursion -T - -cf - | tar -C %s -xf -")
    :format(t.q(t.src), t.q(t.src), t.q(copy)))
  lu.assertNotNil(io.open(copy .. "/tools/build.sh"))
  lu.assertNil(io.open(copy .. "/build"))
  local before = t.tree_hash(copy)
  local bin = path_without_sudo(d .. "/bin")
  local cmd = readme_commands()[1]
  local ok, out, code = t.sh(("cd %s && env -u KBOOT_SCRIPTS PATH=%s bash -c %s"):format(t.q(copy), t.q(bin), t.q(cmd)))
  lu.assertTrue(ok, ("exit %s:\n%s"):format(tostring(code), out))
  lu.assertStrContains(out, "install-deps: all ")
  lu.assertStrContains(out, "[init] This node's files are written: certificates in " .. copy .. "/build/sandbox/etc/kubernetes/pki")
  local last = out:gsub("%s+$", ""):match("[^\n]*$")
  lu.assertStrMatches(last, "%[init%] 22 phases run, 10 skipped, in [%d.]+ m?s")
  for _, f in ipairs({ "etc/kubernetes/manifests/kube-apiserver.yaml", "etc/kubernetes/admin.conf",
                       "etc/kubernetes/pki/ca.key", "var/lib/kubelet/config.yaml" }) do
    lu.assertNotNil(io.open(copy .. "/build/sandbox/" .. f), f)
  end
  lu.assertNil(io.open(copy .. "/build/sandbox/etc/kubernetes/.kboot.lock"))
  -- nothing outside build/ was touched
  t.must("mv " .. t.q(copy .. "/build") .. " " .. t.q(d .. "/build"))
  lu.assertEquals(t.tree_hash(copy), before)
end

os.exit(lu.LuaUnit.run("-v"))

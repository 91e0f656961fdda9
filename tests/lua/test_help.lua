-- kboot.help: help() at the REPL from one source of truth, the docs/api pages built into the binary.
-- The texts are compared with the pages in the source tree, and the console's documented helpers with
-- the functions kboot.console has.
local lu = require("luaunit")
local t = require("testlib")
local help = require("kboot.help")
local repl = require("kboot.repl")

local function page(name) return t.read(t.src .. "/docs/api/" .. name .. ".md") end

-- Every module, as the REPL loads them.
local modules = {}
for _, m in ipairs(repl.modules()) do modules[m] = require(m) end
for _, m in ipairs({ "kboot.pki", "kboot.http", "kboot.fs", "kboot.crypto" }) do modules[m] = require(m) end

TestHelp = {}

function TestHelp:test_the_binary_holds_the_pages_of_the_tree()
  local docs = help.docs()
  local names = {}
  for n in pairs(docs) do names[#names + 1] = n end
  table.sort(names)
  local files = {}
  for f in t.must("ls " .. t.q(t.src .. "/docs/api")):gmatch("([%w_]+)%.md") do files[#files + 1] = f end
  lu.assertEquals(names, files)
  for _, n in ipairs(names) do lu.assertEquals(docs[n], page(n), n) end
end

function TestHelp:test_a_function_is_its_row()
  -- the row of docs/api/kube.md, word for word (markdown removed)
  local row = page("kube"):match("\n| `k:get%(api_version, kind, ns_or_nil, name%)` | ([^\n]-) |\n")
  lu.assertNotNil(row)
  local text = help.text("kube.get", { width = 0 })
  lu.assertEquals(text, "k:get(api_version, kind, ns_or_nil, name)\n  " .. row:gsub("`", "") .. "\n  (docs/api/kube.md)")
  -- a list item (pki.md), with its continuation lines
  text = help.text("pki.load_cert", { width = 0 })
  lu.assertStrContains(text, "pki.load_cert(pem)\n  the first certificate | nil, err; pki.load_certs(pem) -> array")
  -- the same name asked for as a method, with kboot., or a console helper by its bare name
  lu.assertEquals(help.text("kube:get", { width = 0 }), help.text("kboot.kube.get", { width = 0 }))
  lu.assertStrContains(help.text("nodes", { width = 0 }), "nodes()\n  The Nodes, and why one is not Ready.")
  lu.assertStrContains(help.text("etcd.members", { width = 0 }), "etcd.members([o])\n  etcd's members.")
  lu.assertStrContains(help.text("http.request", { width = 0 }), "c:request(method, path, { query=, headers=, body=")
  -- an escaped | in a cell is a |
  lu.assertStrContains(help.text("kube.new", { width = 0 }), "kube.new(kubeconfig_path | kubeconfig_table | http_client")
  -- wrapped to the width
  for line in help.text("kube.apply", { width = 60 }):gmatch("[^\n]+") do
    if not line:match("^k:apply") then lu.assertTrue(#line <= 60 or not line:find(" ", 3), line) end
  end
  lu.assertStrContains(help.text("no.such_thing"), 'no documentation found for "no.such_thing"')
end

function TestHelp:test_functions_are_named()
  local kube = require("kboot.kube")
  local o = { modules = modules, globals = { nodes = require("kboot.console").nodes } }
  lu.assertEquals(help.name_of(kube.new, modules), "kube.new")
  -- a Lua class's method (kube's client), found through the module's upvalues
  local k = kube.new(nil, { dry_run = true })
  lu.assertEquals(help.name_of(k.get, modules), "kube:get")
  -- a C userdata's method, through its registered metatable
  local c = require("kboot.http").client({ server = "http://127.0.0.1:1" })
  lu.assertEquals(help.name_of(c.request, modules), "http:request")
  lu.assertEquals(help.name_of(require("kboot.console").nodes, modules, o.globals), "nodes")
  lu.assertStrContains(help.text(k.list, o), "k:list(api_version, kind, ns_or_nil,")
  lu.assertStrContains(help.text(c.json, o), "c:json(method, path, value_or_nil")
  lu.assertStrContains(help.text(require("kboot.console").certs, o), "certs()\n  The node's certificates")
  lu.assertStrContains(help.text(print, o), "no documentation found for this function")
  -- a module: its line and its functions
  local text = help.text(require("kboot.etcd_members"), o)
  lu.assertStrContains(text, "kboot.etcd_members: etcd membership for control-plane join and reset")
  lu.assertStrContains(text, "  add_learner(c, name, peer_url [, timeout])")
end

function TestHelp:test_overview_lists_helpers_and_modules()
  local text = help.text(nil, { modules = modules, width = 100 })
  for _, h in ipairs({ "connect([kubeconfig [, opts]])", "nodes()", "pods([ns])", "events([ns])", "components()",
                       "certs()", "inspect(x)", "diagnose()", "probe(url [, opts])", "watch(what [, ns [, opts]])",
                       "etcd.members(), etcd.health(), etcd.status()" }) do
    lu.assertStrContains(text, "\n  " .. h)
  end
  lu.assertStrContains(text, "\n  kube              A small Kubernetes API client in Lua")
  lu.assertStrContains(text, "\n  net               IP and CIDR helpers")
  lu.assertStrContains(text, "\n  components.*      ")
  for line in text:gmatch("[^\n]+") do lu.assertTrue(utf8.len(line) <= 100, line) end
end

-- What console.md documents is what kboot.console has, and the other way round.
function TestHelp:test_console_page_matches_the_module()
  local console = require("kboot.console")
  local documented = {}
  for _, e in ipairs(help.index()) do
    if e.doc == "console" then documented[e.name] = true end
  end
  for _, name in ipairs({ "connect", "disconnect", "nodes", "pods", "events", "components", "watch", "certs", "inspect",
                          "diagnose", "probe" }) do
    lu.assertEquals(type(console[name]), "function", name)
    lu.assertTrue(documented[name], name .. " is not in console.md")
  end
  for _, name in ipairs({ "members", "health", "status" }) do
    lu.assertEquals(type(console.etcd[name]), "function")
    lu.assertTrue(documented["etcd." .. name], name)
  end
  for name in pairs(documented) do
    local f = name:match("^etcd%.(.+)$") and console.etcd[name:match("^etcd%.(.+)$")]
      or name:match("^rows%.(.+)$") and require("kboot.rows")[name:match("^rows%.(.+)$")]
      or name:match("^console%.(.+)$") and console[name:match("^console%.(.+)$")]
      or console[name] or (name == "help" and true)
    lu.assertNotNil(f, name .. " is documented but does not exist")
  end
  -- every function kboot.console exports is documented
  for name, v in pairs(console) do
    if type(v) == "function" then
      lu.assertTrue(documented[name] or documented["console." .. name], "console." .. name .. " is not in console.md")
    end
  end
end

os.exit(lu.LuaUnit.run("-v"))

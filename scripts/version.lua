--- print kboot's version, its libraries' and the Kubernetes versions it supports
local cli = require("kboot.cli")
local build = require("kboot.build")
local versions = require("kboot.versions")
local yaml = require("kboot.yaml")
local json = require("cjson")

local opts = cli.parse({ ... }, { name = "version", usage = "kboot version [-o short|json|yaml]",
  summary = "Print kboot's version, the versions of Lua, OpenSSL, libcurl (when it can be loaded) and libyaml "
    .. "it runs with, the Kubernetes version `kboot init` uses by default and the range it supports.",
  options = { { "output", short = "o", arg = "FORMAT", help = "short (kboot's version only), json or yaml; default: text",
                check = function(v) return v == "short" or v == "json" or v == "yaml", "want short, json or yaml" end } },
  max_args = 0, examples = { "kboot version", "kboot version -o json" } })

if opts.output == "short" then
  io.stdout:write(build.version, "\n")
  return
end

-- One table, its keys in a fixed order (the text, JSON and YAML say the same).
local ordered = yaml.ordered
local ssl_text, ssl_version = build.openssl()
local curl_version, curl_ssl = build.libcurl() -- dlopen()s libcurl: a missing one is reported, not fatal
local curl
if curl_version then curl = ordered({ version = curl_version, ssl = curl_ssl }, { "version", "ssl" })
else curl = { error = tostring(curl_ssl) } end
local function minor(m) return ("v1.%d"):format(m) end
local info = ordered({
  kboot = { version = build.version },
  lua = ordered({ version = build.lua, cjson = json._VERSION }, { "version", "cjson" }),
  openssl = ordered({ version = ssl_version, text = ssl_text, headers = build.openssl_headers }, { "version", "text", "headers" }),
  libcurl = curl,
  libyaml = { version = build.libyaml() },
  kubernetes = ordered({ default = versions.default_version, oldest = minor(versions.min_minor), newest = minor(versions.max_minor) },
                       { "default", "oldest", "newest" }),
}, { "kboot", "lua", "openssl", "libcurl", "libyaml", "kubernetes" })

-- JSON with the same key order (cjson's follows the hash table)
local ORDER = { kboot = { "version" }, lua = { "version", "cjson" }, openssl = { "version", "text", "headers" },
                libcurl = { "version", "ssl", "error" }, libyaml = { "version" }, kubernetes = { "default", "oldest", "newest" } }
local function to_json()
  local out = {}
  for i, k in ipairs({ "kboot", "lua", "openssl", "libcurl", "libyaml", "kubernetes" }) do
    local fields = {}
    for _, f in ipairs(ORDER[k]) do
      if info[k][f] ~= nil then fields[#fields + 1] = ("    %s: %s"):format(json.encode(f), json.encode(info[k][f])) end
    end
    out[i] = ("  %s: {\n%s\n  }"):format(json.encode(k), table.concat(fields, ",\n"))
  end
  return "{\n" .. table.concat(out, ",\n") .. "\n}\n"
end

if opts.output == "json" then io.stdout:write((to_json():gsub("\\/", "/"))) return end
if opts.output == "yaml" then io.stdout:write(yaml.encode(info)) return end

local k = info.kubernetes
io.stdout:write(table.concat({
  "kboot " .. build.version,
  ("%s (lua-cjson %s)"):format(build.lua, json._VERSION),
  ssl_text,
  curl_version and ("libcurl %s%s"):format(curl_version, curl_ssl and (" (" .. curl_ssl .. ")") or "")
    or ("libcurl: not loadable: %s"):format(curl.error),
  "libyaml " .. info.libyaml.version,
  ("Kubernetes %s by default; %s to %s supported"):format(k.default, k.oldest, k.newest),
}, "\n"), "\n")

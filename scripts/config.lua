--- print default configuration, list images, validate a kubeadm config file
local cli = require("kboot.cli")
local log = require("kboot.log")
local config = require("kboot.config")
local versions = require("kboot.versions")

local argv = { ... }
local commands = {
  { "print init-defaults", "print kubeadm's default InitConfiguration and ClusterConfiguration (v1beta4)" },
  { "images list", "list the images `kboot init` uses (preload them into an offline registry)" },
  { "validate --config FILE", "check a config file; print one line per problem" },
}
local top = { name = "config", usage = "kboot config COMMAND [options]", commands = commands,
              summary = "Work with kubeadm configuration files." }

-- `kboot config` looks at no host: the node name and address kubeadm's placeholders would get
local NO_HOST = { hostname = "node", default_address_err = "cannot read /proc/net/route", systemd_resolved = false,
                  proxy_env = {} }

-- The config as `kboot init` would see it, for `images list` and `validate`.
local function load(opts)
  return config.load({ file = opts.config, flags = opts, host = NO_HOST })
end

local function print_init_defaults(args)
  local opts = cli.parse(args, { name = "config print init-defaults", usage = "kboot config print init-defaults [options]",
    summary = "Print the default InitConfiguration and ClusterConfiguration as kubeadm does, with kubeadm's placeholders (token abcdef.0123456789abcdef, address 1.2.3.4, node name \"node\").",
    options = { { "component-configs", arg = "LIST", list = true,
                  help = "also print KubeletConfiguration and/or KubeProxyConfiguration" } }, max_args = 0 })
  local init, cluster = config.print_defaults()
  local docs = { init, cluster }
  for _, c in ipairs(opts.component_configs) do
    if c == "KubeletConfiguration" then
      -- the kubelet component renders the same document `kboot init` writes to /var/lib/kubelet/config.yaml
      local p = assert(config.load({ docs = { init, cluster }, host = NO_HOST }))
      local ctx = require("kboot.context").new({ flow = "init", parts = p, host = NO_HOST })
      docs[#docs + 1] = require("kboot.components.kubelet").config(ctx)
    elseif c == "KubeProxyConfiguration" then
      docs[#docs + 1] = {
        apiVersion = "kubeproxy.config.k8s.io/v1alpha1", kind = "KubeProxyConfiguration",
        bindAddress = "0.0.0.0", clusterCIDR = "",
        clientConnection = { kubeconfig = "/var/lib/kube-proxy/kubeconfig.conf" },
      }
    else
      cli.usage_error("config print init-defaults", "unknown component config %q (want KubeletConfiguration or KubeProxyConfiguration)", c)
    end
  end
  io.stdout:write(require("kboot.yaml").encode_all(docs))
end

local function images_list(args)
  local opts = cli.parse(args, { name = "config images list", usage = "kboot config images list [options]",
    summary = "List the container images kboot init needs, in kubeadm's order.",
    options = {
      { "kubernetes-version", arg = "VERSION", help = "Kubernetes version (default " .. versions.default_version .. ")" },
      { "image-repository", arg = "REPO", help = "registry to pull control-plane images from (default registry.k8s.io)" },
      { "config", arg = "FILE", help = "kubeadm config file (its version, repositories and etcd/DNS image overrides)" },
    }, max_args = 0 })
  local p, errs = load(opts)
  if not p then cli.fail("%s", table.concat(errs, "\n")) end
  local c = p.cluster
  local l = c.etcd["local"]
  local list = assert(versions.images(c.kubernetesVersion, c.imageRepository, {
    external_etcd = c.etcd.external ~= nil,
    etcd_repo = l and l.imageRepository ~= "" and l.imageRepository or nil,
    etcd_tag = l and l.imageTag ~= "" and l.imageTag or nil,
    dns_repo = c.dns.imageRepository ~= "" and c.dns.imageRepository or nil,
    dns_tag = c.dns.imageTag ~= "" and c.dns.imageTag or nil,
  }))
  if c.dns.disabled then table.remove(list, 5) end
  io.stdout:write(table.concat(list, "\n"), "\n")
end

local function validate(args)
  local opts = cli.parse(args, { name = "config validate", usage = "kboot config validate --config FILE",
    summary = "Check a kubeadm config file as kboot init would; one line per problem, exit 1 if any.",
    options = { { "config", arg = "FILE", help = "the file to check" } }, max_args = 0 })
  if not opts.config then cli.usage_error("config validate", "--config FILE is required") end
  local p, errs, warnings = load(opts)
  for _, w in ipairs(warnings or {}) do log.warn("config", "%s", w) end
  if not p then
    io.stdout:write(table.concat(errs, "\n"), "\n")
    cli.exit(1, ("%s: %d problem(s)"):format(opts.config, #errs))
  end
  io.stdout:write(("%s: ok (Kubernetes %s)\n"):format(opts.config, p.cluster.kubernetesVersion))
end

-- the two-word commands' groups, as kubeadm has them (`kboot config images --help`)
local groups = {
  print = { name = "config print", usage = "kboot config print COMMAND [options]", summary = "Print configuration.",
            commands = { { "init-defaults", commands[1][2] } }, run = { ["init-defaults"] = print_init_defaults } },
  images = { name = "config images", usage = "kboot config images COMMAND [options]",
             summary = "Interact with the container images kboot init uses.",
             commands = { { "list", commands[2][2] } }, run = { list = images_list } },
}

local sub = argv[1]
if sub == "validate" then return validate({ table.unpack(argv, 2) }) end
local g = groups[sub]
if g then
  local word = argv[2]
  if g.run[word] then return g.run[word]({ table.unpack(argv, 3) }) end
  cli.group_help(g, word)
  cli.usage_error(g.name, "unknown command %q", word)
end
cli.group_help(top, sub)
cli.usage_error("config", "unknown command %q", sub)

--- kubeconfig files for additional users (kubeadm kubeconfig user), with their RBAC binding
local cli = require("kboot.cli")
local log = require("kboot.log")
local fs = require("kboot.fs")
local net = require("kboot.net")
local time = require("kboot.time")
local uk = require("kboot.user_kubeconfig")

local argv = { ... }

local commands = {
  { "user", "print (or write) a kubeconfig for an additional user; optionally bind it to a Role or ClusterRole" },
}
local top = { name = "kubeconfig", usage = "kboot kubeconfig COMMAND [options]", commands = commands,
              summary = "Kubeconfig file utilities (kubeadm kubeconfig)." }

-- https://host[:port][/path]: the host an IP address or a DNS name
local function check_server(s)
  local authority = s:match("^https://([^/?#]+)[^?#]*$")
  if not authority then return false, "want https://HOST[:PORT]" end
  local host, port = net.split_host_port(authority)
  if not host or not (net.is_ip(host) or net.is_dns_subdomain(host)) then
    return false, "the host must be an IP address or a DNS name"
  end
  if port and (port < 1 or port > 65535) then return false, "the port must be 1..65535" end
  return true
end

local function user(args)
  local name = "kubeconfig user"
  local opts = cli.parse(args, { name = name, usage = "kboot kubeconfig user --client-name NAME [options]",
    summary = "Print a kubeconfig for an additional user, as kubeadm kubeconfig user does: a client certificate "
      .. "(CN = --client-name, O = each --org) signed by the cluster CA, or a --token user. The server is the "
      .. "configuration's controlPlaneEndpoint, else its advertise address and bind port (or --server).",
    description = "Without --config, the cluster is what this node has under /etc/kubernetes (under --root): the "
      .. "server and cluster name of admin.conf, the CA in /etc/kubernetes/pki, keys of the CA key's type. "
      .. "--output and every path are under --root, like everything kboot writes.\n"
      .. "--bind-role ROLE --namespace NS (or --bind-clusterrole ROLE, with or without --namespace) also creates "
      .. "a RoleBinding (ClusterRoleBinding) for the user, or for each --org group, through --kubeconfig "
      .. "(server-side apply: a re-run changes nothing). The binding is made before the kubeconfig is "
      .. "printed or written, so a failure leaves nothing behind.",
    options = {
      { "client-name", arg = "NAME", help = "the user: the certificate's CN (required)" },
      { "org", arg = "ORG", list = true, help = "an organization (group), the certificate's O; repeat or comma-separate" },
      { "token", arg = "TOKEN", help = "a token user instead of a client certificate" },
      { "validity-period", arg = "DURATION", default = "8760h0m0s", help = "the client certificate's lifetime" },
      { "config", arg = "FILE", help = "kubeadm configuration (certificatesDir, clusterName, controlPlaneEndpoint, localAPIEndpoint, encryptionAlgorithm)" },
      { "server", arg = "URL", help = "the API server URL to write (default: from the configuration)" },
      { "output", arg = "FILE", help = "write the kubeconfig to FILE (mode 0600, atomic) instead of printing it" },
      { "bind-role", arg = "ROLE", help = "bind the Role ROLE of --namespace to the user (or its --org groups)" },
      { "bind-clusterrole", arg = "ROLE", help = "bind the ClusterRole ROLE (in --namespace when given, else cluster-wide)" },
      { "namespace", arg = "NS", help = "the namespace of the binding" },
      { "kubeconfig", arg = "FILE", default = uk.ADMIN_CONF, help = "admin kubeconfig for the binding (and, without --config, the server)" },
      { "root", arg = "DIR", help = "treat DIR as the file system root (a sandbox)" },
    }, max_args = 0,
    examples = {
      "kboot kubeconfig user --client-name alice --org team-a > alice.conf",
      "kboot kubeconfig user --client-name alice --org team-a --bind-role pod-reader --namespace team-a --output /home/alice/.kube/config",
      "kboot kubeconfig user --client-name ci --token abcdef.0123456789abcdef --config kubeadm.yaml",
    } })

  -- every check first: bad input reads nothing and writes nothing
  if not opts.client_name or opts.client_name == "" then cli.usage_error(name, "--client-name is required") end
  local validity, verr = time.parse_duration(opts.validity_period)
  if not validity then cli.usage_error(name, "invalid --validity-period: %s", verr) end
  local verrs = {}
  validity = require("kboot.config_validate").validity_period(opts.validity_period, "invalid --validity-period", verrs)
  if not validity then cli.usage_error(name, "%s", verrs[1]) end
  if opts.token == "" then cli.usage_error(name, "--token is empty") end
  if opts.token and #opts.org > 0 then
    cli.usage_error(name, "--org is the O of a client certificate; a --token user has none (its groups come from the token's authenticator)")
  end
  if opts.server then
    local ok, why = check_server(opts.server)
    if not ok then cli.usage_error(name, "invalid --server %q: %s", opts.server, why) end
  end
  if opts.bind_role and opts.bind_clusterrole then cli.usage_error(name, "give --bind-role or --bind-clusterrole, not both") end
  local binding = opts.bind_role or opts.bind_clusterrole
  if binding == "" then cli.usage_error(name, "the role name is empty") end
  if opts.bind_role and not opts.namespace then cli.usage_error(name, "--bind-role needs --namespace (a Role lives in one)") end
  if opts.namespace and not binding then cli.usage_error(name, "--namespace is the binding's: give --bind-role or --bind-clusterrole") end
  if opts.namespace and not net.is_dns_label(opts.namespace) then
    cli.usage_error(name, "invalid --namespace %q: must be a DNS label (lower case letters, digits, '-')", opts.namespace)
  end
  if binding and (binding:find("/", 1, true) or binding:find("%", 1, true) or binding == "." or binding == "..") then
    cli.usage_error(name, "invalid role name %q", binding)
  end
  -- a relative path is relative to the working directory (kboot.fs takes absolute paths only)
  if opts.output then opts.output = cli.path(name, "--output", opts.output, true) end
  opts.kubeconfig = cli.path(name, "--kubeconfig", opts.kubeconfig, true)
  if opts.config then opts.config = cli.path(name, "--config", opts.config, true) end
  if opts.root then
    local ok, err = fs.set_root(opts.root)
    if not ok then cli.usage_error(name, "--root %s: %s", opts.root, tostring(err)) end
  end
  if validity > uk.DEFAULT_VALIDITY then
    log.warn("kubeconfig", "the validity period %s is longer than the default %s: a leaked certificate cannot be revoked",
             opts.validity_period, "8760h0m0s")
  end

  local cluster, cerr = uk.cluster{ config = opts.config, server = opts.server, kubeconfig = opts.kubeconfig,
                                    need_key = opts.token == nil }
  if not cluster then cli.exit(cerr.config and 2 or 1, tostring(cerr)) end
  log.debug("kubeconfig", "cluster %q at %s (%s), CA %s/ca.crt, %s keys", cluster.cluster_name, cluster.server,
            cluster.source, cluster.cert_dir, tostring(cluster.algorithm))
  local u = { name = opts.client_name, orgs = opts.org, token = opts.token, validity = validity }
  local t, uerr = uk.user(cluster, u)
  if not t then cli.fail("%s", tostring(uerr)) end

  if binding then
    local kube = require("kboot.kube")
    local k, kerr = kube.new(opts.kubeconfig)
    if not k then cli.fail("%s", tostring(kerr)) end
    local objs = uk.bindings{ user = u.name, groups = opts.org, namespace = opts.namespace,
                              role = opts.bind_role, cluster_role = opts.bind_clusterrole }
    local done, aerr = uk.apply(k, objs)
    k:close()
    if not done then cli.fail("%s; no kubeconfig was written", tostring(aerr)) end
    for _, d in ipairs(done) do
      local o = d.object
      log.info("kubeconfig", "%s %s (%s %s for %s %s)", uk.describe(o), d.action, o.roleRef.kind, o.roleRef.name,
               o.subjects[1].kind, o.subjects[1].name)
    end
  end

  if opts.output then
    local ok, werr = uk.write(opts.output, t)
    if not ok then cli.fail("cannot write %s: %s", opts.output, tostring(werr)) end
    log.info("kubeconfig", "Wrote the kubeconfig of %q to %s", u.name, fs.path(opts.output))
  else
    -- kubeadm prints the YAML and a newline (fmt.Fprintln)
    io.stdout:write(uk.encode(t), "\n")
  end
end

local sub = table.remove(argv, 1)
if sub == "user" then return user(argv) end
cli.group_help(top, sub)
cli.usage_error("kubeconfig", "unknown command %q", sub)

-- The CoreDNS addon as kubeadm creates it (v1.31+: phases/addons/dns/dns.go, manifests.go): the
-- coredns ServiceAccount, ClusterRole/Binding system:coredns, ConfigMap coredns (Corefile), Deployment
-- coredns and Service kube-dns on the 10th service IP. render is pure; apply sends through ctx.kube.
local tbl = require("kboot.certs_table")
local component = require("kboot.component")
local kerror = require("kboot.error")

local M = { name = "coredns", phase = "addon/coredns" }

M.NS = "kube-system"
M.DEFAULT_REPLICAS = 2
M.CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"

-- What changed between kubeadm releases, by minor (from = first minor that has it).
M.by_version = {
  -- kubeadm v1.32 (kubernetes#128359): the cache plugin no longer caches the cluster's own zone
  cache_disable = { from = 32 },
  -- kubeadm v1.32 names the probe ports (liveness-probe 8080, readiness-probe 8181) in the Pod spec
  probe_port_names = { from = 32 },
}

local function has(ctx, what) return (ctx.version and ctx.version.minor or 99) >= M.by_version[what].from end
local function arr(t) return setmetatable(t, require("kboot.yaml").array_mt) end

function M.image(ctx)
  local d = ctx.cluster.dns or {}
  local repo = (d.imageRepository and d.imageRepository ~= "") and d.imageRepository or ctx.cluster.imageRepository
  local tag = (d.imageTag and d.imageTag ~= "") and d.imageTag or ctx.version.coredns
  -- a custom repository gets the bare name, as kubeadm's GetDNSImage does
  local name = (d.imageRepository and d.imageRepository ~= "") and "coredns" or ctx.version.coredns_image
  return ("%s/%s:%s"):format(repo, name, tag)
end

function M.dns_ip(ctx) return tbl.service_ip(ctx, 10) end

function M.corefile(ctx)
  local domain = ctx.cluster.networking.dnsDomain
  local cache = "cache 30"
  if has(ctx, "cache_disable") and domain ~= "" then
    cache = ("cache 30 {\n       disable success %s\n       disable denial %s\n    }"):format(domain, domain)
  end
  return table.concat({
    ".:53 {",
    "    errors",
    "    health {",
    "       lameduck 5s",
    "    }",
    "    ready",
    ("    kubernetes %s in-addr.arpa ip6.arpa {"):format(domain),
    "       pods insecure",
    "       fallthrough in-addr.arpa ip6.arpa",
    "       ttl 30",
    "    }",
    "    prometheus :9153",
    "    forward . /etc/resolv.conf {",
    "       max_concurrent 1000",
    "    }",
    "    " .. cache,
    "    loop",
    "    reload",
    "    loadbalance",
    "}",
  }, "\n") .. "\n"
end

local function meta(name, ns, labels)
  return { name = name, namespace = ns, labels = labels }
end

local function deployment(ctx, replicas)
  local named = has(ctx, "probe_port_names")
  local ports = arr({
    { containerPort = 53, name = "dns", protocol = "UDP" },
    { containerPort = 53, name = "dns-tcp", protocol = "TCP" },
    { containerPort = 9153, name = "metrics", protocol = "TCP" },
  })
  if named then
    ports[4] = { containerPort = 8080, name = "liveness-probe", protocol = "TCP" }
    ports[5] = { containerPort = 8181, name = "readiness-probe", protocol = "TCP" }
  end
  return {
    apiVersion = "apps/v1", kind = "Deployment",
    metadata = meta("coredns", M.NS, { ["k8s-app"] = "kube-dns" }),
    spec = {
      replicas = replicas,
      strategy = { type = "RollingUpdate", rollingUpdate = { maxUnavailable = 1 } },
      selector = { matchLabels = { ["k8s-app"] = "kube-dns" } },
      template = {
        metadata = { labels = { ["k8s-app"] = "kube-dns" } },
        spec = {
          priorityClassName = "system-cluster-critical",
          serviceAccountName = "coredns",
          affinity = { podAntiAffinity = { preferredDuringSchedulingIgnoredDuringExecution = arr({ {
            weight = 100,
            podAffinityTerm = {
              labelSelector = { matchExpressions = arr({ { key = "k8s-app", operator = "In", values = arr({ "kube-dns" }) } }) },
              topologyKey = "kubernetes.io/hostname",
            } } }) } },
          tolerations = arr({ { key = "CriticalAddonsOnly", operator = "Exists" },
                              { key = M.CONTROL_PLANE_TAINT, effect = "NoSchedule" } }),
          nodeSelector = { ["kubernetes.io/os"] = "linux" },
          containers = arr({ {
            name = "coredns", image = M.image(ctx), imagePullPolicy = "IfNotPresent",
            resources = { limits = { memory = "170Mi" }, requests = { cpu = "100m", memory = "70Mi" } },
            args = arr({ "-conf", "/etc/coredns/Corefile" }),
            volumeMounts = arr({ { name = "config-volume", mountPath = "/etc/coredns", readOnly = true } }),
            ports = ports,
            livenessProbe = { httpGet = { path = "/health", port = named and "liveness-probe" or 8080, scheme = "HTTP" },
                              initialDelaySeconds = 60, timeoutSeconds = 5, successThreshold = 1, failureThreshold = 5 },
            readinessProbe = { httpGet = { path = "/ready", port = named and "readiness-probe" or 8181, scheme = "HTTP" } },
            securityContext = { allowPrivilegeEscalation = false,
                                capabilities = { add = arr({ "NET_BIND_SERVICE" }), drop = arr({ "ALL" }) },
                                readOnlyRootFilesystem = true },
          } }),
          dnsPolicy = "Default",
          volumes = arr({ { name = "config-volume",
                            configMap = { name = "coredns", items = arr({ { key = "Corefile", path = "Corefile" } }) } } }),
        },
      },
    },
  }
end

-- render(ctx [, { replicas = n }]) -> { objects = { ... } } in kubeadm's creation order. The
-- replica count: o.replicas, else what the cluster's Deployment has (before() read it), else 2.
function M.render(ctx, o)
  o = o or {}
  local rbac = "rbac.authorization.k8s.io/v1"
  return { objects = {
    { apiVersion = "v1", kind = "ConfigMap", metadata = meta("coredns", M.NS), data = { Corefile = M.corefile(ctx) } },
    { apiVersion = rbac, kind = "ClusterRole", metadata = { name = "system:coredns" },
      rules = arr({
        { apiGroups = arr({ "" }), resources = arr({ "endpoints", "services", "pods", "namespaces" }), verbs = arr({ "list", "watch" }) },
        { apiGroups = arr({ "discovery.k8s.io" }), resources = arr({ "endpointslices" }), verbs = arr({ "list", "watch" }) },
      }) },
    { apiVersion = rbac, kind = "ClusterRoleBinding", metadata = { name = "system:coredns" },
      roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = "system:coredns" },
      subjects = arr({ { kind = "ServiceAccount", name = "coredns", namespace = M.NS } }) },
    { apiVersion = "v1", kind = "ServiceAccount", metadata = meta("coredns", M.NS) },
    deployment(ctx, o.replicas or ctx.cache.coredns_replicas or M.DEFAULT_REPLICAS),
    { apiVersion = "v1", kind = "Service",
      metadata = { name = "kube-dns", namespace = M.NS,
                   labels = { ["k8s-app"] = "kube-dns", ["kubernetes.io/cluster-service"] = "true", ["kubernetes.io/name"] = "CoreDNS" },
                   annotations = { ["prometheus.io/port"] = "9153", ["prometheus.io/scrape"] = "true" } },
      spec = { clusterIP = M.dns_ip(ctx),
               ports = arr({ { name = "dns", port = 53, protocol = "UDP", targetPort = 53 },
                             { name = "dns-tcp", port = 53, protocol = "TCP", targetPort = 53 },
                             { name = "metrics", port = 9153, protocol = "TCP", targetPort = 9153 } }),
               selector = { ["k8s-app"] = "kube-dns" } } },
  } }
end

-- before(ctx) -> true | nil, err: the replica count of the cluster's coredns Deployment (an admin
-- may have scaled it: kubeadm keeps it), into ctx.cache for render.
function M.before(ctx)
  if ctx.dry_run then return true end
  local d, err = ctx.kube:get("apps/v1", "Deployment", M.NS, "coredns")
  if d then
    ctx.cache.coredns_replicas = d.spec and d.spec.replicas
  elseif not require("kboot.kube").not_found(err) then
    return nil, kerror.new("addon/coredns", "cannot read Deployment kube-system/coredns: " .. tostring(err))
  end
  return true
end

-- apply(ctx, a) -> true | nil, kboot.error. The coredns ConfigMap is created once and then left
-- alone (kubeadm's CreateOrRetainConfigMap: admins edit the Corefile); everything else is
-- server-side applied by the generic apply.
function M.apply(ctx, a)
  local rest = {}
  for _, obj in ipairs(a.objects) do
    if obj.kind == "ConfigMap" and not ctx.dry_run then
      local r, e = ctx.kube:create(obj)
      if not r and not require("kboot.kube").conflict(e) then
        return nil, kerror.new("apply", ("cannot create %s: %s"):format(component.describe(obj), tostring(e)))
      end
    else
      rest[#rest + 1] = obj
    end
  end
  return component.apply(ctx, { objects = rest })
end

function M.after(ctx)
  ctx.log.info("addons", "Applied essential addon: CoreDNS")
  return true
end

-- uninstall(ctx) -> true | nil, err: the addon's objects deleted from the cluster (never part of a
-- node's reset: other nodes use them).
function M.uninstall(ctx) return ctx.kube:delete_all(M.render(ctx).objects) end

return M

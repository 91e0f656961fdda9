-- The CoreDNS addon as kubeadm creates it (v1.31+: phases/addons/dns/dns.go, manifests.go): the
-- coredns ServiceAccount, ClusterRole/Binding system:coredns, ConfigMap coredns (Corefile), Deployment
-- coredns and Service kube-dns on the 10th service IP. render is pure; apply sends through ctx.kube.
local tbl = require("kboot.certs_table")

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

-- render(ctx [, { replicas = n }]) -> { objects = { ... } } in kubeadm's creation order.
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
    deployment(ctx, o.replicas or ctx.dns_replicas or M.DEFAULT_REPLICAS),
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

local function log(ctx) return ctx.log or require("kboot.log") end
local function emsg(e) return tostring(type(e) == "table" and (e.msg or e) or e) end
local function describe(obj)
  local m = obj.metadata
  return ("%s %s%s"):format(obj.kind, m.namespace and (m.namespace .. "/") or "", m.name)
end

-- apply(ctx, a) -> true | nil, err. The coredns ConfigMap is created once and then left alone
-- (kubeadm's CreateOrRetainConfigMap: admins edit the Corefile); the Deployment keeps the replica
-- count the cluster has (an admin may have scaled it); everything else is server-side applied.
function M.apply(ctx, a)
  local k = ctx.kube
  local uc = require("kboot.online.upload_config")
  local ok, err = uc.ensure_cluster_admins(ctx)
  if not ok then return nil, err end
  local existing
  if not ctx.dry_run then
    existing = k:get("apps/v1", "Deployment", M.NS, "coredns")
  end
  for _, obj in ipairs(a.objects) do
    local r, e
    if obj.kind == "ConfigMap" and not ctx.dry_run then
      r, e = k:create(obj)
      if not r and (type(e) == "table" and e.status == 409) then r, e = true, nil end
    else
      if obj.kind == "Deployment" and existing and existing.spec and existing.spec.replicas then
        obj.spec.replicas = existing.spec.replicas
      end
      r, e = uc.ensure(ctx, obj)
    end
    if not r then return nil, ("cannot apply %s: %s"):format(describe(obj), emsg(e)) end
  end
  log(ctx).info("addons", "Applied essential addon: CoreDNS")
  return true
end

function M.save(ctx, a) return true end

-- What reset removes: the objects, not the cluster-wide RBAC others may rely on being recreated.
function M.clean(ctx) return ctx.kube:delete_all(M.render(ctx).objects) end

return M

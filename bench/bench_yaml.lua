-- kboot.yaml throughput on kubeadm-sized documents and a large manifest, with lua-cjson on the same
-- data as a yardstick. Run: kboot bench/bench_yaml.lua [seconds per case, default 0.5]
local yaml = require("kboot.yaml")
local cjson = require("cjson")
local budget = tonumber((...)) or 0.5

local function pod(i)
  return {
    apiVersion = "v1", kind = "Pod",
    metadata = { name = "kube-apiserver-" .. i, namespace = "kube-system",
                 labels = { component = "kube-apiserver", tier = "control-plane" },
                 annotations = { ["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"] = "10.0.0.1:6443" } },
    spec = {
      containers = { {
        name = "kube-apiserver", image = "registry.k8s.io/kube-apiserver:v1.31.0",
        command = { "kube-apiserver", "--advertise-address=10.0.0.1", "--allow-privileged=true",
                    "--authorization-mode=Node,RBAC", "--client-ca-file=/etc/kubernetes/pki/ca.crt",
                    "--enable-admission-plugins=NodeRestriction", "--etcd-servers=https://127.0.0.1:2379",
                    "--secure-port=6443", "--service-cluster-ip-range=10.96.0.0/12" },
        livenessProbe = { failureThreshold = 8, httpGet = { host = "10.0.0.1", path = "/livez", port = 6443, scheme = "HTTPS" },
                          initialDelaySeconds = 10, periodSeconds = 10, timeoutSeconds = 15 },
        resources = { requests = { cpu = "250m" } },
        volumeMounts = { { mountPath = "/etc/ssl/certs", name = "ca-certs", readOnly = true },
                         { mountPath = "/etc/kubernetes/pki", name = "k8s-certs", readOnly = true } },
      } },
      hostNetwork = true, priority = 2000001000, priorityClassName = "system-node-critical",
      volumes = { { hostPath = { path = "/etc/ssl/certs", type = "DirectoryOrCreate" }, name = "ca-certs" },
                  { hostPath = { path = "/etc/kubernetes/pki", type = "DirectoryOrCreate" }, name = "k8s-certs" } },
    },
  }
end

local function rate(fn)
  local n, t0 = 0, os.clock()
  repeat
    for _ = 1, 10 do fn() end
    n = n + 10
  until os.clock() - t0 >= budget
  return n / (os.clock() - t0)
end

local function case(name, value)
  local text, json = yaml.encode(value), cjson.encode(value)
  local enc, dec = rate(function() yaml.encode(value) end), rate(function() yaml.decode(text) end)
  local jenc, jdec = rate(function() cjson.encode(value) end), rate(function() cjson.decode(json) end)
  print(("%-28s %8d B  encode %9.0f/s %7.1f MB/s (cjson %.1fx faster)  decode %9.0f/s %7.1f MB/s (cjson %.1fx faster)")
        :format(name, #text, enc, enc * #text / 1e6, jenc / enc, dec, dec * #text / 1e6, jdec / dec))
end

case("static pod manifest", pod(1))
local many = {}
for i = 1, 200 do many[i] = pod(i) end
case("200 pods (one list)", many)
local cm = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "big" }, data = {} }
for i = 1, 2000 do cm.data["key-" .. i] = ("line %d of a script\n"):rep(3):format(i, i, i) end
case("ConfigMap, 2000 multi-line", cm)

-- kboot.versions: per-minor image tags (kubeadm's published values) and version-dependent flags.
local lu = require("luaunit")
local versions = require("kboot.versions")

TestVersions = {}

local function names(list)
  local out = {}
  for _, f in ipairs(list) do out[#out + 1] = f.name .. "=" .. tostring(f.value) end
  return table.concat(out, " ")
end

function TestVersions:test_known_tags()
  -- values from kubeadm's constants.go of each release (not from this table)
  local want = {
    ["v1.20.2"] = { "3.4.13-0", "1.7.0", "3.2", "coredns" },
    ["v1.24.0"] = { "3.5.3-0", "v1.8.6", "3.7", "coredns/coredns" },
    ["v1.31.2"] = { "3.5.15-0", "v1.11.3", "3.10", "coredns/coredns" },
    ["v1.34.0"] = { "3.6.4-0", "v1.12.1", "3.10.1", "coredns/coredns" },
  }
  for v, w in pairs(want) do
    local e = assert(versions.get(v))
    lu.assertEquals({ e.etcd, e.coredns, e.pause, e.coredns_image }, w, v)
    lu.assertEquals(e.version, v)
  end
  lu.assertEquals(versions.get("v1.31.2").minor, 31)
  lu.assertEquals(versions.get("1.31.0").version, "v1.31.0")
  lu.assertEquals(versions.get("v1.31.0-rc.1").minor, 31)
end

function TestVersions:test_every_minor_present()
  for m = versions.min_minor, versions.max_minor do
    local e = versions.get(("v1.%d.0"):format(m))
    lu.assertNotNil(e, m)
    lu.assertStrMatches(e.etcd, "3%.%d+%.%d+%-0")
    lu.assertStrMatches(e.pause, "3%.%d+[%.%d]*")
  end
  lu.assertNotNil(versions.get(versions.default_version))
end

function TestVersions:test_bad_versions()
  for _, v in ipairs({ "", "1.31", "v1", "vx.y.z", "v1.31.0 ", "v1.31.0_x", "latest" }) do
    local e, err = versions.get(v)
    lu.assertNil(e, v)
    lu.assertStrContains(err, "invalid Kubernetes version")
  end
  local e, err = versions.get("v1.19.16")
  lu.assertNil(e)
  lu.assertStrContains(err, "kboot knows v1.20 to v1.34")
  lu.assertNil(versions.get("v1.99.0"))
  e, err = versions.get("v2.0.0")
  lu.assertStrContains(err, "only v1.x")
  e, err = versions.get(131)
  lu.assertStrContains(err, "must be a string")
end

function TestVersions:test_flag_changes()
  local old, v31, v34 = versions.get("v1.22.0"), versions.get("v1.31.0"), versions.get("v1.34.0")
  lu.assertEquals(names(old.flags.apiserver), "insecure-port=0")
  lu.assertEquals(names(old.flags.scheduler), "port=0")
  lu.assertEquals(names(v31.flags.apiserver), "")
  lu.assertEquals(names(v31.flags.etcd),
    "experimental-initial-corrupt-check=true experimental-watch-progress-notify-interval=5s")
  lu.assertEquals(names(v34.flags.etcd), "feature-gates=InitialCorruptCheck=true watch-progress-notify-interval=5s")
  lu.assertEquals(names(v31.flags.kubelet), "pod-infra-container-image=true")
  lu.assertEquals(names(old.flags.kubelet), "network-plugin=cni container-runtime=remote pod-infra-container-image=true")
end

function TestVersions:test_resolve_and_images()
  lu.assertEquals(versions.resolve(nil), versions.default_version)
  lu.assertEquals(versions.resolve("stable-1"), versions.default_version)
  lu.assertEquals(versions.resolve("1.30.1"), "v1.30.1")
  -- kubeadm `config images list --kubernetes-version v1.34.0` output
  lu.assertEquals(versions.images("v1.34.0"), {
    "registry.k8s.io/kube-apiserver:v1.34.0", "registry.k8s.io/kube-controller-manager:v1.34.0",
    "registry.k8s.io/kube-scheduler:v1.34.0", "registry.k8s.io/kube-proxy:v1.34.0",
    "registry.k8s.io/coredns/coredns:v1.12.1", "registry.k8s.io/pause:3.10.1", "registry.k8s.io/etcd:3.6.4-0" })
  local l = versions.images("v1.31.1", "reg.local:5000/k8s", { external_etcd = true })
  lu.assertEquals(#l, 6)
  lu.assertEquals(l[5], "reg.local:5000/k8s/coredns/coredns:v1.11.3")
  lu.assertNil(versions.images("v1.2.3"))
end

os.exit(lu.LuaUnit.run("-v"))

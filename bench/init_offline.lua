-- Stand-in driver for bench_init.sh while `kboot init` is not in the build: runs the offline
-- phases (certs, kubeconfig, etcd/local, control-plane, kubelet files) on the test fixture ctx.
-- Usage: kboot bench/init_offline.lua ROOT ALGORITHM
local root, alg = ...
local src = os.getenv("KBOOT_SRC") or "."
package.path = src .. "/tests/lib/?.lua;" .. package.path
local fixture = require("ctx_fixture")
local ctx = fixture.new({ root = root, cluster = { encryptionAlgorithm = alg or "RSA-2048" } })
ctx.log.set_level(1)
require("kboot.certs").run_all(ctx)
require("kboot.kubeconfigs").run_all(ctx)
for _, c in ipairs({ "etcd", "kube_apiserver", "kube_controller_manager", "kube_scheduler", "kubelet" }) do
  require("kboot.components." .. c).run(ctx)
end

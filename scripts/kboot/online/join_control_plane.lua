-- The control-plane phases of `kboot join --control-plane` (kubeadm's control-plane-prepare/*,
-- etcd-join, control-plane-join/mark-control-plane and wait-control-plane), over init's own
-- certificate table, kubeconfigs and components:
--   download-certs  kube-system/kubeadm-certs opened with the certificate key, every file decrypted
--                   before the first is written, written with kubeadm's modes
--   certs           this node's leaf certificates, signed by the CAs download-certs wrote
--   kubeconfig      admin.conf, controller-manager.conf, scheduler.conf
--   control-plane   the kube-apiserver, kube-controller-manager and kube-scheduler manifests
--   etcd-join       this node added to etcd as a learner, its etcd manifest, then the promotion
-- The API calls after download-certs are made with this node's admin.conf credentials, sent to the
-- endpoint the node joined through (its own API server is not up yet).
local kerror = require("kboot.error")
local tokens = require("kboot.tokens")

local M = {}

local function fail(op, fmt, ...) return kerror.new(op, fmt:format(...)) end

---------------------------------------------------------------------------------------------------
-- download-certs

local DL = "download-certs"

-- The kubeadm-certs key (ca.crt, etcd-ca.key, ...) -> path map of this cluster's configuration.
local function upload_paths(ctx)
  local out = {}
  for _, c in ipairs(tokens.certs_to_upload(ctx.cluster)) do out[c.name] = c.path end
  return out
end

-- kubeadm's copycerts since v1.22 (kubernetes#103313): private keys 0600, certificates and sa.pub
-- 0644 (init's certs phase writes sa.pub 0600: kubeadm differs there too)
local function mode_of(name) return name:match("%.key$") and "0600" or "0644" end

function M.has_certificate_key(ctx)
  local key = ctx.join.controlPlane and ctx.join.controlPlane.certificateKey
  return key ~= nil and key ~= "", "no --certificate-key: the CAs and sa.key/sa.pub must already be on this node"
end

-- download_certs(ctx) -> true | nil, kboot.error
function M.download_certs(ctx)
  local b = ctx.cache.bootstrap
  local key = ctx.join.controlPlane.certificateKey
  ctx.log.info(DL, 'Downloading the certificates in Secret "%s" in the "%s" Namespace', tokens.CERTS_SECRET, tokens.NAMESPACE)
  local secret, err = b.read:get("v1", "Secret", tokens.NAMESPACE, tokens.CERTS_SECRET)
  if not secret then
    if require("kboot.kube").not_found(err) then
      return nil, fail(DL, "Secret %s/%s does not exist (it lives 2 h after an upload): run 'kboot init phase upload-certs "
        .. "--upload-certs' on a control-plane node and join with the certificate key it prints",
        tokens.NAMESPACE, tokens.CERTS_SECRET)
    end
    return nil, fail(DL, "cannot read Secret %s/%s: %s", tokens.NAMESPACE, tokens.CERTS_SECRET, tostring(err))
  end
  local files, oerr = tokens.open_certs_secret(secret, key)
  if not files and tostring(oerr):find("cannot decrypt", 1, true) then
    return nil, fail(DL, "%s: the --certificate-key is not the one the certificates were uploaded with "
      .. "(the one 'kboot init phase upload-certs --upload-certs' printed)", tostring(oerr))
  elseif not files then
    return nil, fail(DL, "Secret %s/%s: %s; upload it again with 'kboot init phase upload-certs --upload-certs'",
      tokens.NAMESPACE, tokens.CERTS_SECRET, (tostring(oerr):gsub("^kubeadm%-certs: ", "")))
  end
  -- every file this cluster's configuration shares must be there, if only as kubeadm's empty entry
  -- for one the uploader did not have (kubeadm's DownloadCerts refuses the Secret likewise)
  local paths = upload_paths(ctx)
  local names = {}
  for name in pairs(paths) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    if files[name] == nil then
      return nil, fail(DL, "Secret %s/%s does not include %s (for %s): upload it again with 'kboot init phase "
        .. "upload-certs --upload-certs' on a control-plane node", tokens.NAMESPACE, tokens.CERTS_SECRET, name,
        ctx.fs.path(paths[name]))
    end
  end
  -- the CA in the Secret must be one discovery proved (cluster-info may carry several during a rotation)
  local first = (files["ca.crt"] or ""):match("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-.-%-%-%-%-%-END CERTIFICATE%-%-%-%-%-")
  if not first then return nil, fail(DL, "kubeadm-certs holds no ca.crt") end
  if not b.ca_pem:find(first, 1, true) then
    return nil, fail(DL, "the ca.crt in kubeadm-certs is not the cluster CA that discovery verified (%s): "
      .. "the Secret was uploaded from another cluster's files", b.pin or "the discovery file's CA")
  end
  local plan = {}
  for name, data in pairs(files) do
    local path = paths[name]
    if not path then
      ctx.log.warn(DL, "kubeadm-certs holds %s, which this cluster's configuration does not use; not written", name)
    elseif data ~= "" then
      local have = ctx.fs.read(path)
      if have and have ~= data then
        return nil, fail(DL, "%s exists with other content than the cluster's %s (left from another cluster?): "
          .. "remove it, or run 'kboot reset', and join again", ctx.fs.path(path), name)
      end
      plan[#plan + 1] = { name = name, path = path, data = data, have = have ~= nil }
    end
  end
  table.sort(plan, function(x, y) return x.path < y.path end)
  local written = 0
  for _, f in ipairs(plan) do
    if f.have then
      ctx.log.debug(DL, "%s is already the cluster's", ctx.fs.path(f.path))
    else
      local ok, werr = ctx.fs.write(f.path, f.data, mode_of(f.name), { mkdir = true, dir_mode = 493 })
      if not ok then return nil, fail(DL, "cannot write %s: %s", ctx.fs.path(f.path), tostring(werr)) end
      written = written + 1
    end
  end
  ctx.log.info(DL, "The cluster's %d certificates and keys are in %s (%d written, %d already there)", #plan,
    ctx.fs.path(ctx.cluster.certificatesDir), written, #plan - written)
  return true
end

---------------------------------------------------------------------------------------------------
-- certs and kubeconfig: init's phases, run for this node's files only

M.KUBECONFIGS = { "admin", "controller-manager", "scheduler" }

-- The keys of the certs and kubeconfig phases come in one batch (kboot.certs.pregenerate), which
-- asks ctx.phase_enabled about init's phase names: answer for the join phases that run them.
local function with_init_names(ctx, fn)
  local orig = ctx.phase_enabled
  local kc = {}
  for _, n in ipairs(M.KUBECONFIGS) do kc["kubeconfig/" .. n] = true end
  ctx.phase_enabled = function(name)
    local on = orig or function() return true end
    if name:match("^certs/") then return on("control-plane-prepare/certs") end
    if name:match("^kubeconfig/") then return kc[name] and on("control-plane-prepare/kubeconfig") end
    return on(name)
  end
  local ok, r, e = pcall(fn)
  ctx.phase_enabled = orig
  if not ok then
    if kerror.is(r) then return nil, r end
    error(r, 0)
  end
  return r, e
end

-- certs(ctx) -> true | nil, kboot.error: every CA and sa.key/sa.pub must be here (downloaded or
-- copied); the leaves this node lacks are made (the API server's names this node's address).
function M.certs(ctx)
  local certs, tbl = require("kboot.certs"), require("kboot.certs_table")
  local dir = ctx.cluster.certificatesDir
  local missing = {}
  for _, e in ipairs(tbl.list(ctx)) do
    if e.is_ca then
      local crt = tbl.paths(e, ctx)
      if not ctx.fs.exists(crt) then missing[#missing + 1] = ctx.fs.path(crt) end
    end
  end
  for _, f in ipairs({ "sa.key", "sa.pub" }) do
    if not ctx.fs.exists(dir .. "/" .. f) then missing[#missing + 1] = ctx.fs.path(dir .. "/" .. f) end
  end
  if #missing > 0 then
    return nil, fail("certs", "the cluster's %s %s missing: join with --certificate-key (the certificates of "
      .. "'kboot init phase upload-certs --upload-certs'), or copy them from a control-plane node",
      table.concat(missing, ", "), #missing == 1 and "is" or "are")
  end
  return with_init_names(ctx, function()
    for _, e in ipairs(tbl.list(ctx)) do certs.ensure(ctx, e.name) end
    certs.ensure_sa(ctx)
    return true
  end)
end

function M.kubeconfigs(ctx)
  local kcs = require("kboot.kubeconfigs")
  return with_init_names(ctx, function()
    for _, n in ipairs(M.KUBECONFIGS) do kcs.ensure(ctx, n) end
    return true
  end)
end

M.CONTROL_PLANE = { "kboot.components.kube_apiserver", "kboot.components.kube_controller_manager",
                    "kboot.components.kube_scheduler" }

function M.control_plane(ctx)
  local component = require("kboot.component")
  for _, name in ipairs(M.CONTROL_PLANE) do
    local ok, err = component.run(ctx, require(name))
    if not ok then return nil, err end
  end
  return true
end

---------------------------------------------------------------------------------------------------
-- The admin client

-- admin(ctx) -> kube, read: kboot.kube clients with this node's admin.conf credentials, sent to
-- the endpoint this node joined through; in a dry run kube records writes and sends none, read reads.
function M.admin(ctx)
  if ctx.cache.admin_kube then return ctx.cache.admin_kube, ctx.cache.admin_read end
  local kc = require("kboot.kubeconfig")
  local path = (ctx.kubeconfig_dir or "/etc/kubernetes") .. "/admin.conf"
  local text, err = ctx.fs.read(path)
  if not text then
    return nil, fail("join", "cannot read %s (run phase control-plane-prepare/kubeconfig first): %s", ctx.fs.path(path), tostring(err))
  end
  local t, perr = kc.parse(text, ctx.fs.path(path))
  local cur = t and kc.current(t)
  if not cur or not cur.cert_pem then return nil, fail("join", "%s: %s", ctx.fs.path(path), tostring(perr or "no client certificate")) end
  local b = ctx.cache.bootstrap
  local c, cerr = require("kboot.http").client{ server = b.server, ca_pem = cur.ca_pem, cert_pem = cur.cert_pem,
    key_pem = cur.key_pem, retry_deadline = ctx.timeouts.kubernetesAPICall, retries = 30 }
  if not c then return nil, fail("join", "cannot make a client for %s: %s", b.server, tostring(cerr)) end
  local kube = require("kboot.kube")
  ctx.cache.admin_read = assert(kube.new(c))
  ctx.cache.admin_kube = ctx.dry_run and assert(kube.new(c, { dry_run = true })) or ctx.cache.admin_read
  return ctx.cache.admin_kube, ctx.cache.admin_read
end

-- with_admin(ctx, fn): fn(ctx) with ctx.kube the admin client (init's online phases use ctx.kube)
function M.with_admin(ctx, fn)
  local k, err = M.admin(ctx)
  if not k then return nil, err end
  local saved = ctx.kube
  ctx.kube = k
  local ok, r, e = pcall(fn, ctx)
  ctx.kube = saved
  if not ok then error(r, 0) end
  return r, e
end

---------------------------------------------------------------------------------------------------
-- etcd-join

local EJ = "etcd-join"
M.ETCD_URLS_ANNOTATION = "kubeadm.kubernetes.io/etcd.advertise-client-urls"

-- etcd_endpoints(ctx, k, own) -> { url, ... } | nil, kboot.error: the client URLs the etcd Pods
-- of kube-system carry (kubeadm's getRawEtcdEndpointsFromPodAnnotation); this node's own last.
function M.etcd_endpoints(ctx, k, own)
  local pods, err = k:list("v1", "Pod", "kube-system", { label_selector = "component=etcd,tier=control-plane" })
  if not pods then return nil, fail(EJ, "cannot list the etcd Pods in kube-system: %s", tostring(err)) end
  local urls, seen, mine = {}, {}, false
  for _, p in ipairs(pods) do
    local v = ((p.metadata or {}).annotations or {})[M.ETCD_URLS_ANNOTATION]
    for u in tostring(v or ""):gmatch("[^,%s]+") do
      if u == own then mine = true
      elseif not seen[u] then seen[u] = true; urls[#urls + 1] = u end
    end
  end
  if mine then urls[#urls + 1] = own end
  if #urls == 0 then
    return nil, fail(EJ, "cannot find the cluster's etcd: no Pod in kube-system with label component=etcd carries "
      .. "annotation %s (is the kubelet of the first control-plane node running?)", M.ETCD_URLS_ANNOTATION)
  end
  return urls
end

local function read_pki(ctx, rel)
  local path = ctx.cluster.certificatesDir .. "/" .. rel
  local data, err = ctx.fs.read(path)
  if not data then return nil, fail(EJ, "cannot read %s (run phase control-plane-prepare/certs first): %s", ctx.fs.path(path), tostring(err)) end
  return data
end

-- etcd_client(ctx) -> kboot.etcd_members client (this node's apiserver-etcd-client certificate, as
-- kubeadm's etcdutil.NewFromCluster), urls | nil, kboot.error
local function etcd_client(ctx, k)
  local etcd = require("kboot.components.etcd")
  local urls, err = M.etcd_endpoints(ctx, k, etcd.client_url(ctx))
  if not urls then return nil, err end
  local ca, crt, key
  ca, err = read_pki(ctx, "etcd/ca.crt")
  if ca then crt, err = read_pki(ctx, "apiserver-etcd-client.crt") end
  if crt then key, err = read_pki(ctx, "apiserver-etcd-client.key") end
  if not key then return nil, err end
  local c, cerr = require("kboot.etcd_members").client{ urls = urls, ca_pem = ca, cert_pem = crt, key_pem = key }
  if not c then return nil, fail(EJ, "%s", tostring(cerr)) end
  return c, urls
end

local function promote_timeout(ctx)
  return math.max(ctx.timeouts.etcdAPICall, ctx.timeouts.controlPlaneComponentHealthCheck)
end

local function write_manifest(ctx)
  local ok, err = require("kboot.component").run(ctx, require("kboot.components.etcd"))
  if not ok then return nil, err end
  -- the kubelet must see it now, not at the run's end (kboot.fs batch)
  if ctx.fs.flush then
    local fok, ferr = ctx.fs.flush()
    if not fok then return nil, fail(EJ, "cannot write the etcd manifest: %s", tostring(ferr)) end
  end
  return true
end

local function etcd_join(ctx, k)
  local em, etcd = require("kboot.etcd_members"), require("kboot.components.etcd")
  local c, urls = etcd_client(ctx, k)
  if not c then return nil, urls end
  local name, peer = ctx.node.name, etcd.peer_url(ctx)
  local t = ctx.timeouts.etcdAPICall
  ctx.log.info(EJ, "Joining etcd (%s) as %s with peer URL %s", table.concat(urls, ", "), name, peer)
  if ctx.dry_run then
    local members, err = em.list(c)
    c:close()
    if not members then return nil, err end
    if not em.find(members, peer) then members[#members + 1] = { id = "0", name = name, peer_urls = { peer } } end
    ctx.cache.etcd_initial_cluster = assert(em.initial_cluster(members, name, peer))
    ctx.log.info(EJ, "dry run: would add learner %s, write the etcd manifest below, wait for it and promote it", name)
    return write_manifest(ctx)
  end
  local me, members, existed = em.add_learner(c, name, peer, t)
  if not me then c:close() return nil, members end
  local hex = em.hex_id(me.id)
  if existed then
    ctx.log.info(EJ, "This node is already etcd member %s (%s)", hex, me.learner and "a learner" or "a voting member")
  else
    ctx.log.info(EJ, "Added learner %s; the cluster has %d members", hex, #members)
  end
  local manifest = "/etc/kubernetes/manifests/etcd.yaml"
  if existed and me.name ~= "" and ctx.fs.exists(manifest) then
    -- a member that has started: its manifest stays as it is (rewriting it restarts etcd)
    ctx.log.info(EJ, "etcd member %s has started; keeping %s", hex, ctx.fs.path(manifest))
  else
    local ic, ierr = em.initial_cluster(members, name, peer)
    if not ic then c:close() return nil, fail(EJ, "%s", tostring(ierr)) end
    ctx.cache.etcd_initial_cluster = ic
    local ok, err = write_manifest(ctx)
    if not ok then c:close() return nil, err end
  end
  if me.learner then
    local pt = promote_timeout(ctx)
    ctx.log.info(EJ, "Waiting for etcd member %s to start and catch up with the leader, then promoting it (up to %s)",
      hex, require("kboot.time").format_duration(pt))
    local ok, perr = em.promote(c, me.id, pt)
    if not ok then
      c:close()
      return nil, fail(EJ, "%s; check the etcd container on this node ('crictl ps -a --name etcd', 'crictl logs') "
        .. "and that %s is reachable from the other members", tostring(perr), peer)
    end
    ctx.log.info(EJ, "etcd member %s (%s) is a voting member", name, hex)
  end
  c:close()
  return true
end

function M.etcd_join(ctx)
  local _, read = M.admin(ctx)
  if not read then return M.admin(ctx) end
  return etcd_join(ctx, read)
end

function M.mark_control_plane(ctx)
  return M.with_admin(ctx, function() return require("kboot.online.mark_control_plane").run(ctx) end)
end

-- wait-control-plane: the kubelet, then this node's own API server (admin.conf's credentials)
function M.wait_control_plane(ctx)
  ctx.api_check_server = require("kboot.kubeconfigs").local_endpoint(ctx)
  return require("kboot.online.wait_control_plane").run(ctx)
end

return M

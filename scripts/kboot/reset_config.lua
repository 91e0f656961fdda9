-- kubeadm's ResetConfiguration (kubeadm.k8s.io/v1beta4) for `kboot reset`: read from the admin's
-- file and the command line (flags over the file, as kubeadm), checked field by field. The same
-- file may hold a ClusterConfiguration (v1beta3 or v1beta4): its certificatesDir and etcd section
-- then say where this node's certificates and etcd data are, and whether etcd is external;
-- without one, kboot.flows.reset reads that from the node's own files. Every problem is one line
-- naming the field (and the flag that set it).
local config = require("kboot.config")
local schema = require("kboot.config_schema")
local checks = require("kboot.config_validate")

local M = {}

M.UNMOUNT_FLAGS = { MNT_FORCE = "force", MNT_DETACH = "detach", MNT_EXPIRE = "expire", UMOUNT_NOFOLLOW = true }

M.FLAG_PATHS = {
  cert_dir = "ResetConfiguration.certificatesDir",
  cri_socket = "ResetConfiguration.criSocket",
  force = "ResetConfiguration.force",
  ignore_preflight_errors = "ResetConfiguration.ignorePreflightErrors",
  skip_phases = "ResetConfiguration.skipPhases",
  cleanup_tmp_dir = "ResetConfiguration.cleanupTmpDir",
  dry_run = "ResetConfiguration.dryRun",
}

local function doc_kind(i, d, errs)
  if type(d) ~= "table" or config.is_array(d) then
    errs[#errs + 1] = ("document %d: must be a mapping with apiVersion and kind"):format(i)
    return nil
  end
  if type(d.kind) ~= "string" or d.kind == "" then errs[#errs + 1] = ("document %d.kind: missing"):format(i); return nil end
  if type(d.apiVersion) ~= "string" or d.apiVersion == "" then errs[#errs + 1] = d.kind .. ".apiVersion: missing"; return nil end
  local group, ver = d.apiVersion:match("^(.-)/(.+)$")
  return d.kind, group, ver
end

-- The ResetConfiguration and the ClusterConfiguration among the documents, schema-checked; other
-- kubeadm kinds are warned about and ignored (kubeadm does the same), anything else is an error.
local function pick(docs, errs, warnings)
  local found = {}
  for i, d in ipairs(docs) do
    if d == nil or d == require("kboot.yaml").null then goto continue end
    local kind, group, ver = doc_kind(i, d, errs)
    if not kind then goto continue end
    if kind == "ResetConfiguration" or kind == "ClusterConfiguration" then
      local versions = kind == "ResetConfiguration" and { v1beta4 = true } or { v1beta3 = true, v1beta4 = true }
      if group ~= config.GROUP or not versions[ver] then
        errs[#errs + 1] = ("%s.apiVersion: %q is not supported (use kubeadm.k8s.io/%s)"):format(kind, d.apiVersion,
          kind == "ResetConfiguration" and "v1beta4" or "v1beta3 or v1beta4")
      elseif found[kind] then
        errs[#errs + 1] = ("%s: more than one %s document"):format(kind, kind)
      else
        config.check_schema(d, schema[ver][kind], kind, errs)
        found[kind] = config.strip_nulls(config.copy(d))
      end
    elseif group == config.GROUP or schema.component_kinds[kind] then
      warnings[#warnings + 1] = ("ignoring %s document (%s): kboot reset reads ResetConfiguration and ClusterConfiguration"):format(kind, d.apiVersion)
    else
      errs[#errs + 1] = ("%s.apiVersion: unknown API group in %q"):format(kind, d.apiVersion)
    end
    ::continue::
  end
  return found.ResetConfiguration, found.ClusterConfiguration
end

local function apply_flags(d, flags)
  local function v(k) return config.given(flags, k) and flags[k] or nil end
  if v("cert_dir") then d.certificatesDir = v("cert_dir") end
  if v("cri_socket") then d.criSocket = v("cri_socket") end
  if v("force") then d.force = true end
  if v("cleanup_tmp_dir") then d.cleanupTmpDir = true end
  if v("dry_run") then d.dryRun = true end
  if v("skip_phases") then d.skipPhases = config.copy(v("skip_phases")) end
  if v("ignore_preflight_errors") then
    local list = d.ignorePreflightErrors or {}
    for _, e in ipairs(v("ignore_preflight_errors")) do list[#list + 1] = e end
    d.ignorePreflightErrors = list
  end
end

-- kubeadm's defaults, except certificatesDir and criSocket: nil means "not given", and the flow
-- then reads them from the node (what the node was set up with, not what kubeadm would default).
function M.default(d)
  d.apiVersion, d.kind = config.GROUP .. "/v1beta4", "ResetConfiguration"
  for _, k in ipairs({ "cleanupTmpDir", "dryRun", "force" }) do if d[k] == nil then d[k] = false end end
  d.ignorePreflightErrors = d.ignorePreflightErrors or {}
  d.skipPhases = d.skipPhases or {}
  d.unmountFlags = d.unmountFlags or {}
  d.timeouts = config.default_timeouts(d.timeouts)
  return d
end

local function flag_of(path)
  for k, p in pairs(M.FLAG_PATHS) do
    if p == path then return "--" .. k:gsub("_", "-") end
  end
end

function M.validate(d, cluster, errs)
  local R = "ResetConfiguration"
  local function e(path, fmt, ...)
    local flag = flag_of(path)
    errs[#errs + 1] = path .. ": " .. fmt:format(...) .. (flag and (" (" .. flag .. ")") or "")
  end
  -- a directory reset empties: absolute, not climbing above / (config_validate.host_path's rules)
  local function host_path(v, path)
    if v == nil then return end
    if type(v) ~= "string" or v:find("%z") then return e(path, "%q must be an absolute path", tostring(v)) end
    local one = {}
    checks.host_path(v, path, one)
    if one[1] then e(path, "%s", one[1]:sub(#path + 3)) end
  end
  host_path(d.certificatesDir, R .. ".certificatesDir")
  local sock = d.criSocket
  if sock ~= nil and not (sock:match("^unix:///.") or sock:match("^/.")) then
    e(R .. ".criSocket", "%q must be an absolute path or a unix:// URL such as %s", sock, config.DEFAULT_CRI_SOCKET)
  end
  for i, f in ipairs(d.unmountFlags) do
    if not M.UNMOUNT_FLAGS[f] then
      e(("%s.unmountFlags[%d]"):format(R, i - 1), "%q is not one of MNT_FORCE, MNT_DETACH, MNT_EXPIRE, UMOUNT_NOFOLLOW", tostring(f))
    end
  end
  checks.skip_phases_and_timeouts(d, R, errs)
  if cluster then
    local C = "ClusterConfiguration"
    host_path(cluster.certificatesDir, C .. ".certificatesDir")
    local etcd = cluster.etcd or {}
    if etcd["local"] and etcd.external then e(C .. ".etcd", "local and external are mutually exclusive") end
    host_path(etcd["local"] and etcd["local"].dataDir, C .. ".etcd.local.dataDir")
  end
end

-- load{ file=, text=, docs=, flags= } -> { reset=, cluster= (the file's ClusterConfiguration, or
-- nil) } | nil, errs (lines), warnings. The file is the admin's, on this host (never under --root).
local function load(o)
  o = o or {}
  local errs, warnings = {}, {}
  local docs, rerrs, rwarn = config.read_docs(o)
  if not docs then return nil, rerrs, warnings end
  warnings[#warnings + 1] = rwarn
  local d, cluster = pick(docs, errs, warnings)
  if #errs > 0 then return nil, errs, warnings end
  d = d or {}
  apply_flags(d, o.flags)
  d = M.default(d)
  M.validate(d, cluster, errs)
  if #errs > 0 then return nil, errs, warnings end
  return { reset = d, cluster = cluster }, nil, warnings
end

function M.load(o)
  local parts, errs, warnings = load(o)
  return parts, errs and schema.one_line(errs), warnings
end

return M

#!/usr/bin/env python3
"""A small Kubernetes API server double for kboot's Lua tests, over HTTP (or HTTPS) on loopback.

It speaks the API's wire format as kboot.kube uses it and behaves the way a real kube-apiserver
does where kboot's logic depends on it:
  - object and collection paths (/api/v1/..., /apis/GROUP/VERSION/..., namespaced or not);
  - GET, list (labelSelector, fieldSelector metadata.name/namespace/type, limit and continue),
    POST (JSON or YAML), PUT, DELETE, PATCH as server-side apply (application/apply-patch+yaml,
    fieldManager required), JSON merge patch, strategic merge patch (maps merged, lists replaced)
    and JSON patch;
  - the server's own fields: uid, resourceVersion (one counter, moved only by a real change),
    creationTimestamp, generation (moved by a spec change), managedFields (one entry per manager
    and operation), Secret stringData folded into data, and defaults that a client must not mistake
    for a difference (Service type/sessionAffinity/clusterIP/targetPort, Deployment and DaemonSet
    strategy and Pod template defaults, Secret type);
  - errors as Kubernetes Status objects: 404 NotFound (also for a missing namespace), 409
    AlreadyExists, 409 Conflict on a stale resourceVersion, 400 BadRequest, 422 Invalid.
Test control under /_fake/ (never logged): GET /_fake/requests (every API request: method, path,
query, content type), DELETE /_fake/requests, POST /_fake/fail {method, path (substring), status,
times} to make matching requests fail with a Status, DELETE /_fake/fail, POST /_fake/mutate
{method, path (substring), skip, times, patch} to merge-patch the answers of matching requests
(after the first `skip` of them, `times` of them) as a server that changed in between would answer,
DELETE /_fake/mutate, POST /_fake/reset (a new cluster: the four namespaces only).
Usage: fake_apiserver.py PORTFILE [PARENT_PID]; with KBOOT_FAKE_TLS_CERT and KBOOT_FAKE_TLS_KEY
(PEM files) set, it serves HTTPS with that certificate.
"""
import base64
import copy
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import yaml

import peer

# plural -> (Kind, namespaced)
RESOURCES = {
    "namespaces": ("Namespace", False), "nodes": ("Node", False), "pods": ("Pod", True),
    "services": ("Service", True), "serviceaccounts": ("ServiceAccount", True),
    "configmaps": ("ConfigMap", True), "secrets": ("Secret", True), "endpoints": ("Endpoints", True),
    "events": ("Event", True), "deployments": ("Deployment", True), "daemonsets": ("DaemonSet", True),
    "statefulsets": ("StatefulSet", True), "replicasets": ("ReplicaSet", True), "roles": ("Role", True),
    "rolebindings": ("RoleBinding", True), "clusterroles": ("ClusterRole", False),
    "clusterrolebindings": ("ClusterRoleBinding", False), "leases": ("Lease", True),
    "certificatesigningrequests": ("CertificateSigningRequest", False),
}

lock = threading.Lock()
store = {}  # (group, plural, namespace or "", name) -> object
rv = [100]
requests = []
failures = []
mutations = []
service_ips = [0]


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def status(code, reason, message, name=None, plural=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if name is not None:
        s["details"] = {"name": name, "kind": plural}
    return code, s


class ApiError(Exception):
    def __init__(self, code, reason, message, name=None, plural=None):
        super().__init__(message)
        self.answer = status(code, reason, message, name, plural)


def parse_path(path):
    """-> group, version, plural, namespace, name (None when absent)"""
    seg = [s for s in path.split("/") if s]
    if seg[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", seg[2:]
    elif seg[:1] == ["apis"] and len(seg) >= 3:
        group, version, rest = seg[1], seg[2], seg[3:]
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2 or rest[0] not in RESOURCES:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    plural = rest[0]
    namespaced = RESOURCES[plural][1]
    if namespaced and ns is None and len(rest) == 2:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if not namespaced and ns is not None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return group, version, plural, ns, (rest[1] if len(rest) == 2 else None)


def merge_patch(target, patch):
    """RFC 7386"""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        if isinstance(parent, list):
            i = len(parent) if last == "-" else int(last)
            if op["op"] == "add":
                parent.insert(i, op["value"])
            elif op["op"] == "replace":
                parent[i] = op["value"]
            elif op["op"] == "remove":
                del parent[i]
        else:
            if op["op"] in ("add", "replace"):
                parent[last] = op["value"]
            elif op["op"] == "remove":
                del parent[last]
    return doc


def pod_defaults(spec):
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        c.setdefault("imagePullPolicy", "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        for p in c.get("ports", []):
            p.setdefault("protocol", "TCP")


def defaults(kind, obj):
    spec = obj.get("spec")
    if kind == "Service" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if not spec.get("clusterIP"):
            service_ips[0] += 1
            spec["clusterIP"] = "10.96.1.%d" % service_ips[0]
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        for p in spec.get("ports", []):
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
    elif kind in ("Deployment", "DaemonSet") and isinstance(spec, dict):
        spec.setdefault("revisionHistoryLimit", 10)
        if kind == "Deployment":
            spec.setdefault("replicas", 1)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("strategy", {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        else:
            spec.setdefault("updateStrategy", {"type": "RollingUpdate",
                                               "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
        pod_defaults(spec.setdefault("template", {}).setdefault("spec", {}))
        obj.setdefault("status", {})
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        sd = obj.pop("stringData", None)
        if sd:
            data = obj.setdefault("data", {})
            for k, v in sd.items():
                data[k] = base64.b64encode(str(v).encode()).decode()


def managed(old, manager, operation):
    entries = [e for e in (old or []) if not (e["manager"] == manager and e["operation"] == operation)]
    entries.append({"manager": manager, "operation": operation, "apiVersion": "v1", "time": now(),
                    "fieldsType": "FieldsV1", "fieldsV1": {}})
    return entries


def without_server_fields(obj):
    o = copy.deepcopy(obj)
    m = o.get("metadata", {})
    for k in ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid"):
        m.pop(k, None)
    return o


def store_object(key, kind, obj, old, manager, operation):
    """Defaults, server fields; the resourceVersion moves only when something changed."""
    group, plural, ns, name = key
    defaults(kind, obj)
    m = obj.setdefault("metadata", {})
    m["name"] = name
    if ns:
        m["namespace"] = ns
    if old is not None:
        om = old["metadata"]
        m["uid"], m["creationTimestamp"] = om["uid"], om["creationTimestamp"]
        m["managedFields"] = om.get("managedFields", [])
        m["resourceVersion"] = om["resourceVersion"]
        if "generation" in om:
            m["generation"] = om["generation"]
        if without_server_fields(obj) == without_server_fields(old):
            return 200, old
        m["managedFields"] = managed(om.get("managedFields"), manager, operation)
        if "generation" in om and obj.get("spec") != old.get("spec"):
            m["generation"] = om["generation"] + 1
    else:
        m["uid"] = str(uuid.uuid4())
        m["creationTimestamp"] = now()
        m["managedFields"] = managed(None, manager, operation)
        if kind in ("Deployment", "DaemonSet", "StatefulSet"):
            m["generation"] = 1
    rv[0] += 1
    m["resourceVersion"] = str(rv[0])
    store[key] = obj
    return (200 if old is not None else 201), obj


def decode(body, ctype):
    if not body:
        raise ApiError(400, "BadRequest", "the request body is empty")
    try:
        if "yaml" in ctype:
            return yaml.safe_load(body)
        return json.loads(body)
    except Exception as e:  # noqa: BLE001 - a client error, reported as the server does
        raise ApiError(400, "BadRequest", "cannot decode the body: %s" % e)


def selected(obj, labels, fields):
    have = obj.get("metadata", {}).get("labels") or {}
    for k, v in labels.items():
        if have.get(k) != v:
            return False
    m = obj.get("metadata", {})
    for k, v in fields.items():
        if k == "metadata.name" and m.get("name") != v:
            return False
        if k == "metadata.namespace" and m.get("namespace") != v:
            return False
        if k == "type" and obj.get("type") != v:  # Secrets' type (kboot's bootstrap-token lists)
            return False
    return True


def pairs(sel, what):
    out = {}
    for part in filter(None, (sel or "").split(",")):
        if "=" not in part or "!=" in part:
            raise ApiError(400, "BadRequest", "unsupported %s %r (this double knows k=v only)" % (what, part))
        k, v = part.split("=", 1)
        out[k.strip()] = v.lstrip("=").strip()
    return out


def serve(method, path, query, ctype, body):
    group, version, plural, ns, name = parse_path(path)
    kind, namespaced = RESOURCES[plural]
    api_version = version if group == "" else "%s/%s" % (group, version)
    q = {k: v[0] for k, v in parse_qs(query).items()}
    if ns and plural != "namespaces" and ("", "namespaces", "", ns) not in store and method != "GET":
        raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns, ns, "namespaces")

    if name is None and method == "GET":
        labels, fields = pairs(q.get("labelSelector"), "labelSelector"), pairs(q.get("fieldSelector"), "fieldSelector")
        items = [copy.deepcopy(o) for (g, p, n, _), o in sorted(store.items())
                 if g == group and p == plural and (ns is None or n == ns) and selected(o, labels, fields)]
        start = int(q.get("continue") or 0)
        limit = int(q.get("limit") or 0) or len(items)
        page = items[start:start + limit]
        meta = {"resourceVersion": str(rv[0])}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        for it in page:
            it["apiVersion"], it["kind"] = api_version, kind
        return 200, {"kind": kind + "List", "apiVersion": api_version, "metadata": meta, "items": page}

    if name is None and method == "POST":
        obj = decode(body, ctype)
        m = obj.get("metadata") or {}
        oname = m.get("name")
        if not oname and m.get("generateName"):
            oname = m["generateName"] + uuid.uuid4().hex[:5]
        if not oname:
            raise ApiError(422, "Invalid", "%s is invalid: metadata.name: Required value" % kind)
        key = (group, plural, ns or "", oname)
        if key in store:
            raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (plural, oname), oname, plural)
        obj.setdefault("metadata", {})["name"] = oname
        obj["apiVersion"], obj["kind"] = api_version, kind
        return store_object(key, kind, obj, None, q.get("fieldManager", "unknown"), "Update")

    if name is None:
        raise ApiError(405, "MethodNotAllowed", "%s is not allowed on a collection" % method)

    key = (group, plural, ns or "", name)
    old = store.get(key)
    missing = ApiError(404, "NotFound", '%s "%s" not found' % (plural, name), name, plural)
    if method == "GET":
        if old is None:
            raise missing
        return 200, old
    if method == "DELETE":
        if old is None:
            raise missing
        del store[key]
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": {"name": name, "kind": plural, "uid": old["metadata"]["uid"]}}
    if method == "PUT":
        if old is None:
            raise missing
        obj = decode(body, ctype)
        want_rv = (obj.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been modified' % (plural, name), name, plural)
        obj["apiVersion"], obj["kind"] = api_version, kind
        return store_object(key, kind, obj, old, q.get("fieldManager", "unknown"), "Update")
    if method != "PATCH":
        raise ApiError(405, "MethodNotAllowed", "%s is not allowed" % method)

    if ctype.startswith("application/apply-patch"):
        manager = q.get("fieldManager")
        if not manager:
            raise ApiError(400, "BadRequest", "PATCH, application/apply-patch+yaml: fieldManager is required")
        obj = decode(body, ctype)
        if obj.get("kind") != kind:
            raise ApiError(400, "BadRequest", "the body's kind %r does not match %s" % (obj.get("kind"), kind))
        if (obj.get("metadata") or {}).get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "the name of the object (%s) does not match the name on the URL (%s)" % (obj["metadata"]["name"], name))
        new = merge_patch(old or {}, without_server_fields(obj))
        new["apiVersion"], new["kind"] = api_version, kind
        return store_object(key, kind, new, old, manager, "Apply")
    if old is None:
        raise missing
    patch = decode(body, "json")
    if ctype.startswith("application/json-patch"):
        new = json_patch(old, patch)
    elif ctype.startswith("application/merge-patch") or ctype.startswith("application/strategic-merge-patch"):
        want_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been modified; please apply your changes to the latest version and try again' % (plural, name), name, plural)
        new = merge_patch(old, patch)
    else:
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format: " + ctype)
    return store_object(key, kind, new, old, q.get("fieldManager", "unknown"), "Update")


def injected(method, path):
    for f in failures:
        if f["method"] in (method, "*") and f["path"] in path and f["times"] != 0:
            f["times"] -= 1
            if "raw" in f:  # a body that is not a Status (a proxy's HTML page, a truncated answer)
                return f["status"], f["raw"].encode()
            return status(f["status"], f.get("reason", "Forbidden" if f["status"] == 403 else "InternalError"),
                          f.get("message", "injected by the test"))
    return None


def mutated(method, path, obj):
    for m in mutations:
        if m["method"] in (method, "*") and m["path"] in path:
            if m["skip"] > 0:
                m["skip"] -= 1
            elif m["times"] != 0:
                m["times"] -= 1
                obj = merge_patch(obj, m["patch"])
    return obj


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, fmt, *args):
        pass

    def answer(self, code, obj):
        body = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
        self.send_response(code)
        self.send_header("Content-Type", "application/json" if not isinstance(obj, bytes) else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def control(self, u, body):
        if u.path == "/_fake/requests":
            if self.command == "DELETE":
                requests.clear()
            return 200, list(requests)
        if u.path == "/_fake/fail":
            if self.command == "DELETE":
                failures.clear()
            else:
                f = json.loads(body)
                f.setdefault("method", "*")
                f.setdefault("times", -1)
                failures.append(f)
            return 200, failures
        if u.path == "/_fake/mutate":
            if self.command == "DELETE":
                mutations.clear()
            else:
                m = json.loads(body)
                m.setdefault("method", "GET")
                m.setdefault("skip", 0)
                m.setdefault("times", -1)
                mutations.append(m)
            return 200, mutations
        if u.path == "/_fake/reset":
            reset()
            return 200, {}
        return 404, {"error": "no control endpoint " + u.path}

    def handle_any(self):
        u = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        ctype = self.headers.get("Content-Type") or ""
        with lock:
            if u.path.startswith("/_fake/"):
                code, obj = self.control(u, body)
            elif u.path in ("/livez", "/healthz", "/readyz"):
                code, obj = 200, b"ok"
            elif u.path == "/version":
                code, obj = 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0"}
            else:
                entry = {"method": self.command, "path": u.path, "query": u.query, "content_type": ctype}
                if self.command == "POST":  # the name of a created object is in its body only
                    try:
                        entry["name"] = decode(body, ctype)["metadata"]["name"]
                    except Exception:  # noqa: BLE001 - serve() answers the bad body
                        pass
                requests.append(entry)
                code_obj = injected(self.command, u.path)
                if code_obj:
                    code, obj = code_obj
                else:
                    try:
                        code, obj = serve(self.command, u.path, u.query, ctype, body)
                        obj = mutated(self.command, u.path, copy.deepcopy(obj))
                    except ApiError as e:
                        code, obj = e.answer
        self.answer(code, obj)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def reset():
    """A new cluster: its namespaces only, no log, no injected failures."""
    store.clear()
    requests.clear()
    failures.clear()
    mutations.clear()
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        store_object(("", "namespaces", "", ns), "Namespace", {"apiVersion": "v1", "kind": "Namespace"}, None,
                     "kube-apiserver", "Update")


def main():
    reset()
    cert, key = os.environ.get("KBOOT_FAKE_TLS_CERT"), os.environ.get("KBOOT_FAKE_TLS_KEY")
    peer.serve(Handler, tls=(cert, key) if cert and key else None)


if __name__ == "__main__":
    main()

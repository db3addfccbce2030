#!/usr/bin/env bash
# Lints and renders the Helm chart; fails on any error.
#
#   scripts/chart-check.sh            (from anywhere; helm from .tools/bin, see ensure-deps.sh)
#
# 1. `helm lint --strict` with the default values and with each charts/ironlb/ci/*-values.yaml.
# 2. `helm template` with the default values and each ci file into target/chart-render/:
#      default.yaml, <ci-name>.yaml (e.g. dual-stack.yaml), and crds.yaml (the chart's CRDs).
#    The e2e chart test applies crds.yaml and then each rendered file to the embedded API
#    server with kubectl, and checks the recorded requests of each binary against the
#    rendered RBAC; keep these files where they are.
# 3. A few value combinations that must render (and some that must be refused), and the
#    chart without its crds/ directory (it must not depend on it to render).
# 4. When python3 with PyYAML is present: every rendered document is structurally sound
#    (apiVersion, kind, metadata.name, namespace on namespaced kinds, no duplicates) and
#    no RBAC rule uses a wildcard.
# 5. With CHART_CHECK_BIN_DIR=target/debug (needs PyYAML): each binary accepts the flags
#    the chart renders for it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/bin:$PATH"

chart=charts/ironlb
out=target/chart-render
release=ironlb
namespace=ironlb-system

command -v helm >/dev/null || { echo "chart-check: helm not found; run scripts/ensure-deps.sh" >&2; exit 1; }

fail() { echo "chart-check: FAIL: $*" >&2; exit 1; }
step() { echo "chart-check: $*"; }

# Concurrent runs (a developer and an e2e test, say) must not see each other's half-written
# files: one run at a time, and the results are rendered aside and swapped in at the end.
mkdir -p target
if command -v flock >/dev/null; then
  exec 9>target/.chart-check.lock
  flock 9
fi
final=$out
out=$(mktemp -d target/.chart-render.XXXXXX)
chmod 755 "$out"
nocrds=
trap 'rm -rf "$out" ${nocrds:+"$nocrds"}' EXIT

# === 1. lint ===
step "helm lint $chart"
helm lint --strict "$chart" >/dev/null || { helm lint --strict "$chart"; fail "helm lint (default values)"; }

shopt -s nullglob
ci_files=("$chart"/ci/*-values.yaml)
[ ${#ci_files[@]} -gt 0 ] || fail "no $chart/ci/*-values.yaml"
for f in "${ci_files[@]}"; do
  step "helm lint -f $f"
  helm lint --strict -f "$f" "$chart" >/dev/null || { helm lint --strict -f "$f" "$chart"; fail "helm lint -f $f"; }
done

# === 2. render ===
render() { # name, extra helm args...
  local name=$1; shift
  step "helm template $* -> $final/$name.yaml"
  helm template "$release" "$chart" --namespace "$namespace" "$@" > "$out/$name.yaml" \
    || fail "helm template $* (see the error above)"
  [ -s "$out/$name.yaml" ] || fail "helm template $* rendered nothing"
}
render default
for f in "${ci_files[@]}"; do
  base=$(basename "$f" -values.yaml)
  render "$base" -f "$f"
done
if [ -f "$chart/crds/ironlb-crds.yaml" ]; then
  cp "$chart/crds/ironlb-crds.yaml" "$out/crds.yaml"
  step "helm template --include-crds (the CRD file must parse)"
  helm template "$release" "$chart" --namespace "$namespace" --include-crds >/dev/null \
    || fail "helm template --include-crds"
else
  step "note: $chart/crds/ironlb-crds.yaml is absent (crdgen output); rendered without it"
fi

# === 3. combinations ===
must_render() { # description, helm args...
  local what=$1; shift
  helm template "$release" "$chart" --namespace "$namespace" "$@" >/dev/null 2>"$out/.err" \
    || { cat "$out/.err" >&2; fail "should render: $what"; }
}
must_refuse() { # description, expected message fragment, helm args...
  local what=$1 expect=$2; shift 2
  if helm template "$release" "$chart" --namespace "$namespace" "$@" >/dev/null 2>"$out/.err"; then
    fail "should be refused: $what"
  fi
  grep -qi -- "$expect" "$out/.err" || { cat "$out/.err" >&2; fail "refused for the wrong reason: $what (expected '$expect')"; }
}
step "value combinations"
must_render "ServiceMonitors on" --set serviceMonitor.enabled=true
must_render "single controller without leader election" \
  --set controller.replicas=1 --set controller.leaderElection.enabled=false
must_render "gateway and speaker off, no RBAC" \
  --set gateway.enabled=false --set speaker.enabled=false --set rbac.create=false
must_render "own ServiceAccounts and membership Secret" \
  --set controller.serviceAccount.create=false --set controller.serviceAccount.name=lb \
  --set speaker.membershipSecret.create=false --set speaker.membershipSecret.name=my-key
must_render "image digest" --set controller.image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
must_render "oldest supported Kubernetes" --kube-version 1.29.0
must_refuse "unsupported Kubernetes" "kubeVersion" --kube-version 1.28.9
must_refuse "a typo in a component block" "additional property" --set controller.replica=3
must_refuse "a typo at the top level" "additional property" --set speakers.enabled=false
must_refuse "gateway kind" "kind" --set gateway.kind=StatefulSet
must_refuse "two controllers without leader election" "leaderElection" \
  --set controller.leaderElection.enabled=false
must_refuse "externalIPs without allowed CIDRs" "allowedCIDRs" --set speaker.externalIPs.enabled=true
must_refuse "duplicate pool names" "used twice" \
  --set 'pools[0].name=a' --set 'pools[0].addresses={192.0.2.0/28}' \
  --set 'pools[1].name=a' --set 'pools[1].addresses={192.0.2.16/28}'
must_refuse "a pool without addresses" "addresses" --set 'pools[0].name=a'

step "the chart without crds/ (crdgen output absent)"
nocrds=$(mktemp -d)
cp -r "$chart" "$nocrds/ironlb"
rm -rf "$nocrds/ironlb/crds"
helm lint --strict "$nocrds/ironlb" >/dev/null || fail "helm lint without crds/"
for f in "${ci_files[@]}"; do
  helm template "$release" "$nocrds/ironlb" --namespace "$namespace" -f "$f" >/dev/null \
    || fail "helm template -f $f without crds/"
done
rm -f "$out/.err"

# === 4. structure ===
if python3 -c 'import yaml' 2>/dev/null; then
  step "structural checks of the rendered files"
  python3 - "$out" "$namespace" <<'PY' || fail "structural checks"
import glob, os, sys, yaml
out, namespace = sys.argv[1], sys.argv[2]
cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "IngressClass", "IPPool",
                  "L2Announcement", "CustomResourceDefinition", "Namespace"}
errors = []
files = sorted(glob.glob(os.path.join(out, "*.yaml")))
if len(files) < 2:
    errors.append(f"only {len(files)} rendered files in {out}")
for path in files:
    seen = set()
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        kind, meta = doc.get("kind"), doc.get("metadata") or {}
        where = f"{os.path.basename(path)}: {kind}/{meta.get('name')}"
        if not doc.get("apiVersion") or not kind or not meta.get("name"):
            errors.append(f"{where}: missing apiVersion, kind or metadata.name")
        if kind in cluster_scoped:
            if "namespace" in meta:
                errors.append(f"{where}: cluster-scoped kind with a namespace")
        elif meta.get("namespace") != namespace:
            errors.append(f"{where}: namespace {meta.get('namespace')!r}, expected {namespace!r}")
        key = (doc.get("apiVersion"), kind, meta.get("namespace"), meta.get("name"))
        if key in seen:
            errors.append(f"{where}: rendered twice")
        seen.add(key)
        for rule in doc.get("rules") or [] if kind in ("ClusterRole", "Role") else []:
            for field in ("apiGroups", "resources", "verbs"):
                if "*" in (rule.get(field) or []):
                    errors.append(f"{where}: wildcard in {field}")
        if kind == "DaemonSet" and meta.get("name", "").endswith("-speaker"):
            spec = doc["spec"]["template"]["spec"]
            sc = spec["containers"][0]["securityContext"]
            if not spec.get("hostNetwork"):
                errors.append(f"{where}: speaker without hostNetwork")
            if sc["capabilities"] != {"drop": ["ALL"], "add": ["NET_RAW"]}:
                errors.append(f"{where}: speaker capabilities {sc['capabilities']}")
            if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{where}: speaker filesystem/privilege escalation")
for e in errors:
    print("  " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
else
  step "note: python3 with PyYAML absent; structural checks skipped"
fi

# === 5. flags (opt-in) ===
# With CHART_CHECK_BIN_DIR (e.g. target/debug after `cargo build --bins`), every rendered
# container's args are given to its binary followed by --help: clap rejects an unknown
# flag or a bad value (exit 2) before printing help, so this proves the chart and the
# binaries agree on every flag without running anything.
if [ -n "${CHART_CHECK_BIN_DIR:-}" ]; then
  step "flags of the rendered containers against $CHART_CHECK_BIN_DIR/ironlb-*"
  python3 - "$out" "$CHART_CHECK_BIN_DIR" <<'PY' || fail "a binary refused the flags the chart gives it"
import glob, os, subprocess, sys, yaml
out, bindir = sys.argv[1], sys.argv[2]
bad = checked = 0
for path in sorted(glob.glob(os.path.join(out, "*.yaml"))):
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") not in ("Deployment", "DaemonSet"):
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            binary = os.path.join(bindir, "ironlb-" + c["name"])
            if not os.access(binary, os.X_OK):
                print(f"  {binary}: missing", file=sys.stderr); bad += 1; continue
            checked += 1
            r = subprocess.run([binary, *c.get("args", []), "--help"], capture_output=True, text=True, timeout=30)
            if r.returncode == 0 and "Usage" not in r.stdout:
                print(f"  {binary}: printed no clap help (a stub?)", file=sys.stderr); bad += 1
            elif r.returncode != 0:
                print(f"  {os.path.basename(path)}: {c['name']}: {r.stderr.strip().splitlines()[0] if r.stderr.strip() else r.returncode}", file=sys.stderr)
                bad += 1
if not checked:
    print("  no container checked", file=sys.stderr); bad += 1
sys.exit(1 if bad else 0)
PY
fi

rm -rf "$final"
mv "$out" "$final"
step "ok: $final/ $(ls "$final" | tr '\n' ' ')"

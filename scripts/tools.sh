#!/usr/bin/env bash
# tools.sh installs the external programs signet's tests, demo and benchmarks use,
# each cached outside the clone under $SIGNET_TOOLS (default ~/.cache/signet/tools),
# keyed by version, so a second run or a fresh clone costs nothing.
#
#   scripts/tools.sh [base|npm|cosign|kube|all]   (default: base)
#
# base:   Debian docker-registry and etcd-server, npm dynalite and aws-cdk, local-kms, aws-lambda-rie
# cosign: cosign v2.6.5 and v3.1.3
# kube:   kube-apiserver v1.37.2 (built from k8s.io/kubernetes by a wrapper module)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools=${SIGNET_TOOLS:-$HOME/.cache/signet/tools}
mkdir -p "$tools"

LOCAL_KMS_VERSION=v0.0.0-20260228092603-2a5e92d09ab6
RIE_VERSION=v0.0.0-20261030222936-bef5c4ba774d
COSIGN2_VERSION=v2.6.5
COSIGN3_VERSION=v3.1.3
KUBE_VERSION=v1.37.2

log() { printf 'tools: %s\n' "$*" >&2; }

# goinstall NAME VERSION PKG installs PKG@VERSION as $tools/NAME-VERSION/NAME once.
goinstall() {
  local name=$1 version=$2 pkg=$3 dir="$tools/$1-$2"
  if [ -x "$dir/$name" ]; then return 0; fi
  log "building $name $version (once; cached in $dir)"
  mkdir -p "$dir.tmp"
  GOBIN="$dir.tmp" GOFLAGS=-mod=mod go install "$pkg@$version"
  local built
  built=$(ls "$dir.tmp")
  [ "$built" = "$name" ] || mv "$dir.tmp/$built" "$dir.tmp/$name"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

apt_install() {
  local missing=()
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v node >/dev/null || missing+=(nodejs npm)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the packaged services; signet runs its own on loopback.
  for s in docker-registry etcd; do
    (systemctl stop "$s" 2>/dev/null || service "$s" stop 2>/dev/null || true) >/dev/null 2>&1
  done
}

npm_install() {
  if ! [ -d "$root/node_modules/dynalite" ] || ! [ -d "$root/node_modules/aws-cdk" ]; then
    log "npm ci (dynalite, aws-cdk)"
    (cd "$root" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  # aws-cdk ships Go template files; a go.mod of their own keeps them out of ./...
  [ -f "$root/node_modules/go.mod" ] || echo "module ignored/node_modules" >"$root/node_modules/go.mod"
}

kube() {
  local dir="$tools/kube-apiserver-$KUBE_VERSION"
  if [ -x "$dir/kube-apiserver" ]; then return 0; fi
  log "building kube-apiserver $KUBE_VERSION (once, ~7 min and ~3 GB; cached in $dir)"
  local w minor
  w=$(mktemp -d)
  cp "$root/scripts/kube-wrapper/go.mod.in" "$w/go.mod"
  cp "$root/scripts/kube-wrapper/main.go.in" "$w/main.go"
  # Stamp the version the way Kubernetes' own build does (hack/lib/version.sh).
  minor=${KUBE_VERSION#v1.}
  minor=${minor%%.*}
  local v=k8s.io/component-base/version
  local ld="-s -w -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  mkdir -p "$dir.tmp"
  # -mod=mod resolves the requirements from go.mod.in and writes go.sum.
  (cd "$w" && GOWORK=off GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" \
    -o "$dir.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
  "$dir.tmp/kube-apiserver" --version >&2
  rm -rf "$dir" "$w" && mv "$dir.tmp" "$dir"
}

what=${1:-base}
case "$what" in
  npm) npm_install; exit 0 ;;
  base|all)
    apt_install
    npm_install
    goinstall local-kms "$LOCAL_KMS_VERSION" github.com/nsmithuk/local-kms
    goinstall aws-lambda-rie "$RIE_VERSION" github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie
    ;;&
  cosign|all)
    goinstall cosign "$COSIGN2_VERSION" github.com/sigstore/cosign/v2/cmd/cosign
    goinstall cosign "$COSIGN3_VERSION" github.com/sigstore/cosign/v3/cmd/cosign
    ;;&
  kube|all)
    kube
    ;;
  base|cosign) ;;
  *) echo "usage: $0 [base|cosign|kube|all]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# stack.sh brings signet's local stack up or down, all on 127.0.0.1:
#   registry  Debian docker-registry (CNCF distribution 2.8), filesystem storage, deletes enabled
#   KMS       local-kms, with an ECC_NIST_P256 signing key behind alias/signet
#   DynamoDB  dynalite, with the verdict table
#   Lambda    the signer's bootstrap under the Lambda runtime interface emulator
# and writes .local/stack.env (sourceable exports). Ports start at
# SIGNET_STACK_PORT (default 27100, below the ephemeral port range). State lives in .local/.
#
#   scripts/stack.sh up | down | status
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools=${SIGNET_TOOLS:-$HOME/.cache/signet/tools}
local_dir=$root/.local
base=${SIGNET_STACK_PORT:-27100}
reg_port=$base kms_port=$((base + 1)) dyn_port=$((base + 2)) rie_port=$((base + 3)) rapi_port=$((base + 4))
alias_name=alias/signet
table=signet-verdicts
export GOFLAGS=-mod=mod

say() { printf 'stack: %s\n' "$*" >&2; }

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  say "$what did not start on 127.0.0.1:$port; its log:"
  tail -20 "$local_dir/logs/$what.log" >&2 || true
  return 1
}

# start NAME CMD... runs CMD in its own session, logging to .local/logs/NAME.log.
start() {
  local n=$1
  shift
  setsid "$@" >"$local_dir/logs/$n.log" 2>&1 </dev/null &
  echo $! >"$local_dir/pids/$n"
}

down() {
  [ -d "$local_dir/pids" ] || return 0
  for f in "$local_dir"/pids/*; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  say "stopped"
}

up() {
  down
  for p in $reg_port $kms_port $dyn_port $rie_port $rapi_port; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      say "port $p on 127.0.0.1 is in use: stop what holds it, or set SIGNET_STACK_PORT to another base"
      exit 1
    fi
  done
  rm -rf "$local_dir"
  mkdir -p "$local_dir"/{logs,pids,registry,kms}
  bash scripts/tools.sh base

  cat >"$local_dir/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $local_dir/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$reg_port
YML
  start registry docker-registry serve "$local_dir/registry.yml"
  # local-kms binds 0.0.0.0; signet only ever addresses it at 127.0.0.1.
  start kms env PORT=$kms_port KMS_DATA_PATH="$local_dir/kms" KMS_REGION=us-east-1 "$tools/local-kms-v0.0.0-20260228092603-2a5e92d09ab6/local-kms"
  start dynamodb node node_modules/dynalite/cli.js --host 127.0.0.1 --port "$dyn_port"
  wait_port "$reg_port" registry
  wait_port "$kms_port" kms
  wait_port "$dyn_port" dynamodb

  say "creating key $alias_name and table $table"
  go build -o "$local_dir/localstack" ./test/localstack
  key_id=$("$local_dir/localstack" init -kms "http://127.0.0.1:$kms_port" -dynamo "http://127.0.0.1:$dyn_port" \
    -alias "$alias_name" -table "$table" -pem "$local_dir/signet.pub")

  say "building the signer (bootstrap, -tags lambda.norpc) and starting it under aws-lambda-rie"
  CGO_ENABLED=0 go build -trimpath -tags lambda.norpc -ldflags "-X github.com/signet-dev/signet/internal/version.Version=$(git describe --always --dirty 2>/dev/null || echo dev)" \
    -o "$local_dir/bootstrap" ./functions/signer
  start lambda env -u AWS_CA_BUNDLE -u AWS_PROFILE \
    AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
    AWS_ENDPOINT_URL_KMS="http://127.0.0.1:$kms_port" AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$dyn_port" \
    AWS_EC2_METADATA_DISABLED=true AWS_LAMBDA_FUNCTION_TIMEOUT=60 \
    SIGNET_KMS_KEY="awskms:///$alias_name" SIGNET_TABLE="$table" SIGNET_REGISTRY="127.0.0.1:$reg_port" \
    ${SIGNET_POLICY:+SIGNET_POLICY="$SIGNET_POLICY"} \
    "$tools/aws-lambda-rie-v0.0.0-20261030222936-bef5c4ba774d/aws-lambda-rie" \
    --runtime-interface-emulator-address "127.0.0.1:$rie_port" --runtime-api-address "127.0.0.1:$rapi_port" \
    "$local_dir/bootstrap"
  wait_port "$rie_port" lambda

  cat >"$local_dir/stack.env" <<ENV
# signet local stack: source this file. Written by scripts/stack.sh.
export REGISTRY=127.0.0.1:$reg_port
export SIGNET_KMS_KEY=awskms:///$alias_name
export SIGNET_KMS_KEY_ID=$key_id
export SIGNET_PUBLIC_KEY=$local_dir/signet.pub
export SIGNET_TABLE=$table
export SIGNET_LAMBDA_URL=http://127.0.0.1:$rie_port/2015-03-31/functions/function/invocations
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=local
export AWS_SECRET_ACCESS_KEY=local
export AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:$kms_port
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$dyn_port
unset AWS_CA_BUNDLE AWS_PROFILE
export COSIGN2=$tools/cosign-v2.6.5/cosign
export COSIGN3=$tools/cosign-v3.1.3/cosign
ENV
  say "up: source .local/stack.env (registry 127.0.0.1:$reg_port, lambda 127.0.0.1:$rie_port)"
}

status() {
  for f in "$local_dir"/pids/*; do
    [ -e "$f" ] || { say "down"; return 0; }
    n=$(basename "$f")
    if kill -0 "$(cat "$f")" 2>/dev/null; then echo "$n running"; else echo "$n stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

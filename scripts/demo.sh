#!/usr/bin/env bash
# demo.sh runs signet's main job end to end on the local stack:
# push an image by tag -> ECR push event to the signer Lambda -> signature,
# attestation and verdict -> cosign v2 and v3 verify them with the KMS public key.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
trap 'bash scripts/stack.sh down' EXIT

step "Starting the local stack (registry, local-kms, dynalite, signer under the Lambda runtime emulator)"
bash scripts/tools.sh base
bash scripts/tools.sh cosign
bash scripts/stack.sh up
# shellcheck disable=SC1091
source .local/stack.env
ls=.local/localstack
repo=team/api

step "Pushing $REGISTRY/$repo:1.4, an image built from the docker-registry binary of Debian's docker-registry package"
digest=$($ls push-image -ref "$REGISTRY/$repo:1.4" "$(command -v docker-registry)")
image=$REGISTRY/$repo@$digest
echo "pushed $image"

step "Delivering the ECR push event (events/push.json with the real digest) to the signer"
$ls event -sample events/push.json -repo "$repo" -digest "$digest" -tag 1.4 >.local/event.json
curl -sS --fail-with-body -X POST "$SIGNET_LAMBDA_URL" -d @.local/event.json | tee .local/result.json
echo
grep -q '"outcome":"SIGNED"' .local/result.json || { echo "signer did not sign: $(cat .local/result.json)"; exit 1; }

step "Tags now in $REGISTRY/$repo"
curl -sS "http://$REGISTRY/v2/$repo/tags/list"
echo

for cosign in "$COSIGN2" "$COSIGN3"; do
  v=$("$cosign" version 2>/dev/null | awk '/GitVersion/ {print $2}')
  step "cosign $v verify --key signet.pub (the KMS public key)"
  "$cosign" verify --key "$SIGNET_PUBLIC_KEY" --insecure-ignore-tlog=true "$image" >.local/verify.out 2>.local/verify.err ||
    { cat .local/verify.err; exit 1; }
  cat .local/verify.out
  echo "cosign verify exited 0: signature verified"
  step "cosign $v verify-attestation --type https://slsa.dev/verification_summary/v1"
  "$cosign" verify-attestation --key "$SIGNET_PUBLIC_KEY" --insecure-ignore-tlog=true \
    --type https://slsa.dev/verification_summary/v1 "$image" >.local/att.out 2>.local/att.err ||
    { cat .local/att.err; exit 1; }
  python3 -c 'import sys,json,base64; e=json.loads(sys.stdin.readline()); s=json.loads(base64.b64decode(e["payload"])); print(json.dumps({"predicateType": s["predicateType"], "subject": s["subject"], "predicate": s["predicate"]}, indent=2))' <.local/att.out
  echo "cosign verify-attestation exited 0: attestation verified"
done

step "Loop safety: the push event of signet's own .sig tag changes nothing"
sig_digest=$(curl -sS -o /dev/null -D - -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$REGISTRY/v2/$repo/manifests/${digest/:/-}.sig" | awk -F': ' 'tolower($1)=="docker-content-digest" {print $2}' | tr -d '\r')
$ls event -sample events/push-sig-tag.json -repo "$repo" -digest "$sig_digest" -tag "${digest/:/-}.sig" >.local/sig-event.json
curl -sS --fail-with-body -X POST "$SIGNET_LAMBDA_URL" -d @.local/sig-event.json
echo

step "Deploy time: signet verdict answers from the verdict table, no signature fetch"
go build -o .local/signet ./cmd/signet
.local/signet verdict "$REGISTRY/$repo:1.4"
echo "exit status 0: allowed"
unsigned=$($ls push-image -ref "$REGISTRY/$repo:unsigned" "$(command -v etcd)")
set +e
.local/signet verdict "$REGISTRY/$repo@$unsigned"
code=$?
set -e
[ "$code" = 1 ] || { echo "signet verdict on an unsigned image exited $code, want 1"; exit 1; }
echo "exit status 1: denied (no push event was delivered for it, so it has no verdict)"

step "The verdict item in DynamoDB table $SIGNET_TABLE, with its audit trail"
$ls verdict -dynamo "$AWS_ENDPOINT_URL_DYNAMODB" -table "$SIGNET_TABLE" -image "$image"

step "Done: signed at push time, verifiable by cosign, verdict recorded. Stopping the stack."

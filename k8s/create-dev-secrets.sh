#!/usr/bin/env bash
# Create the Secrets the manifests expect, with random values, for a local cluster:
#   ecommerce-secrets  database, Redis and internal passwords (keys as in base/secret.example.yaml)
#   account-jwt        the account service's RS256 signing key (signing.pem)
#   kafka-credentials  Kafka's SCRAM passwords, one per principal (used by overlays/prod)
# Usage: k8s/create-dev-secrets.sh [namespace]   (default: ecommerce). Needs kubectl and openssl.
# Existing Secrets are kept: PostgreSQL learns its passwords once, on its first start.
set -euo pipefail
namespace="${1:-ecommerce}"

kubectl get namespace "$namespace" >/dev/null 2>&1 || kubectl create namespace "$namespace"

random() { openssl rand -hex 24; }
# Production refuses secrets of fewer than 32 random bytes (servicekit/settings.py).
secret() { openssl rand -hex 32; }

if kubectl -n "$namespace" get secret ecommerce-secrets >/dev/null 2>&1; then
  echo "secret/ecommerce-secrets exists in $namespace; kept"
else
  kubectl -n "$namespace" create secret generic ecommerce-secrets \
    --from-literal=POSTGRES_PASSWORD="$(random)" \
    --from-literal=ACCOUNT_DB_PASSWORD="$(random)" \
    --from-literal=CATALOG_DB_PASSWORD="$(random)" \
    --from-literal=ORDER_DB_PASSWORD="$(random)" \
    --from-literal=PAYMENT_DB_PASSWORD="$(random)" \
    --from-literal=NOTIFICATION_DB_PASSWORD="$(random)" \
    --from-literal=REDIS_PASSWORD="$(random)" \
    --from-literal=CURSOR_SECRET="$(secret)" \
    --from-literal=INTERNAL_SERVICE_TOKEN="$(secret)" \
    --from-literal=NOTIFICATION_WEBHOOK_SECRET_KEY="$(openssl rand -base64 32 | tr '+/' '-_')"
fi

if kubectl -n "$namespace" get secret kafka-credentials >/dev/null 2>&1; then
  echo "secret/kafka-credentials exists in $namespace; kept"
else
  # The broker learns admin's password when it formats its volume; the Job kafka-access the others.
  kubectl -n "$namespace" create secret generic kafka-credentials \
    $(for principal in admin account catalog gateway notification order payment topics; do
        printf -- '--from-literal=%s=%s ' "$principal" "$(random)"
      done)
fi

if kubectl -n "$namespace" get secret account-jwt >/dev/null 2>&1; then
  echo "secret/account-jwt exists in $namespace; kept"
else
  key="$(mktemp -d)"
  trap 'rm -rf "$key"' EXIT
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$key/signing.pem" 2>/dev/null
  kubectl -n "$namespace" create secret generic account-jwt --from-file=signing.pem="$key/signing.pem"
fi

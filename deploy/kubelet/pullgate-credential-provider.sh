#!/bin/sh
# A kubelet image credential provider (Kubernetes >= 1.34, or 1.33 with the
# KubeletServiceAccountTokenForCredentialProviders gate) for pullgate: it hands the pod's
# service-account token, which the kubelet minted for the audience "pullgate", to the registry as
# the password. pullgate verifies the token offline against the cluster's JWKS and applies
# auth.rules to the service account (namespace:..., serviceaccount:NS/NAME).
#
# Install as /usr/local/lib/kubelet-credential-providers/pullgate-credential-provider (no .sh: the
# name must be the provider's name in credential-provider-config.yaml), mode 0755.
# The kubelet writes a CredentialProviderRequest (JSON, one line) to stdin and reads the response.
set -eu

registry="${PULLGATE_REGISTRY:-pullgate.internal:5050}"
case "$registry" in
  *[!A-Za-z0-9.:-]* | '') echo "pullgate-credential-provider: PULLGATE_REGISTRY is not a host[:port]" >&2; exit 1 ;;
esac

# The request is small; read at most 1 MiB and keep only the token's own characters (base64url
# and dots), so nothing else can reach the response.
request=$(head -c 1048576 | tr -d '\n\r')
token=$(printf '%s' "$request" |
  sed -n 's/.*"serviceAccountToken"[[:space:]]*:[[:space:]]*"\([A-Za-z0-9._-]*\)".*/\1/p')

head='"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1"'
if [ -z "$token" ]; then
  # No token (a pod without a service account): no credentials; containerd's own apply.
  printf '{%s,"cacheKeyType":"Image","cacheDuration":"0s","auth":{}}\n' "$head"
  exit 0
fi
# cacheDuration 0s: the token is the credential, so the kubelet must not reuse it for another pod.
printf '{%s,"cacheKeyType":"Registry","cacheDuration":"0s","auth":{"%s":{"username":"serviceaccount","password":"%s"}}}\n' \
  "$head" "$registry" "$token"

#!/usr/bin/env bash
# Before the tests: name any system tool they drive that is missing, and how to get it.
missing=()
for tool in docker-registry skopeo containerd ctr podman openssl pg_isready fincore; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "missing tools: ${missing[*]}" >&2
  echo "install them with: apt-get install -y docker-registry skopeo containerd podman openssl postgresql util-linux-extra  (or run bash .ci/run)" >&2
  exit 1
fi

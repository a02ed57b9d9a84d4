# One line: the digest of this node's CLUSTER_FILES, or 'missing' (absent, or not CLUSTER_NAME's).
# Equal digests on every node: the cluster is configured.
: "${CLUSTER_FILES:?}" "${CLUSTER_NAME:?}"
read -ra files <<<"$CLUSTER_FILES"
for f in "${files[@]}"; do [ -s "$f" ] || { echo missing; exit 0; }; done
grep -qs "cluster_name: $CLUSTER_NAME\$" "${files[0]}" || { echo missing; exit 0; }
cat "${files[@]}" | sha256sum | cut -c1-64

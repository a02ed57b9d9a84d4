# pcs 0.10+ local-only mode: pcs writes CLUSTER_NAME's corosync.conf for MEMBERS ("name addr=IP"
# words) without contacting the nodes, and the script prints it.
set -eu
: "${CLUSTER_NAME:?}" "${MEMBERS:?}"
conf=/run/lab-corosync.conf
read -ra members <<<"$MEMBERS"
rm -f "$conf"
pcs cluster setup "$CLUSTER_NAME" "${members[@]}" --corosync_conf "$conf" >&2
cat "$conf"; rm -f "$conf"

# pcs 0.9: create and start CLUSTER_NAME on NODES through pcsd (skipped when corosync.conf names it).
set -eu
: "${CLUSTER_NAME:?}" "${NODES:?}"
if grep -qs "cluster_name: $CLUSTER_NAME" /etc/corosync/corosync.conf; then
  if ! { systemctl is-active -q corosync && systemctl is-active -q pacemaker; }; then pcs cluster start --all; fi
  echo already; exit 0
fi
read -ra nodes <<<"$NODES"
pcs cluster setup --name "$CLUSTER_NAME" "${nodes[@]}" --start

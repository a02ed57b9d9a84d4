# pcs host auth (pcs 0.10+) or pcs cluster auth (PCS_GENERATION 0.9) of NODES, skipped when pcsd
# already knows every node. Without -p, pcs reads the password from stdin when stdin is not a
# terminal; printf is a shell builtin, so the password is in no process's arguments.
set -eu
: "${NODES:?}" "${HACLUSTER_PASSWORD:?}" "${PCS_GENERATION:?}" "${PCS_REQUEST_TIMEOUT:?}"
read -ra nodes <<<"$NODES"
if [ "$PCS_GENERATION" = 0.9 ]; then known=/var/lib/pcsd/tokens; else known=/var/lib/pcsd/known-hosts; fi
if [ -e "$known" ]; then
  missing=0
  for node in "${nodes[@]}"; do grep -q "\"$node\"" "$known" || missing=1; done
  if [ "$missing" -eq 0 ]; then echo already; exit 0; fi
fi
if [ "$PCS_GENERATION" = 0.9 ]; then
  printf '%s\n' "$HACLUSTER_PASSWORD" | pcs cluster auth "${nodes[@]}" -u hacluster
else
  # pcs waits 60 s per request by default; a cold pcsd on a busy emulated guest took longer.
  printf '%s\n' "$HACLUSTER_PASSWORD" | pcs host auth "${nodes[@]}" -u hacluster --request-timeout="$PCS_REQUEST_TIMEOUT"
fi

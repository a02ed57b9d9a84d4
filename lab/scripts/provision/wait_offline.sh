# Poll (up to TIMEOUT seconds) until this node's pacemaker reports every one of NODES offline
# (a fault took effect).
set -u
: "${NODES:?}" "${TIMEOUT:?}"
read -ra nodes <<<"$NODES"
end=$(( $(date +%s) + TIMEOUT ))
while :; do
  out=$(crm_mon --one-shot --output-as=xml 2>/dev/null || true)
  offline=yes
  for node in "${nodes[@]}"; do
    printf '%s' "$out" | grep -q "<node name=\"$node\"[^>]* online=\"false\"" || offline=no
  done
  [ "$offline" = no ] || break
  [ "$(date +%s)" -lt "$end" ] || { echo "$NODES still online after $TIMEOUT s" >&2; exit 1; }
  sleep 0.5
done

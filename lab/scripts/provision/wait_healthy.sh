# Poll (every 0.5 s, up to TIMEOUT seconds) until COUNT nodes are online in a quorate partition
# (COUNT=configured: every node pacemaker has in its node list, which a solution may have grown
# or shrunk); then, with SETTLE=yes, let the cluster settle (crm_resource --wait).
set -u
: "${COUNT:?}" "${TIMEOUT:?}" "${SETTLE:?}"
end=$(( $(date +%s) + TIMEOUT ))
while :; do
  out=$(crm_mon --one-shot --output-as=xml 2>/dev/null || true)
  listed=$(printf '%s\n' "$out" | sed -n '/<nodes>/,/<\/nodes>/p')
  online=$(printf '%s\n' "$listed" | grep -c '<node name=[^>]* online="true"' || true)
  want=$COUNT
  if [ "$COUNT" = configured ]; then
    want=$(printf '%s\n' "$listed" | grep -c '<node name=' || true)
    [ "$want" -ge 1 ] || want=1
  fi
  if [ "$online" -ge "$want" ] && printf '%s' "$out" | grep -q 'with_quorum="true"'; then break; fi
  [ "$(date +%s)" -lt "$end" ] || { echo "only $online of $want nodes online after $TIMEOUT s" >&2; exit 1; }
  sleep 0.5
done
[ "$SETTLE" != yes ] || crm_resource --wait --timeout="${TIMEOUT}s" >/dev/null 2>&1 || true

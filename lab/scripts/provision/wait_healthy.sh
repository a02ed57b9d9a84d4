# Poll (every 0.5 s, up to TIMEOUT seconds) until COUNT nodes are online in a quorate partition;
# then, with SETTLE=yes, let the cluster settle (crm_resource --wait).
set -u
: "${COUNT:?}" "${TIMEOUT:?}" "${SETTLE:?}"
end=$(( $(date +%s) + TIMEOUT ))
while :; do
  out=$(crm_mon --one-shot --output-as=xml 2>/dev/null || true)
  online=$(printf '%s' "$out" | grep -c '<node name=[^>]* online="true"' || true)
  if [ "$online" -ge "$COUNT" ] && printf '%s' "$out" | grep -q 'with_quorum="true"'; then break; fi
  [ "$(date +%s)" -lt "$end" ] || { echo "only $online of $COUNT nodes online after $TIMEOUT s" >&2; exit 1; }
  sleep 0.5
done
[ "$SETTLE" != yes ] || crm_resource --wait --timeout="${TIMEOUT}s" >/dev/null 2>&1 || true

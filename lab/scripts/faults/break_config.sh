# Fault break-config: edit a file with a sed expression, then restart a unit if asked
# (a restart that fails is part of the fault: the unit stays down).
set -e
: "${FILE:?}" "${SED:?}"
sed -i -e "$SED" "$FILE"
if [ -n "${RESTART:-}" ]; then
    systemctl restart "$RESTART" || true
fi

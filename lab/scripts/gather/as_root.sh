# Runs the gather script that arrives on stdin as root: through one `sudo -n` when the login user
# is not root. SUDO=yes: the caller knows the login user is not root; auto: `id -u` decides; no: as
# the login user (lab.gather.live asks again that way when sudo refused: it gathers what an
# unprivileged user may read). sudo -n refuses before reading stdin, so nothing of the script is
# lost, and there is no `sudo -n true` probe first: under software emulation one sudo costs about
# a second. Bounded as a whole by WHOLE seconds (`timeout` kills its process group; the gather's
# trap cleans up). This wrapper is the one command in argv; the script itself is never in argv.
: "${WHOLE:?}" "${SUDO:?}"

set -- sh -s
if command -v timeout >/dev/null 2>&1; then
  set -- timeout -k 2 "$WHOLE" "$@"
fi
if [ "$SUDO" = yes ] || { [ "$SUDO" = auto ] && [ "$(id -u)" -ne 0 ]; }; then
  set -- sudo -n "$@"
fi
exec "$@"

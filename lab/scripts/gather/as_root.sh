# Runs the gather script that arrives on stdin: as root through one sudo when the login user is
# not root and may sudo (otherwise as the user: it gathers what an unprivileged user may read),
# bounded as a whole by WHOLE seconds (`timeout` kills its process group; the gather's trap
# cleans up). This wrapper is the one command in argv; the script itself is never in argv.
: "${WHOLE:?}"

set -- sh -s
if command -v timeout >/dev/null 2>&1; then
  set -- timeout -k 2 "$WHOLE" "$@"
fi
if [ "$(id -u)" -ne 0 ] && sudo -n true </dev/null 2>/dev/null; then
  set -- sudo -n "$@"
fi
exec "$@"

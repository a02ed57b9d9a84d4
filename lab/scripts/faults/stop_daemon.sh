# Fault stop-daemon: one daemon stops; the node stays in the membership.
set -e
: "${DAEMON:?}"
systemctl stop "$DAEMON"

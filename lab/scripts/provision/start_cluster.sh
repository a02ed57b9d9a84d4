# Start corosync, then pacemaker, on this node (what `pcs cluster start` does locally), each
# retried after a timed-out start.
set -eu
install_unit_timeouts
start_unit corosync
start_unit pacemaker

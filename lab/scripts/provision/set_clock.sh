# After a memory snapshot revert the guest clock is the snapshot's: set it to the host's EPOCH.
: "${EPOCH:?}"
date -s "@$EPOCH" >/dev/null

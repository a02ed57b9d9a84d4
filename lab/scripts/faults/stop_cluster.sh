# Fault stop-cluster: the node leaves the cluster (pacemaker first, then corosync).
set -e
systemctl stop pacemaker
systemctl stop corosync

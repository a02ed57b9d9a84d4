# Fault cut-link: only corosync's traffic is dropped; SSH from the host (and the grader)
# still reaches the node.
set -e
: "${PORTS:?}"
iptables -I INPUT -p udp --dport "$PORTS" -j DROP
iptables -I OUTPUT -p udp --dport "$PORTS" -j DROP

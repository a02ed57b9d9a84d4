# pcsd's known hosts on this node (pcs host auth wrote them), or nothing: every node gets a copy.
cat /var/lib/pcsd/known-hosts 2>/dev/null || true

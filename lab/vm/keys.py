"""The lab's SSH keys: the key `lab` logs in with (made once per lab), the host keys of the nodes
pinned at first contact, and root's key between the nodes (crmsh runs its cluster commands over
SSH, as `crm cluster init` leaves it)."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab.core.progress import Progress
from lab.transport.ssh import SSHNode
from lab.vm import provision
from lab.vm.labstate import Lab, StepName, write_atomic
from lab.vm.nodes import close, connect_all, parallel


def new_ssh_key() -> tuple[str, str]:
    """A fresh Ed25519 key: (private key in OpenSSH format, public key line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public


def generate_key(lab: Lab) -> None:
    """The lab's own login key (private 0600), once: a rerun keeps the key the nodes trust."""
    if lab.identity.exists():
        return
    private, public = new_ssh_key()
    write_atomic(lab.identity.with_suffix(".pub"), f"{public} failover-lab-{lab.name}\n")
    write_atomic(lab.identity, private, mode=0o600)


def pin_host_key(lab: Lab, node: SSHNode, host: str) -> None:
    """Record the key met at first contact (management address) for the fixed address too."""
    client = node._client  # noqa: SLF001 - the key of the live connection
    if client is None or client.get_transport() is None:
        return
    key = client.get_transport().get_remote_server_key()
    line = f"{host} {key.get_name()} {key.get_base64()}\n"
    text = lab.known_hosts.read_text() if lab.known_hosts.exists() else ""
    if not any(ln.split()[:1] == [host] for ln in text.splitlines()):
        with lab.known_hosts.open("a") as handle:
            handle.write(line)


def root_ssh(lab: Lab, progress: Progress) -> None:
    """root on every node reaches every node by SSH (a key made here, host keys pinned), as
    `crm cluster init` leaves it: crmsh runs even local cluster start/stop over SSH."""
    nodes = connect_all(lab)
    try:
        with progress.step("lab", "root SSH between the nodes (crmsh's cluster commands use it)"):
            keys = parallel(lambda n: provision.run_root(n, provision.host_keys_script(), "host keys").stdout,
                            list(nodes.values()))
            known = provision.root_known_hosts({(n.name, n.ip): k for n, k in zip(lab.nodes, keys, strict=True)})
            private, public = new_ssh_key()
            lab_public = lab.identity.with_suffix(".pub").read_text().strip()
            payload = provision.root_ssh_input(private, f"{public} root@{lab.name}", known, lab_public)
            parallel(lambda n: provision.run_root(n, provision.root_ssh_script(), "root SSH",
                                                  input_text=payload), list(nodes.values()))
        lab.mark(StepName.GRADER_ROOT)
    finally:
        close(nodes)

"""The VM lab: its typed state, Vagrant and libvirt, provisioning of the nodes, start states
(faults, host fixtures) and the lifecycle steps of lab up/start/reset/destroy.
May import lab.core, lab.transport, lab.gather and lab.engine."""

"""Asking the cluster and pacemaker's own tools: the fact sections gathered from nodes or a saved
CIB, the live probes, and crm_simulate/crm_resource/crm_rule run on a copy of a CIB.
May import lab.core and lab.transport."""

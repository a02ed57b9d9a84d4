"""Asking the cluster and pacemaker's own tools: the fact sections gathered from nodes or a saved
CIB, the live probes, and crm_simulate/crm_resource/crm_rule run on a copy of a CIB.

sections (the sections as objects checks declare) -> live (one script per node, on stdin,
through any lab.transport.base.Runner) -> parsers -> nodefacts (the frozen data checks read);
facts is the one import for all of it and reads saved CIBs. May import lab.core and lab.transport."""

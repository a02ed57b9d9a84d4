"""Failover Lab: real Pacemaker/Corosync practice clusters and a grader that judges them."""

__version__ = "0.1.0"

"""Development tools, not part of the agent: the network-namespace lab (needs root).

``python -m lpmbench.lab up|down|status`` builds and tears down lab hosts by hand; tests use :class:`Lab`.
"""

from lpmbench.lab.ecmp import EcmpLab
from lpmbench.lab.netns import Lab, LabError, PortSpec, lab_unavailable_reason, list_lab_namespaces

__all__ = ["EcmpLab", "Lab", "LabError", "PortSpec", "lab_unavailable_reason", "list_lab_namespaces"]

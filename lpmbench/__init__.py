"""lpmbench: is the network between two PowerVM Mover Service Partitions fit for Live Partition Mobility?"""

__version__ = "0.1.0"

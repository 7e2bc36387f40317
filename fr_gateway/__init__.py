"""fr-gateway: real-time face recognition gateway for checkpoint cameras."""

__version__ = "0.1.0"

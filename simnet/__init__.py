"""simnet: does a WebRTC call connect behind these networks, and how fast?"""

__version__ = "0.1.0"

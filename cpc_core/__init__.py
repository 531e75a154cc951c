"""cpc: commune-level estimates of CSAM-linked Tor traffic from NetMob23 tile traffic.

The library is lazy and stage-oriented: one module per stage, each a function from data to
data. Jobs (``jobs/``) wire the stages and own the compute points; ``cluster/`` hands out a
``distributed.Client``.
"""

__version__ = "0.1.0"

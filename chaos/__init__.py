"""sagaproof chaos package: faults for choreographed services over NATS.

Submodules:
    chaos.toxiproxy  the Toxiproxy-compatible fault proxy server (asyncio), with NATS message toxics
    chaos.client     `FaultProxyClient`, a thin client over toxiproxy-python
    chaos.faults     context managers that inject a fault and always heal; `ProcessControl`
    chaos.nemesis    seeded fault schedules, `NemesisRunner`, `ddmin`

This package never imports `harness` or `contracts`.
"""

from sagaproof.chaos.errors import ChaosError

__all__ = ["ChaosError"]

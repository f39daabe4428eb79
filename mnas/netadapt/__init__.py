"""NetAdapt: shrink a network layer by layer to a latency target (Yang et al. 2018; MobileNetV3 §4.2).

Rooms:

- :mod:`~mnas.netadapt.proposals`  shrinkable widths (expansion layers, residual groups) and the
  smallest cut saving δ of predicted latency; pure architecture data, no torch
- :mod:`~mnas.netadapt.surgery`    weight inheritance: keep the largest-L2-norm filters, slice the rest
- :mod:`~mnas.netadapt.finetune`   short fine-tuning jobs and the local/Ray backends that run them
- :mod:`~mnas.netadapt.loop`       the resumable loop and its run folder
- :mod:`~mnas.netadapt.report`     the path as a table, and its plot

::

    from mnas.netadapt import NetAdaptConfig, run_netadapt
    cfg = NetAdaptConfig(arch=str(zoo.get("mobilenet_v3_large")), device="pixel1", target_ms=43.0)
    run_netadapt(cfg, "runs/na1", workers=2)

Importing this package does not import torch.
"""

from mnas.netadapt.loop import BUDGETS, NetAdapt, NetAdaptConfig, minimum_latency, resume_netadapt, run_netadapt
from mnas.netadapt.proposals import Proposal, Slot, propose, residual_groups, slots

__all__ = ["BUDGETS", "NetAdapt", "NetAdaptConfig", "Proposal", "Slot", "minimum_latency", "propose",
           "residual_groups", "resume_netadapt", "run_netadapt", "slots"]

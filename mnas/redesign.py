"""MobileNetV3's manual redesign steps (Howard et al. 2019, Sec. 5.3–5.4), as data transforms.

After the automated search (MnasNet) and NetAdapt, the paper changed the network by
hand. Each step here is a pure function ``Network -> Network`` so a replay can apply
them one at a time and report each step's effect, and a researcher can reorder,
drop or add steps.

Paper figures (Pixel-1, float): the efficient last stage saves 7 ms (11 %) and 30 M
multiply-adds; the 16-filter h-swish stem saves 2 ms and 10 M multiply-adds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from mnas.arch import Act, Bneck, Network, se_channels
from mnas.errors import MnasError


def stem_16_hswish(net: Network) -> Network:
    """Stem with 16 filters and h-swish instead of 32 with ReLU (Sec. 5.3.1).

    A first block without expansion (its depthwise runs on the stem's channels) follows
    the stem's new width.
    """
    old = net.stem.out
    stem = dataclasses.replace(net.stem, out=16, act=Act.HSWISH)
    blocks = list(net.blocks)
    if blocks and isinstance(blocks[0], Bneck) and blocks[0].exp == old:
        b = blocks[0]
        blocks[0] = dataclasses.replace(b, exp=16, se=se_channels(16) if b.se else 0)
    return dataclasses.replace(net, stem=stem, blocks=tuple(blocks))


def efficient_last_stage(net: Network) -> Network:
    """Move the last 1×1 expansion after pooling (Sec. 5.3, Fig. 5).

    The last bottleneck's depthwise filtering and projection are removed; its 1×1
    expansion becomes the head's conv (computed at 7×7, before pooling), and the old
    1×1 feature layer becomes a hidden layer on the pooled 1×1 vector, without BN.
    """
    if not net.blocks or not isinstance(net.blocks[-1], Bneck):
        raise MnasError("efficient last stage: the network must end with an inverted-residual block")
    if net.head.hidden:
        raise MnasError("efficient last stage: the head already has a hidden layer after pooling (already applied?)")
    last = net.blocks[-1]
    feature = net.head.conv or last.out
    head = dataclasses.replace(net.head, conv=last.exp, conv_act=Act.HSWISH, hidden=feature, hidden_act=Act.HSWISH)
    return dataclasses.replace(net, blocks=net.blocks[:-1], head=head)


def hswish_from(channels: int = 80) -> Callable[[Network], Network]:
    """h-swish in the layers with at least ``channels`` outputs, ReLU before (Sec. 5.2)."""

    def step(net: Network) -> Network:
        blocks = tuple(
            dataclasses.replace(b, act=Act.HSWISH if b.out >= channels else Act.RELU) for b in net.blocks
        )
        head = dataclasses.replace(net.head, conv_act=Act.HSWISH, hidden_act=Act.HSWISH)
        return dataclasses.replace(net, blocks=blocks, head=head)

    step.__name__ = f"hswish_from_{channels}"
    return step


def se_quarter_expansion(net: Network) -> Network:
    """Squeeze-excite width fixed at 1/4 of the expansion layer (Sec. 5.3)."""
    blocks = tuple(
        dataclasses.replace(b, se=se_channels(b.exp)) if isinstance(b, Bneck) and b.se else b for b in net.blocks
    )
    return dataclasses.replace(net, blocks=blocks)


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    apply: Callable[[Network], Network]
    paper_ms: float | None = None  # the paper's reported change on Pixel-1
    paper_madds_m: float | None = None
    # why the step does not apply to a network ("" when it does); None: it applies wherever ``apply`` succeeds
    skip_reason: Callable[[Network], str] | None = None

    def why_not(self, net: Network) -> str:
        """Why this step is skipped for ``net``, or "" when it applies."""
        return self.skip_reason(net) if self.skip_reason is not None else ""


def _stem_is_small(net: Network) -> str:
    return f"stem already has {net.stem.out} filters (≤ 16)" if net.stem.out <= 16 else ""


V3_STEPS: tuple[Step, ...] = (
    Step("last_stage", "efficient last stage: 1×1 expansion moved after pooling, last bottleneck removed",
         efficient_last_stage, paper_ms=-7.0, paper_madds_m=-30.0),
    Step("stem16", "stem 32 → 16 filters with h-swish", stem_16_hswish, paper_ms=-2.0, paper_madds_m=-10.0,
         skip_reason=_stem_is_small),
    Step("hswish80", "h-swish from the layers with ≥ 80 channels on", hswish_from(80)),
    Step("se_quarter", "squeeze-excite fixed at 1/4 of the expansion width", se_quarter_expansion),
)

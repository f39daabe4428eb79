"""The paper-style table of a network (MobileNetV3 paper, Tables 1–2)."""

from __future__ import annotations

from mnas.arch import Act, Bneck, Conv, DepthSep, Network

_NL = {Act.RELU: "RE", Act.RELU6: "RE6", Act.HSWISH: "HS", Act.SWISH: "SW", Act.NONE: "-"}


def rows(net: Network) -> list[dict]:
    """One dict per row: input, operator, exp size, #out, SE, NL, stride."""
    out = []
    for layer in net.layers():
        b = layer.block
        inp = f"{layer.hin}²×{layer.cin}"
        if isinstance(b, Conv):
            op, exp, se = f"conv2d {b.kernel}×{b.kernel}", "-", ""
        elif isinstance(b, DepthSep):
            op, exp, se = f"dwsep {b.kernel}×{b.kernel}", "-", ""
        else:
            assert isinstance(b, Bneck)
            op, exp, se = f"bneck {b.kernel}×{b.kernel}", str(b.exp), ("✓" if b.se else "")
            if b.se:
                se = f"✓{b.se}"
            if layer.residual:
                op += " +"
        out.append({"input": inp, "operator": op, "exp": exp, "out": b.out, "se": se, "nl": _NL[b.act], "stride": b.stride})
    h, c = net.final_size, net.final_channels
    head = net.head
    if head.conv:
        out.append({"input": f"{h}²×{c}", "operator": "conv2d 1×1", "exp": "-", "out": head.conv, "se": "", "nl": _NL[head.conv_act], "stride": 1})
        c = head.conv
    out.append({"input": f"{h}²×{c}", "operator": "pool", "exp": "-", "out": "-", "se": "", "nl": "-", "stride": 1})
    if head.hidden:
        out.append({"input": f"1²×{c}", "operator": "conv2d 1×1, NBN", "exp": "-", "out": head.hidden, "se": "", "nl": _NL[head.hidden_act], "stride": 1})
        c = head.hidden
    out.append({"input": f"1²×{c}", "operator": "conv2d 1×1, NBN", "exp": "-", "out": "k", "se": "", "nl": "-", "stride": 1})
    return out


def render(net: Network) -> str:
    cols = [("input", "Input"), ("operator", "Operator"), ("exp", "exp size"), ("out", "#out"), ("se", "SE"), ("nl", "NL"), ("stride", "s")]
    table = rows(net)
    widths = {k: max(len(h), *(len(str(r[k])) for r in table)) for k, h in cols}
    lines = ["  ".join(h.ljust(widths[k]) for k, h in cols), "  ".join("-" * widths[k] for k, _ in cols)]
    for r in table:
        lines.append("  ".join(str(r[k]).ljust(widths[k]) for k, _ in cols))
    return "\n".join(lines)

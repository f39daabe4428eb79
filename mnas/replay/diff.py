"""Architecture diffs: a replayed network beside the published one, row by row of the paper-style table
(:mod:`mnas.archtable`), and per-column agreement counts."""

from __future__ import annotations

from mnas.arch import Network


def side_by_side(found: Network, published: Network) -> list[dict]:
    """The two networks' paper-style rows next to each other (row i beside row i; the shorter one padded)."""
    from mnas.archtable import rows

    a, b = rows(found), rows(published)
    keys = ("operator", "exp", "out", "se", "nl", "stride")
    blank = {k: "" for k in ("input", *keys)}
    out = []
    for i in range(max(len(a), len(b))):
        ra, rb = (a[i] if i < len(a) else blank), (b[i] if i < len(b) else blank)
        same = all(str(ra[k]) == str(rb[k]) for k in keys)
        out.append({"row": i, "found": ra, "published": rb, "same": same})
    return out


def agreement(found: Network, published: Network) -> dict:
    """Per paper-table column (kernel, exp, #out, SE, NL, stride): how many blocks, index-aligned, have the
    published value; plus both block counts. Stem and head are compared separately."""
    from mnas.arch import Bneck

    def cols(b) -> dict:
        bneck = isinstance(b, Bneck)
        return {"kernel": b.kernel, "exp": b.exp if bneck else None, "out": b.out, "se": bool(bneck and b.se),
                "nl": b.act.value, "stride": b.stride}

    pairs = list(zip(found.blocks, published.blocks))
    out = {"blocks_found": len(found.blocks), "blocks_published": len(published.blocks), "compared": len(pairs)}
    for k in ("kernel", "exp", "out", "se", "nl", "stride"):
        out[k] = sum(cols(a)[k] == cols(b)[k] for a, b in pairs)
    out["stem"] = (found.stem.out, found.stem.act.value) == (published.stem.out, published.stem.act.value)
    out["head"] = found.head == published.head
    return out

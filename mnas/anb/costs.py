"""Accel-NASBench's costs and model inputs, counted from the choices alone.

Per layer slot and per block multiply-adds and parameters (:func:`layer_costs`,
:func:`block_costs`), and the input matrices the surrogates are fitted on
(:func:`features`, :func:`one_hot`, :func:`block_one_hot`, :func:`slot_inputs`,
:func:`kernel_inputs`).
"""

from __future__ import annotations

import numpy as np

from mnas.anb.choices import (BLOCKS, CHOICE_COLUMNS, CIN, COUT, EXPANSIONS, KERNELS, MAX_LAYERS, RESOLUTION, SE, STRIDES,
                              block_digits)

SLOTS = sum(MAX_LAYERS)  # layer positions over the 7 blocks (22): a block of l layers fills its first l
SLOT_BLOCK = np.repeat(np.arange(BLOCKS), MAX_LAYERS)  # the block of each slot


def layer_costs(choices: np.ndarray, resolution: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """Per layer slot multiply-adds and parameters (millions, ``(n, 22)`` each; 0 where a block is shorter).

    Counted from the choices alone (1x1 expansion unless e = 1, depthwise k x k,
    squeeze-excite int(0.25 x the layer's input) wide, 1x1 projection; no BN).
    """
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    macs = np.zeros((len(c), SLOTS))
    params = np.zeros((len(c), SLOTS))
    h = -(-resolution // 2)
    s = 0
    for b in range(BLOCKS):
        e, k, l, se = (c[:, b, i].astype(float) for i in range(4))
        ho = -(-h // STRIDES[b])
        for j in range(MAX_LAYERS[b]):
            on = l > j
            cin = CIN[b] if j == 0 else COUT[b]
            hi = h if j == 0 else ho
            ex = cin * e
            sq = max(1, int(cin * 0.25))
            expand = np.where(e != 1, cin * ex, 0.0)
            dw = k * k * ex
            sew = se * (2 * ex * sq + ex + sq)
            proj = ex * COUT[b]
            macs[:, s] = on * (expand * hi * hi + dw * ho * ho + se * 2 * ex * sq + proj * ho * ho)
            params[:, s] = on * (expand + dw + sew + proj)
            s += 1
        h = ho
    return macs / 1e6, params / 1e6


def block_costs(choices: np.ndarray, resolution: int = RESOLUTION,
                layers: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per block multiply-adds and parameters (millions, ``(n, 7)`` each) of the MBConv layers
    (summed from :func:`layer_costs`, or from ``layers`` where already computed)."""
    macs, params = layers if layers is not None else layer_costs(choices, resolution)
    per_block = lambda v: np.add.reduceat(v, np.cumsum((0,) + MAX_LAYERS[:-1]), axis=1)  # noqa: E731
    return per_block(macs), per_block(params)


FEATURE_NAMES = (
    list(CHOICE_COLUMNS)
    + [f"block{b}_macs" for b in range(BLOCKS)]
    + [f"block{b}_params" for b in range(BLOCKS)]
    + ["macs", "params", "layers", "se_layers"]
)


def features(choices: np.ndarray) -> np.ndarray:
    """The surrogates' feature matrix ``(n, len(FEATURE_NAMES))`` from choices alone."""
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    macs, params = block_costs(c)
    layers = c[:, :, 2]
    return np.concatenate([
        c.reshape(len(c), -1).astype(float), macs, params,
        macs.sum(1, keepdims=True), params.sum(1, keepdims=True),
        layers.sum(1, keepdims=True).astype(float), (layers * c[:, :, 3]).sum(1, keepdims=True).astype(float),
    ], axis=1)


def one_hot(choices: np.ndarray) -> np.ndarray:
    """One column per (block, field, option): the linear baseline's and ridge model's inputs."""
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    cols = []
    for b in range(BLOCKS):
        for f, opts in enumerate((EXPANSIONS, KERNELS, tuple(range(1, MAX_LAYERS[b] + 1)), SE)):
            for o in opts:
                cols.append(c[:, b, f] == o)
    return np.stack(cols, axis=1).astype(float)


def block_one_hot(choices: np.ndarray) -> np.ndarray:
    """``(n, 7 * 48)`` one-hot of each block's joint choice: an additive per-block table is linear in it."""
    d = block_digits(choices)
    out = np.zeros((len(d), BLOCKS * 48))
    out[np.arange(len(d))[:, None], np.arange(BLOCKS) * 48 + d] = 1.0
    return out


def slot_inputs(choices: np.ndarray, layers: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``(n, 22 * 6)``: per layer slot whether it is there, then (0 where not) expansion / 6, kernel 5,
    squeeze-excite, log(1 + multiply-adds / 0.1 M) and log(1 + parameters / 1 k).

    Unlike one-hot choices this orders the options (2 layers lie between 1 and 3; expansion 4
    nearer 6 than 1) and prices each layer where it sits.
    """
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    slot = np.concatenate([np.arange(n) for n in MAX_LAYERS])
    per = c[:, SLOT_BLOCK, :]  # (n, 22, 4): each slot's block choices
    on = (per[:, :, 2] > slot).astype(float)
    macs, params = layers if layers is not None else layer_costs(c)
    cols = np.stack([on, on * per[:, :, 0] / 6.0, on * (per[:, :, 1] == 5), on * per[:, :, 3],
                     np.log1p(macs * 10.0), np.log1p(params * 1e3)], axis=2)
    return cols.reshape(len(c), -1)


def kernel_inputs(choices: np.ndarray, slots: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled inputs of the kernel model: one-hot choices, then log per-block and total macs/params
    (then, with ``slots``, :func:`slot_inputs`)."""
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    per_layer = layer_costs(c)
    macs, params = block_costs(c, layers=per_layer)
    cont = np.log(np.concatenate([macs, params, macs.sum(1, keepdims=True), params.sum(1, keepdims=True)], axis=1))
    if slots:
        cont = np.concatenate([cont, slot_inputs(c, per_layer)], axis=1)
    return one_hot(c), cont

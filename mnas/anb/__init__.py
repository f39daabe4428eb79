"""Accel-NASBench: the benchmark's CSV, the per-block choices of a network, their costs, fitted surrogates.

Accel-NASBench (Ahmad et al. 2024, repository afzalxo/Accel-NASBench, Apache-2.0)
trained 5,138 networks of the MnasNet search space on EfficientNet-B0's backbone on
ImageNet (a 16-epoch proxy) and measured them on six accelerators. Its networks
have seven blocks (strides 1,2,2,2,1,2,1; outputs 16,24,40,80,112,192,320 after a
32-channel stem); per block an expansion {1,4,6}, a kernel {3,5}, a number of
layers {1,2,3} ({1,2,3,4} for block 5) and squeeze-excite on/off.

One module per job, every public name re-exported here (``from mnas.anb import X``):

* :mod:`mnas.anb.choices`: the ``(7, 4)`` ``[e, k, l, se]`` choices of a network, its compact
  ``EKLS`` encoding, and the way to and from a :class:`~mnas.arch.Network`;
* :mod:`mnas.anb.table`: the benchmark's CSV (:func:`load_csv`), validated, read once per process;
* :mod:`mnas.anb.costs`: multiply-adds/parameters from the choices alone and the surrogates' inputs;
* :mod:`mnas.anb.surrogate`: fitted surrogates (:class:`Surrogate`) read from their JSON files;
* :mod:`mnas.anb.release`: the benchmark's release (one JSON per network) converted to the CSV
  (``mnas data fetch accel_nasbench``).

Nothing is read at import time.
"""

from mnas.anb.choices import (BLOCKS, CHOICE_COLUMNS, CIN, COUT, EFFICIENTNET_B0, EXPANSIONS, FIELDS, HEAD_CONV, KERNELS,
                              MAX_LAYERS, RESOLUTION, SE, STEM_OUT, STRIDES, anb_space, block_digits, check_choices,
                              choices_many, choices_of, choices_of_network, format_code, looks_like_code, network_of,
                              pack, parse_code)
from mnas.anb.costs import (FEATURE_NAMES, SLOT_BLOCK, SLOTS, block_costs, block_one_hot, features, kernel_inputs,
                            layer_costs, one_hot, slot_inputs)
from mnas.anb.surrogate import Surrogate
from mnas.anb.table import (DEFAULT_CSV, DEVICE_COLUMNS, ENV_VAR, OPTIONAL_COLUMNS, REPO, REQUIRED_COLUMNS, AnbData,
                            default_csv, iter_codes, load_csv)

__all__ = [
    "BLOCKS", "CHOICE_COLUMNS", "CIN", "COUT", "EFFICIENTNET_B0", "EXPANSIONS", "FIELDS", "HEAD_CONV", "KERNELS",
    "MAX_LAYERS", "RESOLUTION", "SE", "STEM_OUT", "STRIDES", "anb_space", "block_digits", "check_choices",
    "choices_many", "choices_of", "choices_of_network", "format_code", "looks_like_code", "network_of", "pack",
    "parse_code",
    "FEATURE_NAMES", "SLOT_BLOCK", "SLOTS", "block_costs", "block_one_hot", "features", "kernel_inputs",
    "layer_costs", "one_hot", "slot_inputs",
    "Surrogate",
    "DEFAULT_CSV", "DEVICE_COLUMNS", "ENV_VAR", "OPTIONAL_COLUMNS", "REPO", "REQUIRED_COLUMNS", "AnbData",
    "default_csv", "iter_codes", "load_csv",
]

"""mnas: hardware-aware neural architecture search (MnasNet → NetAdapt → MobileNetV3).

Rooms, by name:

- :mod:`mnas.arch`      architectures as frozen data, text form, YAML/JSON
- :mod:`mnas.zoo`       registered reference networks (MobileNetV1/V2/V3, MnasNet)
- :mod:`mnas.model`     the one builder, architecture → ``torch.nn.Module``
- :mod:`mnas.counting`  parameters, multiply-adds, activation memory, analytically
- :mod:`mnas.space`     search spaces (files under ``search_spaces/``)
- :mod:`mnas.latency`   per-device lookup tables, profiler, predictor, validation
- :mod:`mnas.accuracy`  evaluators: proxy training, supernet, predictor, benchmark table
- :mod:`mnas.search`    reward, strategies, the search loop
- :mod:`mnas.netadapt`  layer-wise shrinking to a latency target
- :mod:`mnas.cli`       the ``mnas`` command

Nothing is read or downloaded at import time.
"""

__version__ = "0.1.0"

"""What the strategies share: the categorical search space as Optuna distributions."""

from __future__ import annotations

from typing import Any, Sequence

from mnas.errors import MnasError

_PRIMITIVE = (type(None), bool, int, float, str)


def to_param(option: Any) -> Any:
    """An option as an Optuna categorical value (None/bool/int/float/str); others by their text."""
    return option if isinstance(option, _PRIMITIVE) else str(option)


def distributions(choices: Sequence) -> dict:
    """``{choice.name: CategoricalDistribution(options)}`` in the space's walk order."""
    from optuna.distributions import CategoricalDistribution

    out: dict = {}
    for c in choices:
        if c.name in out:
            raise MnasError(f"search space: choice name {c.name!r} appears twice")
        params = tuple(to_param(o) for o in c.options)
        if len(set(map(repr, params))) != len(params):
            raise MnasError(f"search space: choice {c.name!r} lists an option twice: {list(c.options)}")
        out[c.name] = CategoricalDistribution(params)
    return out


def sample_from_params(choices: Sequence, params: dict) -> dict:
    """The space's sample (name -> option) for a trial's parameters."""
    sample = {}
    for c in choices:
        if c.name not in params:
            raise MnasError(f"trial has no value for choice {c.name!r}")
        value = params[c.name]
        for o in c.options:
            if to_param(o) == value and type(to_param(o)) is type(value):
                sample[c.name] = o
                break
        else:
            raise MnasError(f"choice {c.name!r}: {value!r} is not one of {list(c.options)}")
    return sample


def check_categorical(space: dict, strategy: str) -> None:
    from optuna.distributions import CategoricalDistribution

    for name, d in space.items():
        if not isinstance(d, CategoricalDistribution):
            raise MnasError(f"strategy {strategy!r}: parameter {name!r} is not categorical ({type(d).__name__})")

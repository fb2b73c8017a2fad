"""Checks of single training-config values (numbers, choices, the cache folder) and of the
decorrelation section against the model and the registered schedulers; each raises
:class:`ConfigError` naming the key and the fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..errors import GNNFFError, did_you_mean
from ..io_utils import resolve_path
from .config_schema import ConfigError

__all__ = [
    "check_cache",
    "check_choice",
    "check_number",
    "check_scheduler",
    "check_scheduler_options",
    "check_variant_fits_model",
]


def check_variant_fits_model(variant: str, model: dict[str, Any]) -> None:
    """Refuse, at config load, a loss variant whose features the model cannot have."""
    from gnnff.potentials import default_model_config

    try:
        base = default_model_config(model.get("family", "allegro"))
    except ValueError as exc:
        raise ConfigError(f"model.family: {exc}") from None
    # a family without these keys (a plug-in) has no such features to refuse
    hidden = model.get("mlp_hidden", base.get("mlp_hidden"))
    if variant in ("post_activation", "per_pair") and isinstance(hidden, list) and not hidden:
        raise ConfigError(
            f"decorrelation.variant {variant!r} acts on the latent MLPs' hidden layer, but "
            "model.mlp_hidden is empty; give the MLPs a hidden layer (e.g. [64]) or use "
            "variant 'residual' or 'tensor'"
        )
    l_max = model.get("l_max", base.get("l_max"))
    if variant == "tensor" and isinstance(l_max, int) and l_max < 1:
        raise ConfigError(
            "decorrelation.variant 'tensor' acts on the norms of the l > 0 tensor features, "
            f"but model.l_max is {l_max}; set model.l_max >= 1 or choose another variant"
        )


def check_scheduler_options(dc: dict[str, Any]) -> None:
    """``decorrelation.scheduler_options``: the settings the scheduler declares in its factory's
    ``options`` (a dict of defaults; filled in here) and checks in an optional
    ``validate_options(options)``. A scheduler without ``options`` takes none. ConfigError
    naming the key and the valid ones."""
    from gnnff.extensions import SCHEDULERS

    name, given = dc["scheduler"], dc["scheduler_options"]
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ConfigError(
            f"decorrelation.scheduler_options must be a mapping of the {name!r} scheduler's "
            f"settings, got {given!r}"
        )
    factory = SCHEDULERS.get(name)
    own = getattr(factory, "options", None)
    if not isinstance(own, dict):
        if given:
            raise ConfigError(
                f"decorrelation.scheduler_options: the {name!r} scheduler takes no options "
                f"(got {', '.join(map(str, given))}); its settings are the decorrelation keys"
            )
        dc["scheduler_options"] = {}
        return
    for key in given:
        if key not in own:
            raise ConfigError(
                f"unknown key decorrelation.scheduler_options.{key} for the {name!r} scheduler"
                f"{did_you_mean(key, own)} (valid keys: {', '.join(own) or 'none'})"
            )
    options = {**copy.deepcopy(own), **copy.deepcopy(given)}
    check = getattr(factory, "validate_options", None)
    if check is not None:
        try:
            check(options)
        except ValueError as exc:
            if isinstance(exc, GNNFFError):
                raise
            raise ConfigError(f"decorrelation.scheduler_options ({name!r}): {exc}") from None
    dc["scheduler_options"] = options


def check_scheduler(name: Any) -> None:
    """A registered lambda scheduler (`gnnff.extensions.SCHEDULERS`); else ConfigError
    listing them."""
    from gnnff.extensions import SCHEDULERS

    if not isinstance(name, str):
        raise ConfigError(f"decorrelation.scheduler: {SCHEDULERS.unknown_message(name)}")
    try:
        SCHEDULERS.get(name)
    except ValueError as exc:
        raise ConfigError(f"decorrelation.scheduler: {exc}") from None


def check_number(sec: str, key: str, value, lo=None, hi=None, integer=False, allow_none=False):
    if value is None and allow_none:
        return None
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{sec}.{key} must be {kind}, got {value!r}")
    if lo is not None and value < lo:
        raise ConfigError(f"{sec}.{key} must be >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{sec}.{key} must be <= {hi}, got {value!r}")
    return value if integer else float(value)


def check_choice(sec: str, key: str, value, choices):
    if value not in choices:
        raise ConfigError(
            f"{sec}.{key} = {value!r} is not valid{did_you_mean(value, choices)} "
            f"(choose one of {', '.join(map(str, choices))})"
        )
    return value


def check_cache(value: Any, base: str | Path | None, train: str) -> str | None:
    """``data.cache`` as an absolute folder path (None: off); ConfigError for a bad value."""
    if value is None or value is False:
        return None
    if value is True:  # next to the training file (``file@index``: the file)
        text = str(train)
        value = (text if Path(text).exists() else text.rsplit("@", 1)[0]) + ".gnnff-cache"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"data.cache must be null (no cache), true (a folder next to the training file) or "
            f"a folder path, got {value!r}"
        )
    r = resolve_path(value, base)
    if r.path.exists() and not r.path.is_dir():
        raise ConfigError(f"{r.describe('data.cache')} exists and is not a folder; give a folder")
    return str(r.path)

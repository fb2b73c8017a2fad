"""Open extension points: one registry per kind of component, filled by gnnff itself and by
other packages through entry points.

Kinds (registry, entry-point group, what a name maps to):

* ``MODELS`` (``gnnff.models``): a :class:`gnnff.potentials.families.ModelFamily`;
* ``SOFTMAX`` (``gnnff.softmax``): a softmax backend factory ``(bits, config) -> Module``
  (:mod:`gnnff.potentials.softmax` states the backend interface);
* ``CRITERIA`` (``gnnff.criteria``): a :class:`gnnff.stability.criteria.Criterion` subclass;
* ``SCHEDULERS`` (``gnnff.schedulers``): a decorrelation lambda-scheduler factory
  ``(decorrelation_config, steps_per_epoch, total_epochs) -> LambdaScheduler``
  (:mod:`gnnff.training.schedulers`).

The built-ins register themselves when their module is imported (``MODELS.register("allegro",
...)``); each registry knows which gnnff modules hold built-ins and imports them only when a
look-up misses, so that a float model never imports the LUT emulator and ``gnnff --help``
imports nothing heavy. Another package registers in its ``pyproject.toml``::

    [project.entry-points."gnnff.softmax"]
    my-softmax = "my_package.softmax:make_backend"

The entry point's name is the registered name; its object is loaded (imported) on the first
look-up of that name, so a broken plug-in only fails when it is asked for, with a
:class:`PluginError` naming the distribution and the entry point. In-process registration
(``SOFTMAX.register(name, obj)``) is for tests and notebooks; ``unregister`` undoes it.

This module is a bottom-layer utility: it imports only the standard library and
:mod:`gnnff.errors`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, overload

from .errors import GNNFFError, did_you_mean

__all__ = [
    "CRITERIA",
    "MODELS",
    "REGISTRIES",
    "SCHEDULERS",
    "SOFTMAX",
    "PluginError",
    "Registry",
    "entry_points",
]

T = TypeVar("T")


class PluginError(GNNFFError, ValueError):
    """An unknown name, a clashing registration or a plug-in that failed to load."""


def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """The installed entry points of ``group`` (tests replace this to fake plug-ins)."""
    return list(importlib.metadata.entry_points(group=group))


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "an unknown distribution"


class Registry:
    """Names -> objects of one kind, filled by built-in modules, entry points and
    :meth:`register`.

    kind: the word used in messages (e.g. ``"softmax backend"``). group: the entry-point group.
    builtin_modules: gnnff modules whose import registers the built-ins (imported on a miss).
    """

    def __init__(self, kind: str, group: str, builtin_modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.group = group
        self.builtin_modules = builtin_modules
        self._entries: dict[str, Any] = {}
        self._builtin: set[str] = set()
        self._origin: dict[str, str] = {}
        self._pending_builtins = list(builtin_modules)
        self._eps: dict[str, importlib.metadata.EntryPoint] | None = None

    # ------------------------------------------------------------------ registering
    @overload
    def register(
        self, name: str, obj: None = None, *, replace: bool = False, builtin: bool = False
    ) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, replace: bool = False, builtin: bool = False) -> T: ...

    def register(
        self, name: str, obj: Any = None, *, replace: bool = False, builtin: bool = False
    ) -> Any:
        """Register ``obj`` as ``name``; without ``obj``, a decorator. Returns ``obj``.

        builtin: set by gnnff's own modules only (built-ins are the defaults where a kind has
        defaults, e.g. the stability criteria enabled when none are named). Raises
        :class:`PluginError` when ``name`` is taken (pass ``replace=True`` to override on
        purpose) or is not a non-empty string."""
        if not isinstance(name, str) or not name.strip():
            raise PluginError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if obj is None:

            def decorator(target: T) -> T:
                self.register(name, target, replace=replace, builtin=builtin)
                return target

            return decorator
        if name in self._entries and not replace and self._entries[name] is not obj:
            raise PluginError(
                f"{self.kind} {name!r} is already registered (by {self._origin[name]}); "
                "choose another name or pass replace=True"
            )
        self._entries[name] = obj
        self._origin[name] = "gnnff" if builtin else "register()"
        if builtin:
            self._builtin.add(name)
        else:
            self._builtin.discard(name)
        return obj

    def unregister(self, name: str) -> None:
        """Remove ``name`` (registered in-process or loaded); KeyError if absent."""
        del self._entries[name]
        self._origin.pop(name, None)
        self._builtin.discard(name)

    @contextmanager
    def registered(self, name: str, obj: Any) -> Iterator[Any]:
        """``with REGISTRY.registered(name, obj):`` registers for the block only."""
        self.register(name, obj)
        try:
            yield obj
        finally:
            if self._entries.get(name) is obj:
                self.unregister(name)

    # ------------------------------------------------------------------ loading
    def _load_builtins(self, until: str | None = None) -> None:
        while self._pending_builtins and (until is None or until not in self._entries):
            importlib.import_module(self._pending_builtins[0])
            self._pending_builtins.pop(0)

    def _entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        if self._eps is None:
            found: dict[str, importlib.metadata.EntryPoint] = {}
            for ep in entry_points(self.group):
                if ep.name in found:
                    warnings.warn(
                        f"{self.kind} {ep.name!r} is offered by two entry points "
                        f"({_dist_name(found[ep.name])}, {_dist_name(ep)}); using the first",
                        stacklevel=3,
                    )
                    continue
                found[ep.name] = ep
            self._eps = found
        return self._eps

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> Any:
        try:
            obj = ep.load()
        except Exception as exc:
            raise PluginError(
                f"{self.kind} {ep.name!r}: entry point {ep.name} = {ep.value!r} (group "
                f"{self.group!r}) of {_dist_name(ep)} failed to load: "
                f"{type(exc).__name__}: {exc}; fix or uninstall that package"
            ) from exc
        if ep.name not in self._entries:  # importing it may have registered it already
            self._entries[ep.name] = obj
            self._origin[ep.name] = f"entry point {ep.value!r} of {_dist_name(ep)}"
        return self._entries[ep.name]

    def reload_entry_points(self) -> None:
        """Forget the entry points read so far (they are read again on the next miss)."""
        self._eps = None

    # ------------------------------------------------------------------ looking up
    def get(self, name: str) -> Any:
        """The object registered as ``name``: built-ins first, then entry points (loaded now).

        Raises :class:`PluginError` for an unknown name (listing the registered ones, with a
        did-you-mean hint) or an entry point that fails to import."""
        if name in self._entries:
            return self._entries[name]
        self._load_builtins(until=name)
        if name in self._entries:
            return self._entries[name]
        ep = self._entry_points().get(name)
        if ep is not None:
            return self._load_entry_point(ep)
        raise PluginError(self.unknown_message(name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def names(self) -> tuple[str, ...]:
        """Every registered name (built-ins in registration order, then the others sorted);
        entry points are listed without being loaded."""
        self._load_builtins()
        builtin = list(self._builtin_order())
        others = (set(self._entries) | set(self._entry_points())) - self._builtin
        return (*builtin, *sorted(others))

    def builtin_names(self) -> tuple[str, ...]:
        """The names gnnff itself registers, in registration order."""
        self._load_builtins()
        return self._builtin_order()

    def _builtin_order(self) -> tuple[str, ...]:
        """Built-ins by the position of their module in ``builtin_modules``, then by
        registration (so the order does not depend on which module was imported first)."""
        ranks = {m: i for i, m in enumerate(self.builtin_modules)}
        names = [n for n in self._entries if n in self._builtin]

        def rank(name: str) -> int:
            module = getattr(self._entries[name], "__module__", None)
            return ranks.get(module, len(ranks)) if isinstance(module, str) else len(ranks)

        return tuple(sorted(names, key=rank))

    def origin(self, name: str) -> str:
        """Who registered ``name``: "gnnff", "register()" or the entry point."""
        self.get(name)
        return self._origin[name]

    def unknown_message(self, name: object) -> str:
        """'unknown <kind> <name> (did you mean ...?) (registered: ...)'."""
        names = self.names()
        hint = did_you_mean(name, names)
        return (
            f"unknown {self.kind} {name!r}{hint} (registered: {', '.join(names) or 'none'}; "
            f"packages add more through the {self.group!r} entry-point group)"
        )

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r})"


MODELS = Registry("model family", "gnnff.models", ("gnnff.potentials.allegro.families",))
SOFTMAX = Registry(
    "softmax backend", "gnnff.softmax", ("gnnff.potentials.softmax", "gnnff.lut_accel.backends")
)
CRITERIA = Registry(
    "stability criterion",
    "gnnff.criteria",
    ("gnnff.stability.criteria", "gnnff.stability.rdf_criterion"),
)
SCHEDULERS = Registry("decorrelation scheduler", "gnnff.schedulers", ("gnnff.training.schedulers",))
REGISTRIES: dict[str, Registry] = {
    "models": MODELS,
    "softmax": SOFTMAX,
    "criteria": CRITERIA,
    "schedulers": SCHEDULERS,
}


def describe() -> dict[str, list[dict[str, str]]]:
    """Every kind's registered names and where they come from (loads entry points)."""
    out: dict[str, list[dict[str, str]]] = {}
    for kind, reg in REGISTRIES.items():
        rows = []
        for name in reg.names():
            try:
                origin = reg.origin(name)
            except PluginError as exc:
                origin = f"broken: {exc}"
            rows.append({"name": name, "origin": origin})
        out[kind] = rows
    return out

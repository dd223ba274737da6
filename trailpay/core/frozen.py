"""Fast construction of frozen slots dataclasses, for the engine's hot paths.

A frozen dataclass's generated `__init__` stores every field through
`object.__setattr__` (its own `__setattr__` refuses), several times slower than a
plain attribute store; the engine builds hundreds of thousands of entries, groups,
legs and books per second. `maker(cls)` returns a function with the same parameters
as `cls(...)` that stores the fields on an instance of a twin class (same slots, same
base, no frozen `__setattr__`) and then makes it a `cls` by `__class__` assignment,
which Python allows between classes of identical layout. What comes out is an
ordinary instance of `cls`: equal to, hashed, printed, pickled and frozen exactly like
the one `cls(...)` makes. It does not run `__post_init__`: callers needing its checks
run them. `replacer(cls)` is `dataclasses.replace` for one class, built the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, TypeVar

T = TypeVar("T")


def _twin(cls: type) -> type:
    base = cls.__bases__[0]
    twin = type(f"_{cls.__name__}Maker", (base,), {
        "__slots__": cls.__slots__, "__module__": __name__,
        # Both, so that attribute stores take the plain C path (a base's frozen __delattr__
        # alone would route every store through Python).
        "__setattr__": object.__setattr__, "__delattr__": object.__delattr__})
    probe = object.__new__(twin)
    probe.__class__ = cls  # fails here, at import, if the layouts ever differ
    return twin


def maker(cls: type[T]) -> Callable[..., T]:
    """A constructor for frozen slots dataclass `cls`: same parameters, no __post_init__."""
    params, body, env = [], [], {"_new": object.__new__, "_twin": _twin(cls), "_cls": cls}
    for f in fields(cls):
        if not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: maker() needs every field in __init__")
        if f.default is not MISSING:
            env[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
            body.append(f"    o.{f.name} = {f.name}")
        elif f.default_factory is not MISSING:
            env[f"_f_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            env["_MISSING"] = MISSING
            body.append(f"    o.{f.name} = _f_{f.name}() if {f.name} is _MISSING else {f.name}")
        else:
            params.append(f.name)
            body.append(f"    o.{f.name} = {f.name}")
    src = (f"def make({', '.join(params)}):\n    o = _new(_twin)\n" + "\n".join(body)
           + "\n    o.__class__ = _cls\n    return o\n")
    exec(src, env)  # noqa: S102 - generated from the class's own field names
    fn = env["make"]
    fn.__qualname__ = fn.__name__ = f"make_{cls.__name__}"
    return fn


def replacer(cls: type[T]) -> Callable[..., T]:
    """`dataclasses.replace` for instances of `cls` (keyword changes only, no __post_init__)."""
    names = [f.name for f in fields(cls)]
    env: dict[str, Any] = {"_new": object.__new__, "_twin": _twin(cls), "_cls": cls}
    params = ", ".join(f"{n}=_KEEP" for n in names)
    body = "\n".join(f"    o.{n} = old.{n} if {n} is _KEEP else {n}" for n in names)
    env["_KEEP"] = _KEEP = object()  # noqa: N806
    src = (f"def replace(old, /, *, {params}):\n    o = _new(_twin)\n{body}\n"
           "    o.__class__ = _cls\n    return o\n")
    exec(src, env)  # noqa: S102 - generated from the class's own field names
    fn = env["replace"]
    fn.__qualname__ = fn.__name__ = f"replace_{cls.__name__}"
    return fn

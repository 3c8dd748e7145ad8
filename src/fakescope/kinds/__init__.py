"""One package per detector kind (`single`, `ensemble`, `face_aware`, `zero_shot`), each
registering its :class:`Kind` with the registry, `fakescope.kind_registry`, whose names this
module re-exports so a kind package reads ``kinds.register(...)``. Generic code (the bundle
format, the loader, the exporter, the refitting commands) imports `fakescope.kind_registry`
itself: the kind packages sit above it in the layers ``make lint`` checks."""

from fakescope.kind_registry import (
    _REGISTRY,
    BUILTIN,
    COMMANDS,
    DEFAULT,
    Kind,
    command_modules,
    get,
    name_of,
    names,
    of_meta,
    register,
)

__all__ = [
    "BUILTIN",
    "COMMANDS",
    "DEFAULT",
    "Kind",
    "_REGISTRY",
    "command_modules",
    "get",
    "name_of",
    "names",
    "of_meta",
    "register",
]

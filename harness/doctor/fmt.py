"""Small text helpers shared by the doctor's checks: sizes as Kubernetes writes them, permission strings, lists."""

from __future__ import annotations

import stat

_BINARY_UNITS = (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024))


def size(n_bytes: int | float) -> str:
    """Bytes as a Kubernetes quantity where exact (``200Gi``), else with one decimal (``1.5Gi``)."""
    n = int(n_bytes)
    for unit, factor in _BINARY_UNITS:
        if n >= factor:
            if n % factor == 0:
                return f"{n // factor}{unit}"
            return f"{n / factor:.1f}{unit}"
    return f"{n}B"


def perms(mode: int) -> str:
    """``drwxr-xr-x (0755)``."""
    return f"{stat.filemode(mode)} ({stat.S_IMODE(mode):04o})"


def can_write(*, owner_uid: int, owner_gid: int, mode: int, uid: int, groups: set[int]) -> bool:
    """POSIX permission reasoning for write (and, on directories, search) by ``uid`` with ``groups``."""
    if uid == 0:
        return True
    need = 0o3 if stat.S_ISDIR(mode) else 0o2
    if owner_uid == uid:
        bits = (mode >> 6) & 0o7
    elif owner_gid in groups:
        bits = (mode >> 3) & 0o7
    else:
        bits = mode & 0o7
    return bits & need == need


def bullets(lines: list[str]) -> str:
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))

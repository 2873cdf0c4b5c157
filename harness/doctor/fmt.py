"""Small text helpers shared by the doctor's checks: permission strings and reasoning, numbered lists.

Sizes as Kubernetes writes them are ``harness.fmt.k8s_quantity``."""

from __future__ import annotations

import stat


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

"""What one window of the ``second_writer`` fault did, in the sentence its detail carries (no fault of its own).

``Outcome`` is what the window knew once it was lifted; ``describe`` is a pure function of it: no I/O, no clock, and
no other harness module."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    uid: int  # the uid and gid the writer sent in every request
    gid: int
    mode: str | None  # the chmod it was asked for (as the scenario wrote it)
    chown_data: bool  # the init chown was asked for
    where: str  # the data directory, as server:export path
    as_process: int  # the uid its process ran as
    python: str  # the interpreter, named when its process could not run as ``uid``
    events: tuple[dict[str, object], ...]  # its report lines (``second_writer_child.events``)
    write_bytes: int  # the size of each of its writes
    before: int  # Prometheus' entries when the window opened
    changed: tuple[str, ...]  # Prometheus' entries whose owner or mode changed, each "path old -> new"
    chowned: int  # entries the init chown changed
    chown_refused: str  # why the init chown stopped ("": it did not)
    restored: int  # owners put back after the window
    removed: int  # entries it created, removed after the window


def _name(path: object) -> str:
    return str(path).rsplit("/", 1)[-1]


def describe(o: Outcome) -> str:
    made = [_name(r["path"]) + ("/" if r.get("kind") == "dir" else "") for r in o.events if r.get("event") == "created"]
    final = next((r for r in reversed(o.events) if r.get("event") == "summary"), {})
    refused = [f"{r['op']} {_name(r['path'])}: {r['error']}" for r in o.events if r.get("event") == "refused"]
    foreign = [_name(r["path"]) for r in o.events if r.get("event") == "exists"]
    parts = [
        f"a second writer (uid {o.uid} gid {o.gid}, its own NFSv3 client"
        + (
            ""
            if o.as_process == o.uid
            else f"; its process ran as uid {o.as_process}, since uid {o.uid} cannot reach "
            f"{o.python}, and sent {o.uid}:{o.gid} in every request"
        )
        + f") in Prometheus' data directory {o.where}: "
        + (f"created {', '.join(made)}" if made else "created nothing")
        + (f" (chmod {o.mode})" if o.mode is not None and made else "")
        + f", {final.get('writes', 0)} writes of {o.write_bytes} bytes to its files"
        + (f", {final.get('failed_writes', 0)} refused" if final.get("failed_writes") else "")
    ]
    if foreign:
        parts.append(f"left alone what already existed: {', '.join(foreign)}")
    if refused:
        parts.append(f"the server refused it: {'; '.join(refused[:3])}")
    if o.chown_data:
        parts.append(
            f"init chown -R {o.uid}:{o.gid} as root: {o.chowned} entries"
            + (f", then refused: {o.chown_refused}" if o.chown_refused else "")
            + f"; {o.restored} put back after the window"
        )
    if o.changed:
        parts.append(
            f"{len(o.changed)} of Prometheus' {o.before} entries changed owner or mode in the window "
            f"({'; '.join(o.changed[:4])}{'; ...' if len(o.changed) > 4 else ''})"
        )
    else:
        parts.append(f"Prometheus' {o.before} entries kept their owners and modes")
    parts.append(f"removed afterwards: {o.removed} entries it created")
    return "; ".join(parts)

"""One writer per folder: an exclusive OS file lock on a review (or evaluation) folder.

Two front ends writing one review folder would interleave their budget-log lines and overwrite each
other's corrected segmentation (last writer wins). So a session holds an exclusive lock on
`<folder>/.iwuo.lock` (fcntl.flock on POSIX, msvcrt.locking on Windows) for its whole life. The OS
drops it when the session closes the file or the process dies, so a crash never leaves a stale lock.
Who holds it (front end, host, process id, since when) is written beside it, in `.iwuo.lock.json`,
for the message the next opener gets; that file is only believed while the lock is held.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from ..errors import BadInputError
from .atomic_files import atomic_write_text

LOCK_FILE = ".iwuo.lock"
#: Locks this process took ahead of the session that will own them (`iwuo review` locks its folder
#: before analysing into it); the session claims one instead of locking the folder a second time.
_for_a_session: dict[tuple[str, str], FolderLock] = {}


class FolderLockedError(BadInputError):
    """Another session holds the folder's lock; the message names it (exit code 2)."""

    def __init__(self, message: str, holder: Optional[LockHolder]):
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class LockHolder:
    front_end: str
    host: str
    pid: int
    since: float

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"{self.front_end} on {self.host} (process {self.pid}) since {since}"


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` without waiting; False if another open file holds it."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def read_holder(folder: str | os.PathLike, name: str = LOCK_FILE) -> Optional[LockHolder]:
    """The holder recorded beside the lock (None if unreadable); only meaningful while the lock is held."""
    try:
        data = json.loads((Path(folder) / f"{name}.json").read_text(encoding="utf-8"))
        return LockHolder(str(data["front_end"]), str(data["host"]), int(data["pid"]), float(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class FolderLock:
    """The exclusive lock on one folder, held from `acquire` until `release` (or the process ends).

    Locks are per open file, so a second session in the same process is refused too.
    """

    def __init__(self, folder: str | os.PathLike, front_end: str, name: str = LOCK_FILE):
        self.folder = Path(folder)
        self.front_end = front_end
        self.name = name
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, what: str = "review", for_a_session: bool = False) -> FolderLock:
        """Take the lock or raise FolderLockedError naming the session that has it. `for_a_session`: taken
        ahead for the session that `claim_lock` will hand it to."""
        if self.held:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / self.name, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            holder = read_holder(self.folder, self.name)
            who = holder.describe() if holder else "another session (holder unknown)"
            raise FolderLockedError(
                f"The {what} folder {self.folder} is open in {who}; one writer at a time. Close it there "
                f"(its lock goes when that program ends), or open it read-only.", holder)
        self._fd = fd
        if for_a_session:
            _for_a_session[self._key()] = self
        holder = LockHolder(self.front_end, socket.gethostname(), os.getpid(), time.time())
        try:
            atomic_write_text(self.folder / f"{self.name}.json", json.dumps(asdict(holder)))
        except OSError:  # the lock itself is what protects the folder; the name is for the message
            pass
        return self

    def release(self) -> None:
        """Give the lock up (idempotent). The holder file stays; it is ignored while nobody holds the lock."""
        if self._fd is None:
            return
        if _for_a_session.get(self._key()) is self:
            del _for_a_session[self._key()]
        fd, self._fd = self._fd, None
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def _key(self) -> tuple[str, str]:
        return str(self.folder.resolve()), self.name

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *_) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def lock_folder(folder: str | os.PathLike, front_end: str, what: str = "review", name: str = LOCK_FILE,
                for_a_session: bool = False) -> FolderLock:
    """Acquire and return the lock `name` of `folder` for `front_end` (e.g. 'Slicer', 'iwuo evaluate')."""
    return FolderLock(folder, front_end, name).acquire(what, for_a_session)


def claim_lock(folder: str | os.PathLike, name: str = LOCK_FILE) -> Optional[FolderLock]:
    """The lock this process took on `folder` for a session (lock_folder(..., for_a_session=True)), handed
    over once: a second session in the same process must lock the folder itself, and is refused."""
    return _for_a_session.pop((str(Path(folder).resolve()), name), None)

"""File-system helpers: atomic directory writes (build in a temp dir beside the destination, then rename it
into place), modes that follow the process umask, the ``used`` marker that ``wmprobe cache gc`` reads, and
dropping the pages of read-only memory maps from this process's resident set.

Modes: ``tempfile.mkdtemp`` / ``mkstemp`` create 0700 / 0600 whatever the umask, and a temp directory renamed
into place keeps its mode, so every temp made here is chmod-ed to what a plain ``mkdir`` / ``open`` would have
given (0777 / 0666 minus the umask: 0755 / 0644 under the usual 022). Lab-mates on a shared cluster read what
their umask lets them read, as with any other tool (docs/reliability.md, "Destinations")."""
from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def umask() -> int:
    """The process umask (read from /proc where possible: setting it to read it back is not thread-safe)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def dir_mode() -> int:
    """The mode ``mkdir`` gives a new directory under the current umask (0755 under 022)."""
    return 0o777 & ~umask()


def file_mode() -> int:
    """The mode ``open(..., "w")`` gives a new file under the current umask (0644 under 022)."""
    return 0o666 & ~umask()


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """``tempfile.mkdtemp`` in ``parent``, chmod-ed from 0700 to the umask's directory mode."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        os.chmod(tmp, dir_mode())
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def make_temp_file(parent: str | os.PathLike, prefix: str) -> str:
    """``tempfile.mkstemp`` in ``parent`` (closed), chmod-ed from 0600 to the umask's file mode; its path."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=parent)
    os.close(fd)
    try:
        os.chmod(tmp, file_mode())
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def swap_dir(tmp: Path, dest: Path) -> None:
    """Put the complete directory ``tmp`` at ``dest``: an existing ``dest`` is first renamed aside (so it is
    never half-deleted while the new one is missing), then ``tmp`` renamed into place, then the old one
    deleted. If the second rename fails the old ``dest`` is renamed back."""
    old = None
    if dest.exists() or dest.is_symlink():
        old = dest.parent / f".{dest.name}.old-{os.getpid()}-{tmp.name[-8:]}"
        os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except BaseException:
        if old is not None:
            with contextlib.suppress(OSError):   # another writer may have put its own dest there meanwhile
                os.rename(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() and not old.is_symlink() else old.unlink()


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike, prefix: str | None = None) -> Iterator[Path]:
    """Yield an empty temp dir next to ``dest``; on success it replaces ``dest`` (``swap_dir``), on any error
    it is deleted and ``dest`` is left as it was. Readers never see a half-written ``dest``. Whether ``dest``
    may be replaced at all is the caller's check (``wmprobe._dest.check_dest``)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(dest.parent, prefix or f".{dest.name}.")
    try:
        yield tmp
        swap_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def mark_used(entry: str | os.PathLike) -> None:
    """Touch ``entry/used``: a cache entry (latent shard, zoo checkpoint, generated dataset) was just used, so
    ``wmprobe cache gc`` keeps it. Best effort: a read-only cache is still usable."""
    path = os.path.join(entry, "used")
    with contextlib.suppress(OSError):
        try:
            os.utime(path)              # what Path.touch does for an existing file, without building a Path
        except FileNotFoundError:
            Path(path).touch()


def drop_pages(*arrays: Any) -> None:
    """Drop the resident pages of memory-mapped arrays (``np.load(mmap_mode="r")``, ``open_memmap(mode="w+")``)
    from this process.

    Pages of a mapping that were read or written count in the process's RSS until it is unmapped, so a pass
    over a large store or shard (or an import writing one) grows RSS with the data even though nothing is kept.
    ``MADV_DONTNEED`` on a SHARED file mapping only forgets the page-table entries: the next access faults the
    page back from the page cache, which holds the file's up-to-date contents (written pages included, still
    dirty until written back). Plain in-memory arrays and copy-on-write maps (mode ``c``, whose pages hold
    private changes that MADV_DONTNEED would discard) are left alone.
    """
    for a in arrays:
        m = getattr(a, "_mmap", None)  # np.memmap (and its views) keep the mmap.mmap object here
        if m is None or getattr(a, "mode", None) not in ("r", "r+", "w+") or not hasattr(m, "madvise"):
            continue
        with contextlib.suppress(ValueError, OSError):  # closed map / platform without MADV_DONTNEED
            m.madvise(mmap.MADV_DONTNEED)

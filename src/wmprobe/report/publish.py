"""Publishing a report atomically: built in a temp directory inside the results directory, then each file renamed
into place, then ``.report-complete`` written last (docs/reliability.md, "Destinations").

``.report-complete`` holds the digest of the records the report was built from and the files it wrote. A build
that failed or was killed leaves either the previous report with the previous digest (failed before any
rename) or no ``.report-complete`` at all (killed while renaming), so ``report_current`` is False and the next
``wmprobe run`` rebuilds it (``wmprobe report`` always rebuilds). Files the previous build wrote and this one did
not (a ``failed.csv`` once every cell succeeds) are removed; files wmprobe did not write are never touched.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from wmprobe.errors import WmprobeError

COMPLETE = ".report-complete"
TMP_PREFIX = ".report-tmp-"
FIRST, LAST = ("figures", "tables"), ("findings.json", "report.html")   # renamed in this order, report.html last


def records_digest(out: str | os.PathLike) -> str | None:
    """sha256 of ``out/records.parquet`` (else ``records.csv``); None when neither reads."""
    for name in ("records.parquet", "records.csv"):
        try:
            h = hashlib.sha256()
            with open(Path(out) / name, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            return f"{name}:{h.hexdigest()}"
        except OSError:
            continue
    return None


def _complete(out: Path) -> dict | None:
    try:
        doc = json.loads((out / COMPLETE).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def report_current(out: str | os.PathLike) -> bool:
    """Whether ``out`` holds a report whose build completed, from the records it holds now."""
    out = Path(out)
    doc = _complete(out)
    return (doc is not None and doc.get("records") == records_digest(out) and (out / "report.html").is_file()
            and all((out / f).is_file() for f in doc.get("files", [])))


def _order(files: list[str]) -> list[str]:
    rank = lambda f: (LAST.index(f) + 2 if f in LAST else 1 if f.split("/")[0] not in FIRST else 0, f)  # noqa: E731
    return sorted(files, key=rank)


@contextlib.contextmanager
def publishing(out: str | os.PathLike, digest: str | None) -> Iterator[Path]:
    """Yield an empty temp directory inside ``out``; when the block completes its files replace those of the
    previous report (``out/.report-complete`` removed first, written last with ``digest``). On any error the
    temp directory is deleted and ``out`` keeps the previous report and its digest."""
    from wmprobe._fs import make_temp_dir
    out = Path(out)
    for old in out.glob(TMP_PREFIX + "*"):  # leftovers of killed builds (an hour old: not a concurrent one)
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < time.time() - 3600:
                shutil.rmtree(old, ignore_errors=True)
    try:
        tmp = make_temp_dir(out, TMP_PREFIX)
    except OSError as exc:
        raise WmprobeError(f"cannot write the report into {out}: {exc.strerror or exc}") from None
    try:
        yield tmp
        files = _order([p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()])
        previous = (_complete(out) or {}).get("files", [])
        (out / COMPLETE).unlink(missing_ok=True)       # from here until the end the report is incomplete
        for f in files:
            (out / f).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / f, out / f)
        for f in set(previous) - set(files):            # only files a previous build listed as its own
            if isinstance(f, str) and ".." not in Path(f).parts and not Path(f).is_absolute():
                (out / f).unlink(missing_ok=True)
        done = out / f"{COMPLETE}.{os.getpid()}.tmp"
        done.write_text(json.dumps({"records": digest, "files": files, "time": time.time()}, indent=1) + "\n")
        os.replace(done, out / COMPLETE)
    except OSError as exc:
        raise WmprobeError(f"cannot write the report into {out}: {exc} (the report is marked incomplete and is "
                           "rebuilt by the next `wmprobe run` or `wmprobe report`)") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

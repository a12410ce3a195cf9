"""Where run folders live: a local (or shared) folder, or a cloud URI through pyarrow.

``--storage runs`` / ``/mnt/shared/runs``: run folders are written there directly; on a cluster
it must be a filesystem every node mounts.

``--storage s3://bucket/prefix`` (or ``gs://``, ``hdfs://``, ``abfs://``; pyarrow's query options
such as ``?endpoint_override=host:port&scheme=http`` pass through): Ray Tune writes trial
folders and checkpoints straight to the URI from whichever node runs the trial. The driver keeps
its own files (spec, run.json, events) in a local staging copy of the run folder, downloads the
trial folders there when the run ends, builds the tables, and uploads its files next to Ray's,
so the folder at the URI is complete and a report can be built from any copy of it. Write
access is checked before Ray starts.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hpo.errors import SpecError

SCHEMES = ("s3", "gs", "gcs", "hdfs", "abfs", "abfss")
EVENTS_FILE = "events.jsonl"  # the run's event log (hpo.runner.record)
DRIVER_FILES = {"spec.yaml", "run.json", EVENTS_FILE}  # written by the driver, not by Ray
# hpo's own log of a trial in its folder: {"config": ...}, then every result (hpo.runner.events)
TRIAL_LOG = "trial.jsonl"


@dataclass(frozen=True)
class Storage:
    root: Path  # local folder holding run folders (for a URI: the staging copy)
    uri: str | None = None  # the remote base, e.g. s3://bucket/runs?endpoint_override=...

    @property
    def is_remote(self) -> bool:
        return self.uri is not None

    def _fs(self) -> tuple[Any, str]:
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(self.uri)
        return fs, path.rstrip("/")

    def remote_path(self, local_dir: Path) -> str:
        """The filesystem path (without scheme) of a local run folder's remote twin."""
        _, base = self._fs()
        rel = Path(local_dir).resolve().relative_to(self.root.resolve())
        return f"{base}/{rel.as_posix()}"

    def display(self, local_dir: Path) -> str:
        if not self.is_remote:
            return str(local_dir)
        return f"{urlsplit(self.uri).scheme}://{self.remote_path(local_dir)}"

    def run_root(self, run_dir: Path) -> str:
        """Where a trial reads the run folder's files from: its local path, or its URI in the
        bucket with the storage's options and credentials (handed to trials in memory, through
        hpo.contract.Settings, never written to the run folder)."""
        if not self.is_remote:
            return str(Path(run_dir).resolve())
        parts = urlsplit(self.uri)
        rel = Path(run_dir).resolve().relative_to(self.root.resolve()).as_posix()
        return (f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/{rel}"
                + (f"?{parts.query}" if parts.query else ""))

    def restore_location(self, run_dir: Path) -> dict[str, Any]:
        """`path` (and `storage_filesystem`) for Ray's Tuner.restore / can_restore."""
        if not self.is_remote:
            return {"path": str(run_dir)}
        return {"path": self.remote_path(run_dir), "storage_filesystem": self._fs()[0]}

    def ray_location(self, run_dir: Path) -> dict[str, Any]:
        """`storage_path` (and `storage_filesystem`) for Ray's RunConfig; name = run_dir.name."""
        if not self.is_remote:
            return {"storage_path": str(run_dir.parent)}
        fs, _ = self._fs()
        return {"storage_path": self.remote_path(run_dir.parent), "storage_filesystem": fs}

    def taken(self, run_dir: Path) -> bool:
        if run_dir.exists():
            return True
        if not self.is_remote:
            return False
        import pyarrow.fs as pafs

        fs, _ = self._fs()
        return fs.get_file_info(self.remote_path(run_dir)).type != pafs.FileType.NotFound

    def run_dirs(self) -> list[Path]:
        """The run folders of this storage (local copies; for a URI, each run's run.json,
        spec.yaml and trials table are fetched from the bucket first, nothing else)."""
        if self.is_remote:
            import pyarrow.fs as pafs

            fs, base = self._fs()
            for info in fs.get_file_info(pafs.FileSelector(base, recursive=False, allow_not_found=True)):
                if info.type != pafs.FileType.Directory:
                    continue
                local = self.root / info.base_name
                for f in ("run.json", "spec.yaml", "trials.parquet"):
                    src = f"{info.path}/{f}"
                    if fs.get_file_info(src).type == pafs.FileType.File:
                        local.mkdir(parents=True, exist_ok=True)
                        with fs.open_input_stream(src) as r:
                            (local / f).write_bytes(r.read())
        if not self.root.is_dir():
            return []
        return sorted(d for d in self.root.iterdir()
                      if (d / "spec.yaml").exists() and (d / "run.json").exists())

    def download(self, run_dir: Path) -> None:
        """Copy the remote run folder (Ray's trial folders) into the local staging copy."""
        if not self.is_remote:
            return
        import pyarrow.fs as pafs

        fs, _ = self._fs()
        src = self.remote_path(run_dir)
        if fs.get_file_info(src).type == pafs.FileType.NotFound:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        for info in fs.get_file_info(pafs.FileSelector(src, recursive=True)):
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(src):].lstrip("/")
            dst = run_dir / rel
            if (rel in DRIVER_FILES or dst.name == TRIAL_LOG) and dst.exists():
                continue  # the driver's own copy is the newer one
            dst.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(info.path) as f_in, open(dst, "wb") as f_out:
                while chunk := f_in.read(1 << 20):
                    f_out.write(chunk)

    def upload_files(self, run_dir: Path, rels: list[str]) -> None:
        """Copy these files of the local run folder to the URI (the run's record as it grows:
        a kill of the driver leaves it in the bucket, where a resume from any machine finds it)."""
        if not self.is_remote:
            return
        import pyarrow.fs as pafs

        fs, _ = self._fs()
        dst, local = self.remote_path(run_dir), pafs.LocalFileSystem()
        for rel in rels:
            if (Path(run_dir) / rel).is_file():
                parent = f"{dst}/{rel}".rpartition("/")[0]
                fs.create_dir(parent, recursive=True)
                pafs.copy_files(str(Path(run_dir) / rel), f"{dst}/{rel}", source_filesystem=local,
                                destination_filesystem=fs)

    def upload(self, run_dir: Path) -> None:
        """Copy the driver's own files (every regular file outside trial folders, and each
        trial's own log) to the URI: the trials' logs first, so that a kill during the copy never
        leaves the bucket an event log that ends a trial whose epochs are not there yet."""
        if not self.is_remote:
            return
        import pyarrow.fs as pafs

        fs, _ = self._fs()
        dst = self.remote_path(run_dir)
        local = pafs.LocalFileSystem()
        for p in sorted(run_dir.rglob("*"), key=lambda p: (p.name != TRIAL_LOG, p)):
            rel = p.relative_to(run_dir)
            if p.is_file() and (p.name == TRIAL_LOG or not any(
                    part.startswith("trial_") for part in rel.parts[:-1])) and not p.name.endswith(".tmp"):
                fs.create_dir(f"{dst}/{rel.parent.as_posix()}".rstrip("/."), recursive=True)
                pafs.copy_files(str(p), f"{dst}/{rel.as_posix()}", source_filesystem=local,
                                destination_filesystem=fs)


def locate(run_ref: str | Path) -> tuple[Storage, Path]:
    """A run folder given as a path or as a URI (s3://bucket/runs/<name>?options): its storage,
    and its local folder (for a URI, the staging copy, refreshed from the bucket)."""
    ref = str(run_ref)
    if "://" not in ref:
        p = Path(ref).expanduser().resolve()
        return Storage(p.parent), p
    parts = urlsplit(ref)
    head, _, name = parts.path.rstrip("/").rpartition("/")
    if not name:
        raise SpecError("give the run folder's URI, e.g. s3://bucket/runs/<name>.", file=public(ref))
    st = open_storage(parts._replace(path=head).geturl())
    run_dir = st.root / name
    st.download(run_dir)
    return st, run_dir


def public(uri: str) -> str:
    """The URI without credentials or options, safe to print and store."""
    p = urlsplit(uri)
    return f"{p.scheme}://{p.hostname or ''}{p.path}"


def staging_root(uri: str) -> Path:
    base = Path(os.environ.get("HPO_STAGING_DIR", Path.home() / ".cache" / "hpo" / "staging"))
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", public(uri).replace("://", "_")).strip("_")
    return base.expanduser() / f"{slug[:80]}-{hashlib.sha1(uri.encode()).hexdigest()[:8]}"


def open_storage(storage: str) -> Storage:
    """The storage, created and checked for write access before anything starts."""
    if "://" in storage:
        return _open_uri(storage)
    path = Path(storage).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".hpo-write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise SpecError(f"cannot write to the storage folder {path}: {e.strerror or e}.",
                        field="storage") from None
    return Storage(path)


def _open_uri(uri: str) -> Storage:
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise SpecError(f"storage URI scheme `{scheme}://` is not supported; use a folder or "
                        f"{', '.join(s + '://' for s in SCHEMES)} (through pyarrow).", field="storage")
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(uri)
        base = path.rstrip("/")
        fs.create_dir(base, recursive=True)
        probe = f"{base}/.hpo-write-test-{os.getpid()}"
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except Exception as e:  # noqa: BLE001 - pyarrow raises OSError/ArrowInvalid/... per backend
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise SpecError(f"cannot write to {public(uri)}: {first}. "
                        f"Check the bucket name, credentials (e.g. AWS_ACCESS_KEY_ID / "
                        f"GOOGLE_APPLICATION_CREDENTIALS) and network access.",
                        field="storage") from None
    root = staging_root(uri)
    root.mkdir(parents=True, exist_ok=True)
    return Storage(root, uri)

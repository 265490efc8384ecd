"""Source files as readers see them: content hash, decompression of tar.gz, header sniffing."""

import csv
import gzip
import hashlib
import io
import json
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from planner.errors import PlannerError

_HASH_CHUNK = 1 << 22


@dataclass
class Source:
    """One input as given by the user, and the plain file(s) DuckDB will read."""

    path: Path
    files: list[Path] = field(default_factory=list)
    tempdir: tempfile.TemporaryDirectory | None = None

    @property
    def main(self) -> Path:
        """The file DuckDB reads for single-file formats."""
        return self.files[0]

    def close(self) -> None:
        """Remove any temporary extraction."""
        if self.tempdir is not None:
            self.tempdir.cleanup()
            self.tempdir = None


def open_source(path: Path) -> Source:
    """Resolve a user path: a file, a .gz, a .tar.gz (extracted to a temp folder) or a folder."""
    if not path.exists():
        raise PlannerError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise PlannerError(f"{path}: folder holds no files")
        return Source(path, files)
    if path.stat().st_size == 0:
        raise PlannerError(f"{path}: empty file")
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return _extract_tar(path)
    return Source(path, [path])


def _extract_tar(path: Path) -> Source:
    """Extract the data members of a tar archive (skipping macOS ._ metadata) to a temp folder."""
    tmp = tempfile.TemporaryDirectory(prefix="planner-")
    try:
        with tarfile.open(path) as tar:
            members = [
                m for m in tar.getmembers() if m.isfile() and not Path(m.name).name.startswith("._")
            ]
            if not members:
                raise PlannerError(f"{path}: archive holds no data file")
            for member in members:
                tar.extract(member, tmp.name, filter="data")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        tmp.cleanup()
        raise PlannerError(f"{path}: cannot read archive (truncated or corrupt?): {exc}") from None
    files = sorted(Path(tmp.name, m.name) for m in members)
    return Source(path, files, tmp)


def content_hash(paths: list[Path]) -> str:
    """SHA-256 over the bytes of the given files, in order (a folder hashes all its files)."""
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.name.encode())
        with p.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def total_size(paths: list[Path]) -> int:
    """Bytes on disk of the given files."""
    return sum(p.stat().st_size for p in paths)


def _open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzip text file for reading."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def first_line(path: Path) -> str:
    """The first non-empty line of a (possibly gzipped) text file; error if there is none."""
    try:
        with _open_text(path) as fh:
            for line in fh:
                if line.strip():
                    return line.strip().lstrip("\ufeff")
    except (OSError, EOFError, zlib.error) as exc:
        raise PlannerError(f"{path}: cannot read (truncated or corrupt file?): {exc}") from None
    raise PlannerError(f"{path}: empty file")


def csv_header(path: Path) -> list[str]:
    """Column names from the first line of a CSV file."""
    return [c.strip() for c in next(csv.reader([first_line(path)]))]


def jsonl_keys(path: Path) -> list[str]:
    """Keys of the first JSON object in a JSON-lines file (empty if the line is not JSON)."""
    try:
        obj = json.loads(first_line(path))
    except json.JSONDecodeError:
        return []
    return list(obj) if isinstance(obj, dict) else []

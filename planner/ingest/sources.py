"""Source files as readers see them: content hash, decompression of tar.gz, header sniffing."""

import csv
import gzip
import hashlib
import io
import json
import tarfile
import tempfile
import threading
import zipfile
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

    def describe(self, message: str) -> str:
        """A message with extracted member paths shown as ARCHIVE:MEMBER instead of temp paths."""
        if self.tempdir is None:
            return message
        return message.replace(self.tempdir.name + "/", f"{self.path}:")

    def close(self) -> None:
        """Remove any temporary extraction."""
        if self.tempdir is not None:
            self.tempdir.cleanup()
            self.tempdir = None


def open_source(path: Path) -> Source:
    """Resolve a user path: a file, a .gz, a .tar.gz or .zip (extracted to a temp dir), a folder."""
    if not path.exists():
        raise PlannerError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise PlannerError(f"{path}: folder holds no files")
        return Source(path, files)
    if path.stat().st_size == 0:
        raise PlannerError(f"{path}: empty file")
    if path.name.endswith((".tar.gz", ".tgz", ".tar", ".zip")):
        return _extract_archive(path)
    return Source(path, [path])


def _is_data_member(name: str) -> bool:
    """False for macOS metadata (._*, __MACOSX/) that archives often carry."""
    return not Path(name).name.startswith("._") and not name.startswith("__MACOSX/")


def _extract_archive(path: Path) -> Source:
    """Extract the data files of a tar or zip archive to a temp folder."""
    tmp = tempfile.TemporaryDirectory(prefix="planner-")
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                names = [
                    i.filename
                    for i in archive.infolist()
                    if not i.is_dir() and _is_data_member(i.filename)
                ]
                archive.extractall(tmp.name, members=names)
        else:
            with tarfile.open(path) as tar:
                members = [m for m in tar.getmembers() if m.isfile() and _is_data_member(m.name)]
                tar.extractall(tmp.name, members=members, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
        tmp.cleanup()
        raise PlannerError(f"{path}: cannot read archive (truncated or corrupt?): {exc}") from None
    files = sorted(p for p in Path(tmp.name).rglob("*") if p.is_file())
    if not files:
        tmp.cleanup()
        raise PlannerError(f"{path}: archive holds no data file")
    return Source(path, files, tmp)


def content_hash(paths: list[Path], cancelled: threading.Event | None = None) -> str:
    """SHA-256 over the files' bytes, in order; names count only when there are several files."""
    digest = hashlib.sha256()
    for p in paths:
        if len(paths) > 1:
            digest.update(p.name.encode())
        with p.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                if cancelled is not None and cancelled.is_set():
                    return ""
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


def csv_first_value(path: Path, column: str) -> tuple[int, str] | None:
    """The physical line (header = line 1) and value of `column`'s first non-empty cell."""
    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh)
            header: list[str] = []
            for row in reader:
                if any(c.strip() for c in row):
                    header = [c.strip().lstrip("\ufeff") for c in row]
                    break
            if column not in header:
                return None
            index = header.index(column)
            for row in reader:
                if index < len(row) and row[index].strip():
                    return reader.line_num, row[index]
    except (OSError, EOFError, zlib.error, csv.Error) as exc:
        raise PlannerError(f"{path}: cannot read (truncated or corrupt file?): {exc}") from None
    return None


def jsonl_keys(path: Path) -> list[str]:
    """Keys of the first JSON object in a JSON-lines file (empty if the line is not JSON)."""
    try:
        obj = json.loads(first_line(path))
    except json.JSONDecodeError:
        return []
    return list(obj) if isinstance(obj, dict) else []

"""Source files as readers see them: content hash, decompression of tar.gz, header sniffing."""

import csv
import glob
import gzip
import hashlib
import io
import itertools
import json
import lzma
import re
import tarfile
import tempfile
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from planner.errors import PlannerError, one_line

_HASH_CHUNK = 1 << 22
# Zip compression methods Python's zipfile reads: stored, deflate, bzip2, lzma.
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# Errors that reading a damaged compressed stream or archive raises (the codecs' own types).
CODEC_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, tarfile.TarError)


_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(text: str | Path) -> bool:
    """Whether a source is a URI (s3a://, hdfs://, abfss://, file://...): Spark lists and reads
    it, where a local path is resolved here. (A Path has already folded its '//'.)"""
    return isinstance(text, str) and bool(_URI.match(text))


@dataclass(frozen=True)
class Remote:
    """A source given as a URI, as Spark's file system listed it: the URI, each data file's URI
    and size in bytes, the folder Hive partitions start in (None for one file), and a digest of
    the listing (names, sizes, modification times), which stands for a content hash: the bytes
    stay where they are."""

    uri: str
    files: dict[str, int]
    base: str | None
    digest: str


@dataclass
class Source:
    """One input as given by the user, and the plain file(s) DuckDB will read; a URI source
    (`remote`) has its files' URIs folded into Paths, read by Spark from `remote`."""

    path: Path
    files: list[Path] = field(default_factory=list)
    tempdir: tempfile.TemporaryDirectory | None = None
    remote: Remote | None = None

    @property
    def main(self) -> Path:
        """The first file: what a format is detected on, and all a single-file source holds."""
        return self.files[0]

    def part(self, path: Path) -> "Source":
        """One file of a many-file source, as a source of its own."""
        return Source(path, [path])

    def describe(self, message: str) -> str:
        """A message with extracted member paths shown as ARCHIVE:MEMBER instead of temp paths,
        and a URI source's paths as the URIs they fold (s3a:/b/x -> s3a://b/x)."""
        if self.remote is not None:
            uris = sorted([self.remote.uri, *self.remote.files], key=len, reverse=True)
            for uri in uris:
                message = message.replace(str(Path(uri)), uri)
            return message
        if self.tempdir is None:
            return message
        return message.replace(self.tempdir.name + "/", f"{self.path}:")

    def close(self) -> None:
        """Remove any temporary extraction."""
        if self.tempdir is not None:
            self.tempdir.cleanup()
            self.tempdir = None


GLOB_CHARS = frozenset("*?[")


def is_glob(path: Path | str) -> bool:
    """Whether a path is a glob pattern (holds *, ? or [) rather than a file name."""
    return bool(GLOB_CHARS & set(str(path)))


def _hidden(path: Path, root: Path) -> bool:
    """Whether a file is bookkeeping, not data: a name under `root` starting with '.' or '_'
    (Spark's _SUCCESS and _temporary/, Hadoop's .crc files, macOS ._* files)."""
    return any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def glob_root(pattern: Path) -> Path:
    """The folder a glob pattern starts in: its longest leading part without glob characters."""
    parts = list(itertools.takewhile(lambda p: not is_glob(p), pattern.parts))
    return Path(*parts) if parts else Path(".")


def source_files(path: Path) -> list[Path]:
    """The data files a path names: the file itself, every file under a folder, or every file a
    glob matches (`**` spans folders), sorted, bookkeeping files left out; error if none."""
    if is_glob(path) and not path.exists():
        root = glob_root(path)
        matches = (Path(m) for m in glob.glob(str(path), recursive=True))
        files = sorted(m for m in matches if m.is_file() and not _hidden(m, root))
        if not files:
            raise PlannerError(f"{path}: the glob matches no file")
        return files
    if not path.exists():
        raise PlannerError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
        if not files:
            raise PlannerError(f"{path}: folder holds no files")
        return files
    return [path]


def open_source(path: Path) -> Source:
    """Resolve a user path: a file, a .gz, a .tar.gz or .zip (extracted to a temp dir), a folder
    or a glob of files (`logs/2026-*/part-*.parquet`)."""
    files = source_files(path)
    if len(files) > 1 or path.is_dir():
        return Source(path, files)
    single = files[0]  # the path itself, or the one file a glob matches
    if single.stat().st_size == 0:
        raise PlannerError(f"{single}: empty file")
    if single.name.endswith((".tar.gz", ".tgz", ".tar", ".zip")):
        return _extract_archive(single)
    return Source(single, [single])


def _is_data_member(name: str) -> bool:
    """False for macOS metadata (._*, __MACOSX/) that archives often carry."""
    return not Path(name).name.startswith("._") and not name.startswith("__MACOSX/")


def _check_zip_member(path: Path, info: zipfile.ZipInfo) -> None:
    """Refuse a zip member Python cannot extract: encrypted, or an unsupported method."""
    if info.flag_bits & 0x41:  # bit 0: encrypted; bit 6: strong encryption
        raise PlannerError(
            f"{path}: member {info.filename!r} is encrypted; extract it first (planner reads "
            "unencrypted archives only)"
        )
    if info.compress_type not in _ZIP_METHODS:
        raise PlannerError(
            f"{path}: member {info.filename!r} uses zip compression method "
            f"{info.compress_type}; planner reads stored, deflate, bzip2 and lzma members"
        )


def _archive_error(path: Path, exc: BaseException) -> PlannerError:
    """One line saying why an archive could not be read."""
    if isinstance(exc, tarfile.ReadError) and "could not be opened" in str(exc):
        # tarfile lists every compression it tried, one per line; one sentence says it all
        return PlannerError(
            f"{path}: cannot read archive: not a tar file (plain, gzip, bzip2 or xz), or truncated"
        )
    detail = one_line(exc) or type(exc).__name__
    return PlannerError(f"{path}: cannot read archive (truncated or corrupt?): {detail}")


def _extract_archive(path: Path) -> Source:
    """Extract the data files of a tar or zip archive to a temp folder."""
    tmp = tempfile.TemporaryDirectory(prefix="planner-")
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                infos = [
                    i for i in archive.infolist() if not i.is_dir() and _is_data_member(i.filename)
                ]
                for info in infos:
                    _check_zip_member(path, info)
                archive.extractall(tmp.name, members=[i.filename for i in infos])
        else:
            with tarfile.open(path) as tar:
                members = [m for m in tar.getmembers() if m.isfile() and _is_data_member(m.name)]
                tar.extractall(tmp.name, members=members, filter="data")
    except PlannerError:
        tmp.cleanup()
        raise
    except (*CODEC_ERRORS, NotImplementedError) as exc:
        # NotImplementedError: zipfile's answer to a method or encryption it cannot read
        tmp.cleanup()
        raise _archive_error(path, exc) from None
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


def source_bytes(source: Source) -> int:
    """Bytes of a source's files, where they are (Spark's listing for a URI source)."""
    return sum(source.remote.files.values()) if source.remote else total_size(source.files)


def source_size(path: Path | str) -> int:
    """Bytes on disk of the files a path names (a file, folder or glob); 0 when it names none
    (ingesting it then says why) or is a URI (only Spark lists it)."""
    if is_uri(path):
        return 0
    try:
        return total_size(source_files(path))
    except PlannerError:
        return 0


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
    except CODEC_ERRORS as exc:
        raise PlannerError(
            f"{path}: cannot read (truncated or corrupt file?): {one_line(exc)}"
        ) from None
    raise PlannerError(f"{path}: empty file")


def csv_header(path: Path) -> list[str]:
    """Column names from the first line of a CSV file."""
    try:
        header = [c.strip() for c in next(csv.reader([first_line(path)]))]
    except csv.Error as exc:  # e.g. a field longer than csv.field_size_limit()
        raise PlannerError(f"{path}: header: cannot read it as CSV ({one_line(exc)})") from None
    if not header:  # the line held only characters the csv module drops (NUL)
        raise PlannerError(f"{path}: header: no column names on the first line")
    return header


def csv_shape_problem(path: Path) -> str | None:
    """'line N: K fields where line 1 has M' for the first row whose width differs from the first
    row's (None when every row agrees or the file cannot be read): a readable reason for a file
    DuckDB's CSV sniffer rejects."""
    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh)
            width, first = None, 0
            for row in reader:
                if not row:
                    continue
                if width is None:
                    width, first = len(row), reader.line_num
                elif len(row) != width:
                    return (
                        f"line {reader.line_num}: {len(row)} fields where line {first} has {width}"
                    )
    except (*CODEC_ERRORS, csv.Error):
        return None
    return None


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
    except (*CODEC_ERRORS, csv.Error) as exc:
        raise PlannerError(
            f"{path}: cannot read (truncated or corrupt file?): {one_line(exc)}"
        ) from None
    return None


def jsonl_keys(path: Path) -> list[str]:
    """Keys of the first JSON object in a JSON-lines file (empty if the line is not JSON)."""
    try:
        obj = json.loads(first_line(path))
    except json.JSONDecodeError:
        return []
    except RecursionError:
        raise PlannerError(
            f"{path}: line 1: JSON nested too deeply (a trace record is one flat object)"
        ) from None
    return list(obj) if isinstance(obj, dict) else []


def refuse_empty_files(source: Source, files: dict[str, int]) -> None:
    """Refuse a file of a many-file source that gave no rows (`files`: rows per file)."""
    for path, rows in files.items():
        if rows == 0 and len(source.files) > 1:
            raise PlannerError(
                f"{path}: empty partition (no data rows); every file of a trace must hold rows: "
                "remove it, or ingest the other files by a glob"
            )

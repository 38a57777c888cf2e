"""Inspect uploaded module packages without extracting them, and store them by digest.

An upload streams into a temp file inside the store (`stream_to_temp`), is inspected where it
lies (`inspect_package`), then is renamed to its digest path (`PackageStore.commit`). Nothing is
ever written out of an archive: Python 3.11's zipfile/tarfile lack some recent hardening, so the
checks here are ours and run on each member's header before any of its content is read.
"""

from __future__ import annotations

import lzma
import os
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass

from portal.services.errors import TooLarge, UnsupportedType, ValidationFailed

MAX_ENTRIES = 5000
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_RATIO = 100
MAX_MANIFEST_BYTES = 256 * 1024
# Below this many unpacked bytes a high ratio is harmless (say, a small repetitive text file),
# so the ratio is only enforced past it, for the archive as a whole and for each zip member.
RATIO_MIN_BYTES = 1024 * 1024
LARGE_FILE_BYTES = 10 * 1024 * 1024
# What a tar stream may hold beyond the data its members declare: headers, long names, padding.
TAR_HEADER_SLACK = 1024 * 1024
MANIFEST_NAME = "module.yaml"

MIB = 1024 * 1024
_CHUNK = 1 << 20
PACKAGE_POINTER = "/package"
_DRIVE = re.compile(r"[A-Za-z]:")
_EXECUTABLE_NAME = re.compile(r"\.(exe|dll|dylib|sh|bat|cmd|com|ps1|msi)$|\.so(\.\d+)*$")
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# What zipfile and its decompressors raise on a damaged archive.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    zlib.error,
    lzma.LZMAError,
    struct.error,
)
_ZIP_SPECIAL = {
    stat.S_IFLNK: "symbolic link",
    stat.S_IFCHR: "device file",
    stat.S_IFBLK: "device file",
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
}


@dataclass
class ScanReport:
    kind: str
    files: list[dict]
    total_size: int
    manifest_path: str
    warnings: list[str]

    def as_dict(self) -> dict:
        """The report as JSON-able data, as kept with the release."""
        return {
            "kind": self.kind,
            "files": [dict(f) for f in self.files],
            "file_count": len(self.files),
            "total_size": self.total_size,
            "manifest_path": self.manifest_path,
            "warnings": list(self.warnings),
        }


@dataclass
class InspectedPackage:
    report: ScanReport
    manifest_bytes: bytes


def _refuse(message: str, entry: str | None = None) -> ValidationFailed:
    text = message if entry is None else f"entry {entry!r}: {message}"
    return ValidationFailed(text, errors=[{"pointer": PACKAGE_POINTER, "message": text}])


def _unreadable(reason: object) -> ValidationFailed:
    return _refuse(f"archive is not readable whole: {reason}")


def detect_kind(head: bytes) -> str | None:
    """Tell "zip" or "tar.gz" (or None) from the first bytes of a file, never from its name."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if not head.startswith(b"\x1f\x8b"):
        return None
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        block = decompressor.decompress(head, tarfile.BLOCKSIZE)
    except zlib.error:
        return "tar.gz"  # gzip by its magic but damaged: reported as unreadable, not as foreign
    if len(block) < tarfile.BLOCKSIZE:
        # A cut-off head proves nothing yet; a whole gzip stream this short is a tar cut
        # short (unreadable, 422) when it starts like a tar header, else something foreign.
        return "tar.gz" if not decompressor.eof or _starts_like_a_tar(block) else None
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.EOFHeaderError:
        return "tar.gz"  # an empty tar is just its end-of-archive block
    except tarfile.HeaderError:
        return None  # gzip, but of something else
    return "tar.gz"


def _starts_like_a_tar(head: bytes) -> bool:
    """Whether bytes shorter than one block begin as a tar header would: a printable name
    ended by NUL, then (if present) an octal mode field."""
    name, nul, _rest = head[:100].partition(b"\0")
    if not name or not nul or not name.isascii():
        return False
    if not all(32 <= byte < 127 for byte in name):
        return False
    mode = head[100:108]
    return all(byte in b"01234567 \0" for byte in mode)


def _normalize(name: str) -> str:
    """Check one entry name and return it as a clean relative path ("" for the root itself)."""
    if not name:
        raise _refuse("empty name", name)
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        raise _refuse("control character in name", name)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise _refuse("name is not valid UTF-8", name)
    if "\\" in name:
        raise _refuse("backslash in name", name)
    if name.startswith("/") or _DRIVE.match(name):
        raise _refuse("absolute path", name)
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _refuse("'..' segment in path", name)
    return "/".join(parts)


class _Scan:
    """Checks entries one by one as a reader meets them, and sums up what it saw."""

    def __init__(self, archive_size: int, max_entries: int, max_bytes: int, max_ratio: int):
        self.archive_size, self.max_entries = archive_size, max_entries
        self.max_bytes, self.max_ratio = max_bytes, max_ratio
        self.count = self.total = 0
        self.seen: set[str] = set()
        self.tops: set[str] = set()
        self.files: dict[str, int] = {}
        self.executables: set[str] = set()

    def add(
        self,
        name: str,
        *,
        is_dir: bool,
        size: int,
        executable: bool,
        problem: str | None,
    ) -> str:
        self.count += 1
        if self.count > self.max_entries:
            raise _refuse(f"more than {self.max_entries} entries in the archive", name)
        if problem:
            raise _refuse(problem, name)
        path = _normalize(name)
        if not path:
            return path  # "./" is the archive root itself, as `tar -C dir .` writes it
        if path in self.seen:
            raise _refuse("duplicate entry name", name)
        self.seen.add(path)
        self.tops.add(path.split("/", 1)[0])
        if size < 0:
            raise _refuse("negative size", name)
        self.total += size
        if self.total > self.max_bytes:
            raise _refuse(f"archive unpacks to more than {_human(self.max_bytes)}", name)
        if self.total > RATIO_MIN_BYTES and self.total > self.max_ratio * self.archive_size:
            raise _refuse(
                f"compression ratio over {self.max_ratio} ({self.archive_size} bytes unpack "
                f"to at least {self.total})",
                name,
            )
        if not is_dir:
            self.files[path] = size
            if executable:
                self.executables.add(path)
        return path

    def finish(self, max_manifest: int) -> str:
        """Check the layout as a whole and return the path of module.yaml."""
        for path in self.files:
            parent = path
            while "/" in parent:
                parent = parent.rsplit("/", 1)[0]
                if parent in self.files:
                    raise _refuse(f"its parent {parent!r} is a file", path)
        nested = f"{next(iter(self.tops))}/{MANIFEST_NAME}" if len(self.tops) == 1 else None
        if MANIFEST_NAME in self.files:
            manifest = MANIFEST_NAME
        elif nested in self.files:
            manifest = nested
        else:
            raise _refuse(f"no {MANIFEST_NAME} at the root or inside a single top-level folder")
        if self.files[manifest] > max_manifest:
            raise _manifest_too_large(max_manifest)
        return manifest

    def report(self, kind: str, manifest: str) -> ScanReport:
        files = [{"path": path, "size": size} for path, size in sorted(self.files.items())]
        return ScanReport(kind, files, self.total, manifest, self._warnings())

    def _warnings(self) -> list[str]:
        warnings, folded = [], {}
        for path, size in sorted(self.files.items()):
            name = path.rsplit("/", 1)[-1].lower()
            if path in self.executables or _EXECUTABLE_NAME.search(name):
                warnings.append(f"{path}: executable")
            if name.endswith((".pyc", ".pyo")):
                warnings.append(f"{path}: compiled Python")
            if size > LARGE_FILE_BYTES:
                warnings.append(f"{path}: large file ({size / MIB:.1f} MiB)")
            # Names that collide on case-insensitive filesystems (Windows, macOS).
            other = folded.setdefault(path.lower(), path)
            if other != path:
                warnings.append(f"{path}: same name as {other} but for letter case")
        return warnings


def _human(size: int) -> str:
    return f"{size / MIB:g} MiB" if size >= MIB else f"{size} bytes"


def _manifest_too_large(limit: int) -> TooLarge:
    text = f"{MANIFEST_NAME} is larger than {limit // 1024} KiB"
    return TooLarge(text, errors=[{"pointer": PACKAGE_POINTER, "message": text}])


def _is_manifest_candidate(path: str) -> bool:
    return path == MANIFEST_NAME or (path.count("/") == 1 and path.endswith("/" + MANIFEST_NAME))


def inspect_package(
    path: str | os.PathLike,
    *,
    max_entries: int = MAX_ENTRIES,
    max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
    max_ratio: int = MAX_RATIO,
    max_manifest_bytes: int = MAX_MANIFEST_BYTES,
) -> InspectedPackage:
    """Check an uploaded package in place and return its scan report and raw module.yaml.

    Raises UnsupportedType (not a zip or tar.gz), ValidationFailed (a refused entry, a bad
    layout, an archive not readable whole) or TooLarge (module.yaml over its limit).
    """
    with open(path, "rb") as fh:
        kind = detect_kind(fh.read(64 * 1024))
        if kind is None:
            text = "not a zip or tar.gz archive"
            raise UnsupportedType(text, errors=[{"pointer": PACKAGE_POINTER, "message": text}])
        fh.seek(0)
        scan = _Scan(os.fstat(fh.fileno()).st_size, max_entries, max_unpacked_bytes, max_ratio)
        reader = _read_zip if kind == "zip" else _read_tar_gz
        manifest, data = reader(fh, scan, max_manifest_bytes)
    if len(data) > max_manifest_bytes:
        raise _manifest_too_large(max_manifest_bytes)
    return InspectedPackage(scan.report(kind, manifest), data)


def _read_zip(fh, scan: _Scan, max_manifest: int) -> tuple[str, bytes]:
    # ZipFile() parses the whole central directory up front; the end record's count (read with
    # a private but long-stable helper) lets millions of entries be refused before that.
    try:
        endrec = zipfile._EndRecData(fh)
        if endrec and endrec[zipfile._ECD_ENTRIES_TOTAL] > scan.max_entries:
            count = endrec[zipfile._ECD_ENTRIES_TOTAL]
            raise _refuse(f"more than {scan.max_entries} entries in the archive ({count})")
        with zipfile.ZipFile(fh) as zf:
            paths = []
            for info in zf.infolist():
                mode = info.external_attr >> 16
                path = scan.add(
                    info.orig_filename,  # .filename is cut at a NUL, which hides it
                    is_dir=info.orig_filename.endswith("/") or stat.S_ISDIR(mode),
                    size=info.file_size,
                    executable=bool(mode & 0o111),
                    problem=_zip_problem(info, scan.max_ratio),
                )
                paths.append((info, path))
            manifest = scan.finish(max_manifest)
            # Every member is read through memory once, so CRCs and local headers are checked.
            data = b""
            for info, path in paths:
                kept = _read_zip_member(zf, info, max_manifest + 1 if path == manifest else 0)
                data = kept if path == manifest else data
    except _ZIP_ERRORS as exc:
        raise _unreadable(exc) from exc
    return manifest, data


def _zip_problem(info: zipfile.ZipInfo, max_ratio: int) -> str | None:
    if info.flag_bits & 0x1:
        return "encrypted member"
    special = _ZIP_SPECIAL.get(stat.S_IFMT(info.external_attr >> 16))
    if special:
        return special
    if info.compress_type not in _ZIP_METHODS:
        return f"unsupported compression method {info.compress_type}"
    if info.file_size > RATIO_MIN_BYTES and info.file_size > max_ratio * info.compress_size:
        return f"compression ratio over {max_ratio} ({info.compress_size} -> {info.file_size})"
    return None


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, keep: int) -> bytes:
    """Read one member through memory in chunks, checking it; return its first `keep` bytes."""
    kept, seen = b"", 0
    with zf.open(info) as member:
        while chunk := member.read(_CHUNK):
            seen += len(chunk)
            if seen > info.file_size:
                raise _unreadable(f"entry {info.orig_filename!r} holds more than it declares")
            if len(kept) < keep:
                kept += chunk[: keep - len(kept)]
    if seen != info.file_size:
        raise _unreadable(f"entry {info.orig_filename!r} holds less than it declares")
    return kept


def _read_tar_gz(fh, scan: _Scan, max_manifest: int) -> tuple[str, bytes]:
    stream = _GunzipStream(fh)
    candidates: dict[str, bytes] = {}
    try:
        # 256 KiB reads: tarfile's default 10 KiB made the gunzip stream copy the rest of
        # each 1 MiB piece about a hundred times (50 MB copied per MB of package).
        with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", bufsize=256 * 1024) as tf:
            for member in tf:
                path = scan.add(
                    member.name,
                    is_dir=member.isdir(),
                    size=member.size,
                    executable=bool(member.mode & 0o111),
                    problem=_tar_problem(member),
                )
                # The member's data may take what its header declared; the slack covers the
                # headers of the next one. Anything more is a bomb in disguise.
                blocks = -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                stream.limit = member.offset_data + blocks + TAR_HEADER_SLACK
                # Only the root one or the first nested one can be chosen (nested ones in two
                # different folders rule each other out), which bounds memory.
                wanted = path == MANIFEST_NAME or len(candidates) < 2
                if member.isreg() and _is_manifest_candidate(path) and wanted:
                    candidates[path] = tf.extractfile(member).read(max_manifest + 1)
            end = tf.offset
        while stream.read(_CHUNK):
            pass  # the rest must still be a whole gzip stream, checked to its CRC
    except (tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        raise _unreadable(exc) from exc
    # tarfile quietly stops at a damaged header; only zero padding may follow the real end.
    if stream.last_nonzero > end:
        raise _unreadable(f"damaged tar header or data after the end, at offset {end}")
    manifest = scan.finish(max_manifest)
    return manifest, candidates[manifest]


def _tar_problem(member: tarfile.TarInfo) -> str | None:
    if member.issym():
        return f"symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "FIFO"
    if member.issparse():
        return "sparse member"
    if not (member.isreg() or member.isdir()):
        return f"unsupported entry type {member.type!r}"
    return None


class _GunzipStream:
    """A strict, bounded gunzip for tarfile's stream mode.

    Unlike tarfile's own "r|gz" it raises on a truncated stream or junk after it, never
    inflates more than `read(n)` asks for, and refuses output past `limit`, which the reader
    raises as each header's declared size is accepted.
    """

    def __init__(self, fh):
        self._fh = fh
        self._dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._input = b""
        self._done = False
        self.produced = self.last_nonzero = 0
        self.limit = TAR_HEADER_SLACK

    def read(self, n: int = -1) -> bytes:
        n = n if n > 0 else _CHUNK
        while not self._done:
            if self._dec.eof:
                self._next_member()
                continue
            if not self._input:
                self._input = self._fh.read(_CHUNK)
                if not self._input:
                    raise _unreadable("unexpected end of the gzip stream")
            out = self._dec.decompress(self._input, n)
            self._input = self._dec.unused_data if self._dec.eof else self._dec.unconsumed_tail
            if out:
                return self._account(out)
        return b""

    def _account(self, out: bytes) -> bytes:
        stripped = out.rstrip(b"\0")
        if stripped:
            self.last_nonzero = self.produced + len(stripped)
        self.produced += len(out)
        if self.produced > self.limit:
            raise _refuse("the tar stream holds more than its entries declare (oversized headers?)")
        return out

    def _next_member(self) -> None:
        # Like gzip(1): zero padding may follow, and a concatenated member continues the stream.
        while not self._input.lstrip(b"\0"):
            self._input = self._fh.read(_CHUNK)
            if not self._input:
                self._done = True
                return
        self._input = self._input.lstrip(b"\0")
        if not self._input.startswith(b"\x1f\x8b"):
            raise _unreadable("data after the end of the gzip stream")
        self._dec = zlib.decompressobj(16 + zlib.MAX_WBITS)

"""Package storage: packages kept by SHA-256 under one root, uploads streamed to a temp file
inside it and renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import re
import tempfile
from collections.abc import Iterator
from typing import IO

from portal.services.errors import TooLarge
from portal.services.publishing.inspection import MIB, PACKAGE_POINTER


class PackageStore:
    """Packages stored by SHA256 under one root: root/ab/cd/<sha256>, temp files in root/tmp."""

    def __init__(self, root: str | os.PathLike):
        self.root = pathlib.Path(root)

    def path_for(self, sha256: str) -> pathlib.Path:
        """Where the package with this digest lives (the digest is checked, never a path)."""
        digest = sha256.lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"not a SHA256 hex digest: {sha256!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    @contextlib.contextmanager
    def temp_file(self) -> Iterator[IO[bytes]]:
        """A named temp file in root/tmp (same filesystem, so commit's rename is atomic).

        It is kept when the block succeeds, for `commit`, and removed when it raises.
        """
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="upload-", delete=False) as fh:
            try:
                yield fh
            except BaseException:
                fh.close()
                pathlib.Path(fh.name).unlink(missing_ok=True)
                raise

    def commit(self, temp_path: str | os.PathLike, sha256: str) -> pathlib.Path:
        """Move a verified temp file to its digest path, durably; return that path."""
        target = self.path_for(sha256)
        if target.exists():
            # Same digest, same bytes: the stored copy stands.
            pathlib.Path(temp_path).unlink(missing_ok=True)
            return target
        with open(temp_path, "rb") as fh:
            os.fsync(fh.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp_path, target)
        # The rename itself is durable only once its directory is flushed.
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return target

    def exists(self, sha256: str) -> bool:
        """Whether a package with this digest is stored."""
        return self.path_for(sha256).is_file()

    def delete(self, sha256: str) -> None:
        """Remove a stored package (only ever one that no row references)."""
        self.path_for(sha256).unlink(missing_ok=True)

    def stored(self) -> Iterator[tuple[str, float]]:
        """(digest, modification time) of every stored package."""
        for path in self.root.glob("[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/*"):
            if re.fullmatch(r"[0-9a-f]{64}", path.name) and path.is_file():
                with contextlib.suppress(FileNotFoundError):
                    yield path.name, path.stat().st_mtime

    def temp_files(self) -> Iterator[tuple[pathlib.Path, float]]:
        """(path, modification time) of every temp upload file."""
        for path in (self.root / "tmp").glob("upload-*"):
            with contextlib.suppress(FileNotFoundError):
                yield path, path.stat().st_mtime


def stream_to_temp(
    stream, store: PackageStore, *, max_bytes: int, chunk_size: int = 1 << 20
) -> tuple[pathlib.Path, str, int]:
    """Copy `stream` into a temp file of `store`, hashing as bytes arrive.

    Returns (temp_path, sha256_hex, size). Raises TooLarge as soon as more than `max_bytes`
    arrive; on any error the temp file is removed.
    """
    digest, size = hashlib.sha256(), 0
    with store.temp_file() as fh:
        # Never ask for more than one byte past the limit, so an overrun is seen at once.
        while chunk := stream.read(min(chunk_size, max_bytes - size + 1)):
            size += len(chunk)
            if size > max_bytes:
                text = f"the package is larger than {max_bytes / MIB:g} MB"
                raise TooLarge(text, errors=[{"pointer": PACKAGE_POINTER, "message": text}])
            digest.update(chunk)
            fh.write(chunk)
    return pathlib.Path(fh.name), digest.hexdigest(), size

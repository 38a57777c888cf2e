"""Building module packages and manifests for tests."""

from __future__ import annotations

import io
import tarfile
import zipfile

import yaml


def manifest(name: str = "purchasing", version: str = "1.0.0", **extra) -> dict:
    data = {
        "name": name,
        "version": version,
        "description": f"{name} for XERPIUM",
        "author": "Acme Developers",
    }
    data.update(extra)
    return data


def manifest_yaml(name: str = "purchasing", version: str = "1.0.0", **extra) -> str:
    return yaml.safe_dump(manifest(name, version, **extra), sort_keys=False)


def zip_package(text: str, *, folder: str = "", files: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    prefix = f"{folder}/" if folder else ""
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(prefix + "module.yaml", text)
        for path, data in (files or {"src/main.py": b"def main():\n    return 1\n"}).items():
            zf.writestr(prefix + path, data)
    return buf.getvalue()


def tar_package(text: str, *, folder: str = "", files: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    prefix = f"{folder}/" if folder else ""
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for path, data in {"module.yaml": text.encode(), **(files or {})}.items():
            info = tarfile.TarInfo(prefix + path)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --- Arbitrary and hostile archives (built in memory, never extracted) ----------------------


def zip_of(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    """A zip of exactly these entries, in order (names are not checked)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def zip_special(name: str, file_type: int, data: bytes = b"") -> zipfile.ZipInfo:
    """A ZipInfo whose Unix mode marks a symlink, device, ... (`stat.S_IF*`)."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so external_attr carries the mode
    info.external_attr = (file_type | 0o777) << 16
    return info


def tar_member(name: str, data: bytes = b"", type: bytes = tarfile.REGTYPE, **attrs):
    """(TarInfo, data) for tar_gz_of; `attrs` such as linkname, devmajor."""
    info = tarfile.TarInfo(name)
    info.type = type
    info.size = len(data) if type == tarfile.REGTYPE else 0
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar_gz_of(members) -> bytes:
    """A tar.gz of exactly these (TarInfo, data) members, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()

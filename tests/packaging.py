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

"""A package of a few megabytes goes through the whole path (several 1 MiB reads)."""

from __future__ import annotations

import hashlib
import io
import os

from tests.helpers import bearer
from tests.packaging import manifest_yaml, tar_package, zip_package


def _upload(client, headers, data: bytes, name: str):
    return client.post(
        "/api/v1/modules/",
        headers=headers,
        data={"package": (io.BytesIO(data), name), "sha256": hashlib.sha256(data).hexdigest()},
        content_type="multipart/form-data",
    )


def test_a_multi_megabyte_zip_and_tar_gz_upload_and_come_back_byte_for_byte(app, client, people):
    headers = bearer(app, people.developer.email)
    blob = os.urandom(3 * 1024 * 1024)  # incompressible: the package really is 3 MB
    for version, build in (("1.0.0", zip_package), ("1.1.0", tar_package)):
        data = build(manifest_yaml(version=version), files={"data/blob.bin": blob})
        resp = _upload(client, headers, data, "pkg")
        assert resp.status_code == 201, resp.get_data(as_text=True)
        body = resp.get_json()
        assert body["package"]["size"] == len(data)
        download = client.get(f"/api/v1/modules/{body['id']}/package", headers=headers)
        assert download.data == data

"""Single-pass uploads: multipart file parts are hashed and written to the package store's
temp folder as they arrive, and refused (413) the moment they pass the size limit."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import pathlib
import re
import tempfile

from flask import Request, current_app
from werkzeug.formparser import FormDataParser, MultiPartParser

from portal.lib.config_schema import MAX_SCHEMA_DEPTH
from portal.lib.json_errors import join_pointer
from portal.services.errors import BadRequest, TooLarge, UnsupportedType, ValidationFailed
from portal.services.publishing.manifest import MAX_MANIFEST_BYTES
from portal.services.publishing.storage import stream_to_temp
from portal.services.publishing.submissions import PackageFile, Submission

READ_SIZE = 1024 * 1024
_HASHERS = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="sha256")


class HashingUpload:
    """A writable temp file that hashes what is written and enforces a byte limit.

    Werkzeug's multipart parser writes each file part into the object returned by
    Request._get_file_stream; making that object hash and count avoids a second pass
    over 50 MB (and a second copy on disk).
    """

    def __init__(self, directory: str | os.PathLike, max_bytes: int):
        pathlib.Path(directory).mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix="upload-")
        self._file = os.fdopen(fd, "w+b")
        self.path = pathlib.Path(name)
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._hashing: concurrent.futures.Future | None = None

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.max_bytes:
            self.close()
            limit_mb = self.max_bytes // (1024 * 1024)
            raise TooLarge(f"The package is larger than {limit_mb} MB.")
        # hashlib releases the GIL on large pieces: hashing one piece on another core while
        # this thread writes it and parses the next takes SHA-256 off the critical path.
        # Pieces are hashed in order, at most one waiting.
        self._wait_for_hash()
        self._hashing = _HASHERS.submit(self._hash.update, data)
        return self._file.write(data)

    def _wait_for_hash(self) -> None:
        if self._hashing is not None:
            self._hashing.result()
            self._hashing = None

    @property
    def sha256(self) -> str:
        self._wait_for_hash()
        return self._hash.hexdigest()

    def seek(self, *args):
        return self._file.seek(*args)

    def tell(self):
        return self._file.tell()

    def read(self, *args):
        return self._file.read(*args)

    def flush(self):
        return self._file.flush()

    def fileno(self):
        return self._file.fileno()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        """Close and remove the temp file, unless it was already moved into the store."""
        self._wait_for_hash()
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)

    def __iter__(self):
        return iter(self._file)


class _FormDataParser(FormDataParser):
    """Werkzeug's parser, reading the body in 1 MiB pieces instead of 64 KiB: per-read
    overhead dominates the cost of a 50 MB upload."""

    def _parse_multipart(self, stream, mimetype, content_length, options):
        limit = self.max_form_memory_size
        if limit is not None:
            # Werkzeug's decoder applies this limit to every chunk it is fed, file parts
            # included: below one read (Flask's default is 500 kB) every package over
            # ~490 kB was refused with a 413. Text fields may now reach ~1 MiB; the
            # manifest field has its own 256 KiB limit.
            limit = max(limit, READ_SIZE + 64 * 1024)
        parser = MultiPartParser(
            stream_factory=self.stream_factory,
            max_form_memory_size=limit,
            max_form_parts=self.max_form_parts,
            cls=self.cls,
            buffer_size=READ_SIZE,
        )
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files


class RegistryRequest(Request):
    """Flask's request, with file parts streamed through HashingUpload."""

    form_data_parser_class = _FormDataParser
    max_form_parts = 100

    def _get_file_stream(
        self, total_content_length, content_type, filename=None, content_length=None
    ):
        config = current_app.config
        tmp_dir = pathlib.Path(config["MODULE_STORAGE_PATH"]) / "tmp"
        upload = HashingUpload(tmp_dir, config["MAX_MODULE_SIZE_MB"] * 1024 * 1024)
        # Tracked here too: a part refused mid-body never reaches request.files.
        self.__dict__.setdefault("_uploads", []).append(upload)
        return upload

    def close(self) -> None:
        """Remove every temp file of this request (Flask calls this when it ends)."""
        super().close()
        for upload in self.__dict__.get("_uploads", []):
            upload.close()


def package_from_file(storage) -> PackageFile | None:
    """The PackageFile behind an uploaded file part; None for an empty file input."""
    if storage is None:
        return None
    stream = storage.stream
    if isinstance(stream, HashingUpload):
        if stream.size == 0 and not storage.filename:
            return None
        stream.flush()
        return PackageFile(stream.path, stream.sha256, stream.size, storage.filename or "")
    # Not parsed by RegistryRequest (e.g. built by hand): copy it through the store once.
    from portal.services.publishing.releases import package_store

    config = current_app.config
    path, digest, size = stream_to_temp(
        stream, package_store(), max_bytes=config["MAX_MODULE_SIZE_MB"] * 1024 * 1024
    )
    return PackageFile(path, digest, size, storage.filename or "")


def _text_field(value, pointer: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationFailed(
            "The request is invalid.", errors=[{"pointer": pointer, "message": "must be text"}]
        )
    return value


def submission_from_request(req, *, json_body=None) -> Submission:
    """A Submission from a multipart form or a JSON body (api.md's two shapes).
    Raises UnsupportedType, ValidationFailed, TooLarge, BadRequest."""
    if req.mimetype == "multipart/form-data" or req.mimetype == "application/x-www-form-urlencoded":
        form, files = req.form, req.files
        manifest_yaml = _text_field(form.get("manifest"), "/manifest")
        manifest_file = files.get("manifest")
        if manifest_file is not None and manifest_yaml is None:
            raw = manifest_file.stream.read(MAX_MANIFEST_BYTES + 1)
            manifest_yaml = raw if raw else None
        return Submission(
            manifest_yaml=manifest_yaml,
            package=package_from_file(files.get("package")),
            expected_sha256=_text_field(form.get("sha256"), "/sha256"),
            visibility=_text_field(form.get("visibility"), "/visibility"),
            publisher=_text_field(form.get("publisher"), "/publisher"),
        )
    if req.mimetype == "application/json" or json_body is not None:
        body = json_body if json_body is not None else _json_object(req)
        return Submission(
            manifest_json=body.get("manifest"),
            manifest_yaml=_text_field(body.get("manifest_yaml"), "/manifest_yaml"),
            expected_sha256=_text_field(body.get("sha256"), "/sha256"),
            visibility=_text_field(body.get("visibility"), "/visibility"),
            publisher=_text_field(body.get("publisher"), "/publisher"),
        )
    raise UnsupportedType("Send multipart/form-data or application/json.")


def _json_object(req) -> dict:
    return json_object(req)


def json_object(req, *, force: bool = False) -> dict:
    """The body as a JSON object. Raises BadRequest, or ValidationFailed for JSON nested
    deeper than Python's parser recurses (a RecursionError would otherwise be a 500)."""
    try:
        data = req.get_json(silent=True, force=force)
    except RecursionError:
        raise _too_deep(req.get_data(as_text=True)) from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    return data


# Strings (a key when a colon follows) and structure; numbers and literals do not matter.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"\s*:?|[\[\]{},]')


def _too_deep(text: str, limit: int = 200) -> ValidationFailed:
    """The 422 for a body nested too deep to parse, pointing at the field that holds the
    nesting: the manifest's field for `{"manifest": {...}}`, else the body's field."""
    path: list = []  # the current key or index in each open container
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("{", "["):
            if len(path) >= limit:
                break
            path.append(0 if token == "[" else "")
        elif token in ("}", "]"):
            path = path[:-1]
        elif token == ",":
            if path and isinstance(path[-1], int):
                path[-1] += 1
        elif token.endswith(":") and path:
            path[-1] = json.loads(token[:-1].rstrip())
    if len(path) > 1 and path[0] == "manifest":
        # Into the manifest, as its other errors (a manifest that is a list: its root).
        pointer = join_pointer("", path[1]) if isinstance(path[1], str) else ""
        message = f"is nested more than {MAX_SCHEMA_DEPTH} levels deep, the most allowed"
    else:
        pointer = join_pointer("", *path[:1])
        message = "is nested too deeply to read"
    return ValidationFailed(
        "The body is nested too deeply.", errors=[{"pointer": pointer, "message": message}]
    )

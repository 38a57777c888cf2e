"""Serving a stored package: one response for the API and the pages."""

from __future__ import annotations

from flask import Response, send_file


def package_response(release, path) -> Response:
    """The exact bytes uploaded, as an attachment with the SHA-256 as ETag.

    send_file hands the open file to the server (sendfile / wsgi.file_wrapper): no Python
    loop over the bytes. conditional=True answers If-None-Match with 304.
    """
    mimetype = (
        "application/zip" if release.package_filename.endswith(".zip") else "application/gzip"
    )
    resp = send_file(
        path,
        mimetype=mimetype,
        as_attachment=True,
        download_name=release.package_filename,
        etag=release.package_sha256,
        conditional=True,
        max_age=0,
    )
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp

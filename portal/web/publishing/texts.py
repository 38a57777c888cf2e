"""Presentation helpers of the publish pages: errors by form field, manifest text."""

from __future__ import annotations

import yaml

from portal.lib.versions import Version
from portal.services.catalog import queries as catalog
from portal.services.errors import DomainError

FIELDS = ("package", "manifest", "visibility", "sha256")


def errors_by_field(
    exc: DomainError | None, *, manifest_field: str = "manifest"
) -> dict[str, list[dict]]:
    """Each error under the form field it concerns: package problems next to the file
    input, manifest problems (any pointer into the manifest) next to the field the
    manifest came from: the textarea, or the package when its module.yaml was used."""
    slots: dict[str, list[dict]] = {field: [] for field in FIELDS}
    slots["general"] = []
    if exc is None:
        return slots
    errors = exc.errors or [{"pointer": "", "message": exc.message}]
    for err in errors:
        head = err["pointer"].strip("/").split("/")[0]
        if head in ("package", "visibility", "sha256"):
            slots[head].append(err)
        elif exc.status in (413, 415) and not exc.errors:
            slots["package"].append(err)
        elif exc.status in (403, 409) and not err["pointer"]:
            slots["general"].append(err)
        else:
            slots[manifest_field].append(err)
    return slots


def manifest_text_for(manifest: dict) -> str:
    return yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)


def next_version_text(release_id: int, *, actor) -> str:
    """The manifest of a release with its patch version bumped: the start of a new one."""
    release = catalog.get_release(release_id, actor=actor)
    manifest = dict(release.manifest)
    version = Version.parse(release.version)
    manifest["version"] = f"{version.major}.{version.minor}.{version.patch + 1}"
    return manifest_text_for(manifest)

"""Reading what a developer submits (a package and/or a manifest) into one checked whole.

Shared by publishing, resubmission and the validate-manifest endpoint, so every path
applies the same rules and reports the same errors.
"""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass, field

from portal.lib.json_errors import join_pointer
from portal.models import Visibility
from portal.services.errors import ValidationFailed
from portal.services.publishing import manifest as manifests
from portal.services.publishing.inspection import InspectedPackage, inspect_package

SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass
class PackageFile:
    """An uploaded package already on disk (streamed and hashed on arrival)."""

    path: pathlib.Path
    sha256: str
    size: int
    filename: str = ""


@dataclass
class Submission:
    """What a client sent; every part optional until `read_submission` checks it."""

    manifest_yaml: str | bytes | None = None
    manifest_json: object = None
    package: PackageFile | None = None
    expected_sha256: str | None = None
    visibility: str | None = None
    publisher: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def has_content(self) -> bool:
        return (
            self.manifest_yaml is not None
            or self.manifest_json is not None
            or self.package is not None
        )


@dataclass
class CheckedSubmission:
    manifest: dict  # normalized
    package: PackageFile | None
    inspected: InspectedPackage | None
    # Top-level keys where a manifest sent beside a package differs from the package's
    # module.yaml (the sent one is used): shown beside the field so it never wins silently.
    overrides: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]


def check_options(sub: Submission) -> None:
    """The small fields around the content. Raises ValidationFailed."""
    errors = []
    if sub.visibility is not None and not Visibility.has(sub.visibility):
        errors.append({"pointer": "/visibility", "message": "must be public or private"})
    if sub.expected_sha256 is not None and not SHA256_RE.match(sub.expected_sha256):
        errors.append({"pointer": "/sha256", "message": "must be 64 hexadecimal digits"})
    if errors:
        raise ValidationFailed("The request is invalid.", errors=errors)


def read_submission(sub: Submission) -> CheckedSubmission:
    """Check the package and manifest fully. Raises BadRequest, TooLarge, UnsupportedType,
    ValidationFailed — before anything is stored."""
    check_options(sub)
    if not sub.has_content:
        raise ValidationFailed(
            "Send a package, a manifest, or both.",
            errors=[{"pointer": "/manifest", "message": "a package or a manifest is required"}],
        )
    inspected = None
    if sub.package is not None:
        if sub.expected_sha256 and sub.expected_sha256.lower() != sub.package.sha256:
            raise ValidationFailed(
                "The package's SHA256 is not the one expected.",
                errors=[
                    {
                        "pointer": "/sha256",
                        "message": f"expected {sub.expected_sha256.lower()}, "
                        f"received {sub.package.sha256}",
                    }
                ],
            )
        inspected = inspect_package(sub.package.path)
    separate = _separate_manifest(sub)
    data, overrides = separate, ()
    if inspected is not None:
        packaged = manifests.load_manifest_yaml(inspected.manifest_bytes)
        if separate is not None:
            _check_agreement(packaged, separate)
            overrides = _differing_keys(packaged, separate)
        data = packaged if separate is None else separate
    normalized = manifests.check_manifest(data)
    _refuse_nul(normalized)
    return CheckedSubmission(
        manifest=normalized, package=sub.package, inspected=inspected, overrides=overrides
    )


def _separate_manifest(sub: Submission) -> dict | None:
    if sub.manifest_yaml is not None:
        return manifests.load_manifest_yaml(sub.manifest_yaml)
    if sub.manifest_json is not None:
        return manifests.load_manifest_json(sub.manifest_json)
    return None


def _check_agreement(packaged: dict, separate: dict) -> None:
    errors = [
        {
            "pointer": f"/{key}",
            "message": f"the package's module.yaml says {packaged.get(key)!r}, "
            f"the manifest sent says {separate.get(key)!r}",
        }
        for key in ("name", "version")
        if str(packaged.get(key)) != str(separate.get(key))
    ]
    if errors:
        raise ValidationFailed("The package and the manifest disagree.", errors=errors)


def _differing_keys(packaged: dict, separate: dict) -> tuple[str, ...]:
    """Top-level keys whose values differ, in the package manifest's order, then new ones."""
    keys = list(packaged) + [key for key in separate if key not in packaged]
    return tuple(key for key in keys if packaged.get(key) != separate.get(key))


def _refuse_nul(manifest: dict) -> None:
    """No text of a manifest may hold a NUL character (PostgreSQL cannot store one, and no
    manifest needs one): refused the same way on both databases."""
    stack, errors = [("", manifest)], []
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in str(key):
                    errors.append({"pointer": pointer or "/", "message": "a key holds NUL"})
                stack.append((join_pointer(pointer, key), item))
        elif isinstance(value, list):
            stack.extend((join_pointer(pointer, i), item) for i, item in enumerate(value))
        elif isinstance(value, str) and "\x00" in value:
            errors.append({"pointer": pointer, "message": "must not contain NUL characters"})
    if errors:
        raise ValidationFailed("The manifest is invalid.", errors=errors)

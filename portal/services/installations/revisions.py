"""An installation's revisions as people and scripts read them: each with what changed
against the one before, secrets masked. Raw secret values are compared here and nowhere
else, and never leave this module: a secret shows only as added, removed or changed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from portal.lib.config_schema import mask_secrets, secret_fields
from portal.lib.json_errors import join_pointer, unescape_pointer
from portal.models import InstallationRevision, User
from portal.services.installations.installs import config_schema_of
from portal.services.installations.lifecycle import list_revisions

MAX_SHOWN = 200  # characters of one configuration value in a change
_ABSENT = object()


_LABELS = {"version": "version", "endpoint_url": "endpoint URL"}


@dataclass(frozen=True)
class Change:
    field: str  # version | endpoint_url | config
    kind: str  # added | removed | changed
    before: str | None = None  # text shown (JSON for a non-text value); never a secret
    after: str | None = None
    secret: bool = False
    pointer: str = ""  # into the configuration, for a config change

    @property
    def config(self) -> bool:
        return self.field == "config"

    @property
    def what(self) -> str:
        """What changed, for people: "version", "endpoint URL", or the pointer."""
        return self.pointer if self.config else _LABELS[self.field]


@dataclass
class RevisionChanges:
    """One revision, its configuration masked, and its changes against the one before
    (`first`: the changes are what it was installed with)."""

    revision: int
    version: str
    config: dict
    endpoint_url: str | None
    reason: str | None
    actor: str | None  # the e-mail of who made it; None: the system
    created_at: datetime
    changes: list[Change] = field(default_factory=list)
    first: bool = False


def revision_changes(installation_id: int, *, actor: User) -> list[RevisionChanges]:
    """The installation's revisions, newest first, each with its masked configuration and
    its changes against the revision before it. Raises NotFound."""
    entries, previous = [], None
    for rev in sorted(list_revisions(installation_id, actor=actor), key=lambda r: r.revision):
        entries.append(
            RevisionChanges(
                revision=rev.revision,
                version=rev.version,
                config=_masked(rev),
                endpoint_url=rev.endpoint_url,
                reason=rev.reason,
                actor=rev.actor.email if rev.actor else None,
                created_at=rev.created_at,
                changes=_diff(previous, rev),
                first=previous is None,
            )
        )
        previous = rev
    return entries[::-1]


def _diff(before: InstallationRevision | None, after: InstallationRevision) -> list[Change]:
    """Version, endpoint and configuration changes from `before` (None: nothing) to `after`.
    Values come from the masked configurations; a secret is compared on the stored values
    but shown only as added, removed or changed."""
    changes: list[Change] = []
    if before is not None and before.version != after.version:
        changes.append(Change("version", "changed", before.version, after.version))
    old_url = before.endpoint_url if before is not None else None
    if old_url != after.endpoint_url:
        kind = (
            "changed" if old_url and after.endpoint_url else "added" if not old_url else "removed"
        )
        changes.append(Change("endpoint_url", kind, old_url, after.endpoint_url))
    secrets = _secrets(after) | (_secrets(before) if before is not None else set())
    old = _leaves(_masked(before)) if before is not None else {}
    new = _leaves(_masked(after))
    for pointer in sorted(set(old) | set(new)):
        if any(pointer == s or pointer.startswith(s + "/") for s in secrets):
            continue
        if pointer not in old:
            changes.append(_config_change(pointer, "added", None, _text(new[pointer])))
        elif pointer not in new:
            changes.append(_config_change(pointer, "removed", _text(old[pointer]), None))
        elif old[pointer] != new[pointer] or type(old[pointer]) is not type(new[pointer]):
            changes.append(
                _config_change(pointer, "changed", _text(old[pointer]), _text(new[pointer]))
            )
    for pointer in sorted(secrets):
        had, was = _at(before.config if before is not None else {}, pointer)
        has, now = _at(after.config, pointer)
        if had != has:
            changes.append(_config_change(pointer, "added" if has else "removed", secret=True))
        elif has and was != now:
            changes.append(_config_change(pointer, "changed", secret=True))
    return changes


def _config_change(pointer: str, kind: str, before=None, after=None, *, secret=False) -> Change:
    return Change("config", kind, before, after, secret=secret, pointer=pointer)


def _masked(rev: InstallationRevision) -> dict:
    return mask_secrets(config_schema_of(rev.release), rev.config or {})


def _secrets(rev: InstallationRevision) -> set[str]:
    return secret_fields(config_schema_of(rev.release))


def _leaves(config: Any, pointer: str = "") -> dict[str, Any]:
    """JSON Pointer → value of every leaf (a scalar, a list or an empty object)."""
    if not isinstance(config, dict) or (not config and pointer):
        return {pointer: config}
    result: dict[str, Any] = {}
    for key, value in config.items():
        result.update(_leaves(value, join_pointer(pointer, key)))
    return result


def _at(config: Any, pointer: str) -> tuple[bool, Any]:
    node = config
    for token in pointer.split("/")[1:]:
        token = unescape_pointer(token)
        if not isinstance(node, dict) or token not in node:
            return False, None
        node = node[token]
    return True, node


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"

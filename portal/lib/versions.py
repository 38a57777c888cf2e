"""SemVer 2.0.0 versions and npm-style version constraints.

Versions order by SemVer precedence with build metadata ignored, and `Version.sort_key()`
is a plain ASCII string whose byte order is that precedence, so a database can ORDER BY it.
Constraints follow npm's range grammar plus `==`, `!=` and comma-as-AND; a pre-release only
satisfies a constraint that names a pre-release of the same MAJOR.MINOR.PATCH (npm's rule).
Bad input raises InvalidVersion / InvalidConstraint (both ValueError), never anything else.
PEP 440 (`packaging`) orders SemVer differently, so precedence is implemented here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import total_ordering
from itertools import pairwise

MAX_VERSION_LENGTH = 128
MAX_CONSTRAINT_LENGTH = 256

# [0-9] rather than \d: \d would accept non-ASCII digits such as "١".
_NUM = r"0|[1-9][0-9]*"
_IDS = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_VERSION_RE = re.compile(rf"({_NUM})\.({_NUM})\.({_NUM})(?:-({_IDS}))?(?:\+({_IDS}))?")
_PART = rf"{_NUM}|[xX*]"
_PARTIAL_RE = re.compile(rf"({_PART})(?:\.({_PART}))?(?:\.({_PART}))?")
_OPERATORS = (">=", "<=", "==", "!=", ">", "<", "=", "^", "~")  # two-character ones first
_VERSION_HINT = "expected MAJOR.MINOR.PATCH[-prerelease][+build], e.g. 1.2.3 or 1.0.0-rc.1"
_CONSTRAINT_HINT = (
    "expected comparisons such as '>=1.2.0, <2.0.0', '^1.2.3', '~1.2', '1.x' or '*', "
    "joined by commas or spaces (AND) or '||' (OR)"
)


class InvalidVersion(ValueError):
    """A version string that is not SemVer 2.0.0; the message says what is wrong."""


class InvalidConstraint(ValueError):
    """A constraint string that cannot be parsed; the message says what is wrong."""


def _show(text: object) -> str:
    """A short repr for messages, so a megabyte of garbage does not end up in a response."""
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _why_invalid(text: str) -> str:
    """Explain why `text` is not a version (only called once the strict regex has failed)."""
    if not text:
        return "it is empty"
    if text != text.strip():
        return "remove the surrounding whitespace"
    if text[0] in "vV" and text[1:2].isdigit():
        return f"drop the leading 'v' (write {text[1:]!r})"
    core, plus, build = text.partition("+")
    core, dash, pre = core.partition("-")
    parts = core.split(".")
    for part in parts:
        if not (part.isascii() and part.isdigit()):
            return f"{part!r} is not a number" if part else "a numeric part is empty"
        if len(part) > 1 and part[0] == "0":
            return f"the number {part!r} has a leading zero"
    if len(parts) != 3:
        fix = f" (write {'.'.join((parts + ['0', '0'])[:3])!r}?)" if len(parts) < 3 else ""
        return f"it has {len(parts)} numeric part(s) but a version needs exactly three{fix}"
    for name, sep, idents in (("pre-release", dash, pre), ("build", plus, build)):
        for ident in idents.split(".") if sep else ():
            if not ident:
                return f"the {name} has an empty identifier"
            if not re.fullmatch(r"[0-9A-Za-z-]+", ident):
                return f"{name} identifier {ident!r} may only use ASCII letters, digits and '-'"
    return "a numeric pre-release identifier has a leading zero"


def _num_key(number: int) -> str:
    # Length first so 10 sorts after 9: one char '1'..'9' for up to 9 digits, then ':' (just
    # after '9') plus a three-digit length for longer ones (a 128-char version has <= 124).
    digits = str(number)
    return (str(len(digits)) if len(digits) < 10 else f":{len(digits):03d}") + digits


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A SemVer 2.0.0 version; equality, hashing and order follow precedence (build ignored).

    Build it with `Version.parse`; the constructor does not validate its fields.
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str | int, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse strict SemVer 2.0.0 text (no 'v', no spaces, at most 128 characters)."""
        if isinstance(text, Version):
            return text
        if not isinstance(text, str):
            kind = type(text).__name__
            raise InvalidVersion(f"expected a version as text, got {kind} {_show(text)}")
        if len(text) > MAX_VERSION_LENGTH:
            raise InvalidVersion(
                f"version {_show(text)} is {len(text)} characters long; at most "
                f"{MAX_VERSION_LENGTH} are allowed"
            )
        match = _VERSION_RE.fullmatch(text)
        pre = match[4].split(".") if match and match[4] else []
        if match is None or any(p[0] == "0" and len(p) > 1 and p.isdigit() for p in pre):
            raise InvalidVersion(
                f"{_show(text)} is not a valid version: {_why_invalid(text)}; {_VERSION_HINT}"
            )
        return cls(
            int(match[1]),
            int(match[2]),
            int(match[3]),
            tuple(int(p) if p.isdigit() else p for p in pre),
            tuple(match[5].split(".")) if match[5] else (),
        )

    @property
    def is_prerelease(self) -> bool:
        """True for versions with a pre-release part, such as 1.0.0-rc.1."""
        return bool(self.prerelease)

    def _precedence(self) -> tuple:
        # A release outranks its pre-releases; numeric identifiers rank below alphanumeric
        # ones, and tuples give "shorter list first when all shared fields are equal".
        idents = tuple((0, i, "") if isinstance(i, int) else (1, 0, i) for i in self.prerelease)
        return (self.major, self.minor, self.patch, not self.prerelease, idents)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._precedence() == other._precedence()

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._precedence() < other._precedence()

    def __hash__(self) -> int:
        return hash(self._precedence())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(map(str, self.prerelease))
        return text + ("+" + ".".join(self.build) if self.build else "")

    def sort_key(self) -> str:
        """An ASCII key whose byte order is SemVer precedence (build left out); <= 191 chars.

        Core numbers are length-prefixed; then '~' for a release (above every pre-release) or
        '-' and each identifier: numeric ones length-prefixed (they start with '1'..':'),
        alphanumeric ones as '@' + text + '!', where '!' sorts below every allowed character,
        so "alpha" < "alpha1" and "a-b" < "a0" hold as in ASCII.
        """
        core = "".join(_num_key(n) for n in (self.major, self.minor, self.patch))
        if not self.prerelease:
            return core + "~"
        idents = (_num_key(i) if isinstance(i, int) else f"@{i}!" for i in self.prerelease)
        return core + "-" + "".join(idents)


def sort_key(text: str) -> str:
    """The precedence-ordered ASCII sort key of a version string (see `Version.sort_key`)."""
    return Version.parse(text).sort_key()


@dataclass(frozen=True)
class _Interval:
    """Versions between lo and hi (None: unbounded), or outside them when negated (`!=`)."""

    lo: Version | None = None
    lo_incl: bool = True
    hi: Version | None = None
    hi_incl: bool = True
    negate: bool = False

    def contains(self, v: Version) -> bool:
        above = self.lo is None or v > self.lo or (self.lo_incl and v == self.lo)
        below = self.hi is None or v < self.hi or (self.hi_incl and v == self.hi)
        return (above and below) != self.negate


_ANY = _Interval()
_NOTHING = _Interval(negate=True)
_Alternative = tuple[tuple[_Interval, ...], frozenset[tuple[int, int, int]]]


def _bad(text: str, why: str) -> InvalidConstraint:
    return InvalidConstraint(
        f"{_show(text)} is not a valid version constraint: {why}; " + _CONSTRAINT_HINT
    )


def _floor(major: int, minor: int, patch: int) -> Version:
    # X.Y.Z-0 is the lowest version of X.Y.Z: as an exclusive upper bound it also keeps out
    # X.Y.Z's pre-releases, as npm's `<2.0.0-0` does.
    return Version(major, minor, patch, (0,))


def _top(major: int, minor: int | None) -> tuple[int, int, int]:
    # The release just above what a partial covers: 1 -> 2.0.0, 1.2 and 1.2.3 -> 1.3.0.
    return (major + 1, 0, 0) if minor is None else (major, minor + 1, 0)


def _partial(word: str, text: str, unlocked: set | None) -> tuple[list, Version | None]:
    """Parse `1`, `1.x`, `1.2.*` or a full version; wildcards and missing parts become None.

    A full pre-release version is added to `unlocked` (npm's pre-release rule).
    """
    if word[:1] in "<>=!^~|":
        raise _bad(
            text,
            f"{word!r} has an unknown or doubled operator; use one of "
            ">=, >, <=, <, =, ==, !=, ^, ~ once, and '||' for OR",
        )
    if _VERSION_RE.fullmatch(word):
        try:
            full = Version.parse(word)
        except InvalidVersion as exc:
            raise _bad(text, str(exc)) from exc
        if full.prerelease and unlocked is not None:
            unlocked.add((full.major, full.minor, full.patch))
        return [full.major, full.minor, full.patch], full
    match = _PARTIAL_RE.fullmatch(word)
    if match is None:
        raise _bad(text, f"{word!r} is not a version: {_why_invalid(word)}")
    nums = [None if g is None or g in ("x", "X", "*") else int(g) for g in match.groups()]
    if any(a is None and b is not None for a, b in pairwise(nums)):
        raise _bad(text, f"in {word!r} a number follows a wildcard; write e.g. 1.x or 1.2.x")
    return nums, None


def _comparator(word: str, text: str, unlocked: set) -> _Interval:
    """Turn one `op version` word into an interval, expanding partials the way npm does."""
    op = next((o for o in _OPERATORS if word.startswith(o)), "")
    if op == word:
        raise _bad(text, f"the operator {op!r} needs a version after it")
    # `!=` excludes versions, so naming a pre-release there must not let pre-releases in.
    (major, minor, patch), full = _partial(word[len(op) :], text, None if op == "!=" else unlocked)
    if major is None:  # `*`: everything, except for `<*`, `>*` and `!=*` which match nothing
        return _NOTHING if op in ("<", ">", "!=") else _ANY
    lo = full or Version(major, minor or 0, patch or 0)
    top = _top(major, minor)
    if op == "^":  # the left-most non-zero part given may not change
        if major or minor is None:
            top = (major + 1, 0, 0)
        else:
            top = (0, minor + 1, 0) if minor or patch is None else (0, 0, patch + 1)
        return _Interval(lo, True, _floor(*top), False)
    if op == "~":  # patch-level changes only (minor-level when only a major is given)
        return _Interval(lo, True, _floor(*top), False)
    # What a bare version covers: exactly itself, or [lo, top) for a partial such as 1.2.
    hi, hi_incl = (full, True) if full else (_floor(*top), False)
    return {
        ">=": _Interval(lo=lo),
        ">": _Interval(lo=full, lo_incl=False) if full else _Interval(lo=Version(*top)),
        "<": _Interval(hi=full or _floor(major, minor or 0, patch or 0), hi_incl=False),
        "<=": _Interval(hi=hi, hi_incl=hi_incl),
        "!=": _Interval(lo, True, hi, hi_incl, negate=True),
    }.get(op, _Interval(lo, True, hi, hi_incl))


def _hyphen(left: str, right: str, text: str, unlocked: set) -> _Interval:
    """`1.2 - 2.3.4` as npm reads it: >=1.2.0 and <=2.3.4 (a partial upper end is exclusive)."""
    if any(end[:1] in "<>=!^~" for end in (left, right)):
        raise _bad(text, f"the ends of the hyphen range {left} - {right} must be plain versions")
    (lmaj, lmin, lpat), lfull = _partial(left, text, unlocked)
    (rmaj, rmin, rpat), rfull = _partial(right, text, unlocked)
    lo = None if lmaj is None else lfull or Version(lmaj, lmin or 0, lpat or 0)
    if rfull is not None or rmaj is None:
        return _Interval(lo=lo, hi=rfull)
    return _Interval(lo=lo, hi=_floor(*_top(rmaj, rmin)), hi_incl=False)


def _parse_alternative(alt: str, text: str) -> _Alternative:
    """Parse one `||` branch: comparators joined by commas or whitespace, all must hold."""
    intervals, unlocked = [], set()
    for part in alt.split(","):
        words = part.split()
        if not words:
            raise _bad(text, "there is an empty comparator (a stray ',' or '||'?)")
        i = 0
        while i < len(words):
            if i + 1 < len(words) and words[i + 1] == "-":
                if i + 2 >= len(words):
                    raise _bad(text, "a hyphen range needs a version on both sides")
                intervals.append(_hyphen(words[i], words[i + 2], text, unlocked))
                i += 3
                continue
            word = words[i]
            if word in _OPERATORS and i + 1 < len(words):  # `>= 1.2.0`: spaced-out operator
                i += 1
                word += words[i]
            intervals.append(_comparator(word, text, unlocked))
            i += 1
    return tuple(intervals), frozenset(unlocked)


@dataclass(frozen=True)
class Constraint:
    """A parsed version constraint such as `^1.2.0 || >=2.1, !=2.3.0`."""

    text: str
    alternatives: tuple[_Alternative, ...] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> Constraint:
        """Parse a constraint (at most 256 characters); empty text means `*`."""
        if isinstance(text, Constraint):
            return text
        if not isinstance(text, str):
            kind = type(text).__name__
            raise InvalidConstraint(
                f"expected a version constraint as text, got {kind} {_show(text)}"
            )
        stripped = text.strip()
        if len(stripped) > MAX_CONSTRAINT_LENGTH:
            raise _bad(
                stripped,
                f"it is {len(stripped)} characters long; at most "
                f"{MAX_CONSTRAINT_LENGTH} are allowed",
            )
        if not stripped:
            return cls("", (((_ANY,), frozenset()),))
        return cls(stripped, tuple(_parse_alternative(a, stripped) for a in stripped.split("||")))

    def allows(self, version: Version | str) -> bool:
        """Whether `version` satisfies the constraint (a bad version string: InvalidVersion)."""
        v = Version.parse(version)
        return any(
            all(interval.contains(v) for interval in intervals)
            and (not v.prerelease or (v.major, v.minor, v.patch) in unlocked)
            for intervals, unlocked in self.alternatives
        )

    def filter(self, versions: Iterable[Version | str]) -> list[Version]:
        """The allowed versions, newest first."""
        parsed = [Version.parse(v) for v in versions]
        return sorted((v for v in parsed if self.allows(v)), reverse=True)

    def best(self, versions: Iterable[Version | str]) -> Version | None:
        """The newest allowed version, or None when none is allowed."""
        allowed = self.filter(versions)
        return allowed[0] if allowed else None

    @property
    def exact(self) -> Version | None:
        """The version when the constraint pins exactly one (`1.2.3`, `==1.2.3`), else None."""
        if len(self.alternatives) == 1 and len(self.alternatives[0][0]) == 1:
            only = self.alternatives[0][0][0]
            if only.lo is not None and only.lo == only.hi and only.lo_incl and only.hi_incl:
                return None if only.negate else only.lo
        return None

    def __str__(self) -> str:
        return self.text

"""SemVer 2.0.0 precedence, npm-style constraints and the database sort key."""

from __future__ import annotations

import itertools

import pytest
import semver
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from portal.lib.versions import (
    Constraint,
    InvalidConstraint,
    InvalidVersion,
    Version,
    sort_key,
)

V = Version.parse
# No per-example deadline: the suite may run on a busy machine, and slowness is not a bug here.
relaxed = settings(deadline=None)


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


# ---------------------------------------------------------------- strategies

numbers = st.one_of(
    st.integers(0, 12), st.integers(0, 10**20), st.sampled_from([9, 10, 99, 100, 10**9, 10**18])
)
alphanumeric = st.text(alphabet="-09AZaz", min_size=1, max_size=6).filter(lambda s: not s.isdigit())
identifiers = st.one_of(numbers, alphanumeric, st.sampled_from(["alpha", "beta", "rc", "a-", "-"]))
builds = st.lists(st.text(alphabet="-0aZ", min_size=1, max_size=4), max_size=3).map(tuple)


@st.composite
def versions(draw) -> Version:
    version = Version(
        draw(numbers),
        draw(numbers),
        draw(numbers),
        tuple(draw(st.lists(identifiers, max_size=5))),
        draw(builds),
    )
    assume(len(str(version)) <= 128)
    return version


releases = st.builds(Version, numbers, numbers, numbers)


# ---------------------------------------------------------------- precedence

SPEC_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]

EXTRA_ORDERED_PAIRS = [
    ("1.0.0-2", "1.0.0-10"),  # numeric identifiers compare as numbers
    ("1.0.0-10", "1.0.0-a"),  # numeric identifiers rank below alphanumeric ones
    ("1.0.0-999", "1.0.0-1a"),  # "1a" is alphanumeric
    ("1.0.0-alpha", "1.0.0-alpha1"),  # a prefix sorts first
    ("1.0.0-alpha", "1.0.0-alpha-"),
    ("1.0.0-Z", "1.0.0-a"),  # ASCII: upper case before lower case
    ("1.0.0--", "1.0.0-0a"),  # ASCII: '-' before digits
    ("1.0.0-a-b", "1.0.0-a0"),
    ("1.0.0-a.b", "1.0.0-a-b"),  # field by field, not as one string
    ("1.0.0-alpha.1", "1.0.0-alpha.1.0"),  # more fields rank higher
    ("9.0.0", "10.0.0"),
    ("1.9.0", "1.10.0"),
    ("1.0.9", "1.0.10"),
    ("1.0.0", "1.0.1-alpha"),
    ("999999999999999999.0.0", "1000000000000000000.0.0"),
    ("1000000000000000000.0.0", "99999999999999999999999.0.0"),
    ("1.0.0-999999999999999999", "1.0.0-1000000000000000000"),
]

ORDERED_PAIRS = list(itertools.pairwise(SPEC_ORDER)) + EXTRA_ORDERED_PAIRS


@pytest.mark.parametrize(("lower", "higher"), ORDERED_PAIRS)
def test_versions_follow_semver_precedence(lower, higher):
    assert V(lower) < V(higher)
    assert V(higher) > V(lower)
    assert V(lower) != V(higher)


@pytest.mark.parametrize(("lower", "higher"), ORDERED_PAIRS)
def test_sort_keys_order_like_the_versions(lower, higher):
    assert sort_key(lower) < sort_key(higher)
    assert V(lower).sort_key() == sort_key(lower)


def test_sorting_the_spec_example_gives_the_spec_order():
    shuffled = [V(text) for text in reversed(SPEC_ORDER)]
    assert [str(v) for v in sorted(shuffled)] == SPEC_ORDER
    assert sorted(SPEC_ORDER[::-1], key=sort_key) == SPEC_ORDER


def test_build_metadata_is_ignored_for_order_and_equality():
    a, b, plain = V("1.0.0+a"), V("1.0.0+b.1"), V("1.0.0")
    assert a == b == plain
    assert hash(a) == hash(b) == hash(plain)
    assert not a < b and not b < a
    assert a.sort_key() == b.sort_key() == plain.sort_key()
    assert len({a, b, plain}) == 1


def test_build_metadata_is_kept_in_the_text():
    version = V("1.0.0-rc.1+build.5")
    assert str(version) == "1.0.0-rc.1+build.5"
    assert version.build == ("build", "5")


def test_parse_splits_numeric_and_alphanumeric_identifiers():
    version = Version.parse("1.2.3-alpha.10.x-y+exp.sha.5114f85")
    assert (version.major, version.minor, version.patch) == (1, 2, 3)
    assert version.prerelease == ("alpha", 10, "x-y")
    assert version.build == ("exp", "sha", "5114f85")
    assert version.is_prerelease
    assert not V("1.2.3+build").is_prerelease


def test_a_version_does_not_equal_its_text():
    assert V("1.0.0") != "1.0.0"
    with pytest.raises(TypeError):
        _ = V("1.0.0") < "2.0.0"


def test_a_release_key_sorts_after_every_prerelease_key_of_that_version():
    assert V("1.0.0").sort_key() == "111010~"
    assert V("1.0.0-alpha.1").sort_key() == "111010-@alpha!11"
    assert V("1.0.0-zzzzzz.99").sort_key() < V("1.0.0").sort_key()


def test_sort_key_of_the_longest_worst_case_version_fits_in_255_characters():
    # Single-character alphanumeric identifiers cost the most: 3 key chars per 2 text chars.
    worst = "0.0.0-" + ".".join(["a"] * 60) + ".aa"
    assert len(worst) == 128
    assert len(sort_key(worst)) == 191
    longest_number = "1" * 124 + ".0.0"
    assert len(sort_key(longest_number)) <= 191
    assert len(sort_key("0.0.0-" + "1" * 122)) <= 191


# ---------------------------------------------------------------- invalid versions

INVALID_VERSIONS = [
    ("", "empty"),
    ("1.10", "'1.10.0'"),
    ("1", "'1.0.0'"),
    ("1.2.3.4", "exactly three"),
    ("01.2.3", "leading zero"),
    ("1.02.3", "leading zero"),
    ("1.2.03", "leading zero"),
    ("v1.2.3", "drop the leading 'v'"),
    ("V1.2.3", "drop the leading 'v'"),
    ("1.2.3-", "empty identifier"),
    ("1.2.3+", "empty identifier"),
    ("1.2.3-a..b", "empty identifier"),
    ("1.2.3-01", "leading zero"),
    ("1.2.3-alpha_1", "ASCII letters"),
    ("1.2.3-é", "ASCII letters"),
    ("1.2.3+b@d", "ASCII letters"),
    (" 1.2.3", "whitespace"),
    ("1.2.3\n", "whitespace"),
    ("1.2.x", "not a number"),
    ("a.b.c", "not a number"),
    ("١.٢.٣", "not a number"),  # Arabic-Indic digits are not ASCII digits
    ("1..3", "empty"),
    (">=1.2.3", "not a number"),
    ("1.2.3-" + "a" * 130, "at most 128"),
]


@pytest.mark.parametrize(("text", "fragment"), INVALID_VERSIONS)
def test_invalid_versions_raise_invalid_version_saying_what_is_wrong(text, fragment):
    with pytest.raises(InvalidVersion) as caught:
        Version.parse(text)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("value", [None, 1.1, 1, b"1.0.0", ["1.0.0"]])
def test_a_non_text_version_raises_invalid_version(value):
    with pytest.raises(InvalidVersion, match="as text"):
        Version.parse(value)


def test_leading_zeros_are_fine_in_build_metadata_and_alphanumeric_identifiers():
    assert str(V("1.2.3-0a.0+001")) == "1.2.3-0a.0+001"


# ---------------------------------------------------------------- constraints

POOL = [
    V(text)
    for text in [
        "0.0.0", "0.0.1", "0.0.3", "0.0.4", "0.1.0", "0.1.5", "0.2.0", "0.2.3", "0.2.9", "0.3.0",
        "0.9.9", "1.0.0", "1.0.1", "1.1.9", "1.2.0", "1.2.2", "1.2.3", "1.2.4", "1.2.99",
        "1.3.0", "1.9.9", "2.0.0", "2.3.4", "2.3.5", "2.4.0", "3.0.0", "10.0.0",
        "1.2.3-alpha", "1.2.3-beta.2", "1.3.0-rc.1", "2.0.0-rc.1", "0.0.4-pre",
    ]
]  # fmt: skip

EQUIVALENT = [
    ("^1.2.3", ">=1.2.3, <2.0.0"),
    ("^0.2.3", ">=0.2.3, <0.3.0"),
    ("^0.0.3", ">=0.0.3, <0.0.4"),
    ("^1.2", ">=1.2.0, <2.0.0"),
    ("^1", ">=1.0.0, <2.0.0"),
    ("^0.0", ">=0.0.0 <0.1.0"),
    ("^0", "<1.0.0"),
    ("^0.1", ">=0.1.0 <0.2.0"),
    ("^1.x", ">=1.0.0 <2.0.0"),
    ("^*", "*"),
    ("~1.2.3", ">=1.2.3, <1.3.0"),
    ("~1.2", ">=1.2.0, <1.3.0"),
    ("~1", ">=1.0.0, <2.0.0"),
    ("~0.2.3", ">=0.2.3 <0.3.0"),
    ("~1.x", ">=1.0.0 <2.0.0"),
    ("1.2", ">=1.2.0, <1.3.0"),
    ("1.2.x", ">=1.2.0, <1.3.0"),
    ("1.2.*", ">=1.2.0, <1.3.0"),
    ("1.X", ">=1.0.0, <2.0.0"),
    ("1.x.x", ">=1.0.0, <2.0.0"),
    ("1", ">=1.0.0, <2.0.0"),
    ("x", ">=0.0.0"),
    ("*.*.*", ">=0.0.0"),
    ("", "*"),
    ("1.2.3", "=1.2.3"),
    ("==1.2.3", "=1.2.3"),
    ("=1.2", "1.2.x"),
    (">=1.2", ">=1.2.0"),
    (">1.2", ">=1.3.0"),
    (">1", ">=2.0.0"),
    ("<1.2", "<1.2.0"),
    ("<=1.2", "<1.3.0"),
    ("<=1", "<2.0.0"),
    (">= 1.2.0", ">=1.2.0"),
    ("> 1.2.0 ,  < 2", ">1.2.0,<2.0.0"),
    (">=1.0.0,<2.0.0", ">=1.0.0 <2.0.0"),
    (">=1.2.3 !=1.2.4 <2", ">=1.2.3, !=1.2.4, <2.0.0"),
    ("!=1.2", "<1.2.0 || >=1.3.0"),
    ("1.2.3 - 2.3.4", ">=1.2.3 <=2.3.4"),
    ("1.2 - 2.3.4", ">=1.2.0 <=2.3.4"),
    ("1.2.3 - 2.3", ">=1.2.3 <2.4.0"),
    ("1.2.3 - 2", ">=1.2.3 <3.0.0"),
    ("* - 2.3.4", "<=2.3.4"),
    ("1.2.3 - *", ">=1.2.3"),
    (">=*", "*"),
    ("<=*", "*"),
    ("1.2.3+build", "1.2.3"),
]


@pytest.mark.parametrize(("constraint", "expanded"), EQUIVALENT)
def test_shorthand_constraints_allow_what_their_expansion_allows(constraint, expanded):
    short, long = Constraint.parse(constraint), Constraint.parse(expanded)
    for version in POOL:
        assert short.allows(version) == long.allows(version), str(version)


ALLOWS = [
    # caret and tilde
    ("^1.2.3", "1.2.3", True),
    ("^1.2.3", "1.9.9", True),
    ("^1.2.3", "2.0.0", False),
    ("^1.2.3", "1.2.2", False),
    ("^0.2.3", "0.2.9", True),
    ("^0.2.3", "0.3.0", False),
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("~1.2.3", "1.2.99", True),
    ("~1.2.3", "1.3.0", False),
    # comparisons
    (">=1.0.0", "1.0.0", True),
    (">1.0.0", "1.0.0", False),
    ("<=1.0.0", "1.0.0", True),
    ("<1.0.0", "1.0.0", False),
    ("<1.0.0", "0.9.9", True),
    ("=1.0.0", "1.0.0+build", True),
    ("==1.0.0", "1.0.1", False),
    ("!=1.0.0", "1.0.0", False),
    ("!=1.0.0", "1.0.1", True),
    (">=1.0.0, !=1.5.0", "1.5.0", False),
    (">=1.0.0 !=1.5.0", "1.6.0", True),
    # OR
    ("^1.0.0 || ^3.0.0", "3.1.0", True),
    ("^1.0.0 || ^3.0.0", "2.1.0", False),
    ("<1.0.0||>=2.0.0", "2.0.0", True),
    # wildcards
    ("*", "123.4.5", True),
    ("1.x", "1.99.0", True),
    ("1.x", "2.0.0", False),
    (">*", "1.0.0", False),
    ("<*", "1.0.0", False),
    ("!=*", "1.0.0", False),
    # big numbers
    (">=18446744073709551616.0.0", "18446744073709551617.0.0", True),
    ("^99999999999999999999", "100000000000000000000.0.0", False),
]

PRERELEASE_RULE = [
    (">=1.0.0", "2.0.0-rc.1", False),
    ("*", "1.0.0-alpha", False),
    ("", "1.0.0-alpha", False),
    ("<2.0.0", "1.5.0-beta", False),
    ("<2.0.0", "2.0.0-beta", False),
    (">=1.0.0-beta", "1.0.0-rc.1", True),
    (">=1.0.0-beta", "1.0.0-beta", True),
    (">=1.0.0-beta", "1.0.0-alpha", False),
    (">=1.0.0-beta", "1.0.1-alpha", False),
    (">=1.0.0-beta", "1.0.1", True),
    ("^1.2.3-beta.2", "1.2.3-beta.4", True),
    ("^1.2.3-beta.2", "1.2.4-beta.4", False),
    ("~1.2.3-beta.2", "1.2.3-rc", True),
    ("1.2.3-beta.2", "1.2.3-beta.2", True),
    ("1.2.3-beta.2", "1.2.3", False),
    ("1.2.3-beta - 1.2.4", "1.2.3-rc", True),
    ("1.2.2 - 1.2.4-rc.1", "1.2.4-alpha", True),
    ("1.2.2 - 1.2.4-rc.1", "1.2.3-alpha", False),
    # The rule is per alternative: the pre-release in one branch does not unlock the other.
    (">=1.0.0-beta <1.0.1 || >=2.0.0", "2.0.1-rc", False),
    (">=1.0.0-beta <1.0.1 || >=2.0.0-rc <3", "2.0.0-rc.1", True),
    # `!=` only excludes; it never lets pre-releases in.
    ("!=1.0.0-beta", "1.0.0-alpha", False),
    (">=1.0.0-alpha !=1.0.0-beta", "1.0.0-beta", False),
    (">=1.0.0-alpha !=1.0.0-beta", "1.0.0-gamma", True),
]


@pytest.mark.parametrize(("constraint", "version", "expected"), ALLOWS)
def test_constraints_allow_the_versions_npm_would(constraint, version, expected):
    assert Constraint.parse(constraint).allows(version) is expected


@pytest.mark.parametrize(("constraint", "version", "expected"), PRERELEASE_RULE)
def test_a_prerelease_needs_a_constraint_naming_a_prerelease_of_the_same_tuple(
    constraint, version, expected
):
    assert Constraint.parse(constraint).allows(V(version)) is expected


def test_caret_on_zero_major_locks_the_minor():
    caret = Constraint.parse("^0.2.3")
    assert caret.allows("0.2.4")
    assert not caret.allows("0.3.0")


def test_caret_on_zero_major_and_minor_locks_the_patch():
    assert Constraint.parse("^0.0.3").filter(POOL) == [V("0.0.3")]


def test_filter_returns_the_allowed_versions_newest_first():
    allowed = Constraint.parse("^1.2.0").filter(["1.1.0", "1.2.0", "1.9.0", "2.0.0", "1.3.0"])
    assert [str(v) for v in allowed] == ["1.9.0", "1.3.0", "1.2.0"]


def test_best_is_the_newest_allowed_version_and_never_an_unnamed_prerelease():
    available = [V("1.0.0"), V("1.4.0"), V("2.0.0-rc.1"), V("2.0.0")]
    assert Constraint.parse("^1").best(available) == V("1.4.0")
    assert Constraint.parse(">=1.0.0").best(available) == V("2.0.0")
    assert Constraint.parse(">=1.0.0 <2").best(available) == V("1.4.0")
    assert Constraint.parse(">=2.0.0-alpha").best(available[:3]) == V("2.0.0-rc.1")
    assert Constraint.parse("^3").best(available) is None


@pytest.mark.parametrize(
    ("constraint", "exact"),
    [
        ("1.2.3", "1.2.3"),
        ("=1.2.3", "1.2.3"),
        ("==1.2.3", "1.2.3"),
        ("  == 1.2.3-rc.1 ", "1.2.3-rc.1"),
        ("1.2", None),
        (">=1.2.3", None),
        ("!=1.2.3", None),
        ("^1.2.3", None),
        ("1.2.3 || 1.2.4", None),
        (">=1.2.3 <=1.2.3", None),
        ("*", None),
    ],
)
def test_exact_is_the_pinned_version_only_when_one_is_pinned(constraint, exact):
    assert Constraint.parse(constraint).exact == (V(exact) if exact else None)


def test_a_constraint_prints_as_its_stripped_text():
    assert str(Constraint.parse("  >=1.0.0,  <2  ")) == ">=1.0.0,  <2"


INVALID_CONSTRAINTS = [
    (">=", "needs a version"),
    (">= ", "needs a version"),
    ("^^1", "operator"),
    (">>1.0.0", "operator"),
    ("> = 1.0.0", "operator"),
    ("=>1.0.0", "operator"),
    ("!1.0.0", "operator"),
    ("1.0.0 | 2.0.0", "'||'"),
    ("1.2.3 ||", "empty comparator"),
    ("|| 1.2.3", "empty comparator"),
    ("||", "empty comparator"),
    ("1.2.3,", "empty comparator"),
    (">=1.0.0,,<2", "empty comparator"),
    ("v1.2.3", "drop the leading 'v'"),
    (">=01.2.3", "leading zero"),
    ("1.2.3-01", "leading zero"),
    ("1.2.3-", "empty identifier"),
    ("1.2.3.4", "exactly three"),
    ("1.x.3", "follows a wildcard"),
    ("*.2", "follows a wildcard"),
    ("1.2.x-beta", "not a number"),
    ("1.2-beta", "exactly three"),
    ("1.2.3 -", "both sides"),
    ("1.2.3 - >=2", "plain versions"),
    ("- 1.2.3", "not a version"),
    ("~>1.2", "operator"),
    ("latest", "not a version"),
    ("hello world", "not a version"),
    ("1.2.3 && 2.0", "not a version"),
    ("\x00", "not a version"),
    ("^1.2.3-" + "a" * 130, "at most 128"),
    (">=1.0.0 " * 40, "at most 256"),
]


@pytest.mark.parametrize(("text", "fragment"), INVALID_CONSTRAINTS)
def test_invalid_constraints_raise_invalid_constraint_saying_what_is_wrong(text, fragment):
    with pytest.raises(InvalidConstraint) as caught:
        Constraint.parse(text)
    message = str(caught.value)
    assert fragment in message
    assert "expected" in message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("value", [None, 1, 1.1, ["^1"]])
def test_a_non_text_constraint_raises_invalid_constraint(value):
    with pytest.raises(InvalidConstraint, match="as text"):
        Constraint.parse(value)


def test_checking_an_invalid_version_against_a_constraint_raises_invalid_version():
    with pytest.raises(InvalidVersion):
        Constraint.parse("*").allows("1.0")


# ---------------------------------------------------------------- properties


@settings(relaxed, max_examples=300)
@given(versions(), versions())
def test_version_order_matches_python_semver(a, b):
    expected = semver.Version.parse(str(a)).compare(str(b))
    assert (a > b) - (a < b) == expected
    assert (a == b) == (expected == 0)


@settings(relaxed, max_examples=300)
@given(versions(), versions())
@example(V("1.0.0-alpha"), V("1.0.0-alpha1"))
@example(V("1.0.0-a-b"), V("1.0.0-a0"))
@example(V("1.0.0-9"), V("1.0.0-1000000000"))
def test_sort_key_order_equals_version_order(a, b):
    ka, kb = a.sort_key(), b.sort_key()
    assert _sign((ka > kb) - (ka < kb)) == _sign((a > b) - (a < b))
    assert ka.isascii() and ka.isprintable()
    assert len(ka) <= 255


@relaxed
@given(versions(), versions(), versions())
def test_ordering_is_total_antisymmetric_and_transitive(a, b, c):
    assert [a < b, a == b, a > b].count(True) == 1
    if a <= b and b <= a:
        assert a == b and hash(a) == hash(b)
    if a <= b and b <= c:
        assert a <= c
    if a < b and b < c:
        assert a < c


@relaxed
@given(versions())
def test_parsing_the_text_of_a_version_gives_it_back(version):
    again = Version.parse(str(version))
    assert again == version
    assert str(again) == str(version)
    assert again.build == version.build


@relaxed
@given(st.text(max_size=140))
@example("v1.2.3")
@example("1.2.3-" + "9" * 130)
def test_parsing_arbitrary_text_as_a_version_raises_nothing_but_invalid_version(text):
    try:
        Version.parse(text)
    except InvalidVersion as exc:
        assert str(exc)


constraint_texts = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="0123456789.xX*^~<>=!|, -+abv\t", max_size=40),
)


@settings(relaxed, max_examples=500)
@given(constraint_texts, versions())
@example("1.2.3 - ", V("1.0.0"))
@example("9" * 200, V("1.0.0"))
def test_parsing_arbitrary_text_as_a_constraint_raises_nothing_but_invalid_constraint(text, v):
    try:
        constraint = Constraint.parse(text)
    except InvalidConstraint as exc:
        assert str(exc)
        return
    assert isinstance(constraint.allows(v), bool)
    assert constraint.exact is None or isinstance(constraint.exact, Version)


@relaxed
@given(releases, releases)
def test_not_equal_allows_exactly_the_releases_equals_does_not(pin, version):
    equal = Constraint.parse(f"={pin}").allows(version)
    assert Constraint.parse(f"!={pin}").allows(version) is not equal
    assert equal is (version == pin)


@relaxed
@given(releases, releases)
def test_caret_allows_the_same_releases_as_its_expansion(base, version):
    m, n, p = base.major, base.minor, base.patch
    top = f"{m + 1}.0.0" if m else (f"0.{n + 1}.0" if n else f"0.0.{p + 1}")
    expansion = Constraint.parse(f">={m}.{n}.{p}, <{top}")
    assert Constraint.parse(f"^{m}.{n}.{p}").allows(version) == expansion.allows(version)

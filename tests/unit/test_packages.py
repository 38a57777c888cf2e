"""Package inspection and storage: every hostile archive is built here, in tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import warnings
import zipfile

import pytest

from portal.services.errors import TooLarge, UnsupportedType, ValidationFailed
from portal.services.publishing.inspection import MAX_ENTRIES, detect_kind, inspect_package
from portal.services.publishing.storage import PackageStore, stream_to_temp

MANIFEST = b"name: demo\nversion: 1.0.0\n"
MIB = 1024 * 1024


# --- builders -------------------------------------------------------------------------------


def write_zip(path, entries, compression=zipfile.ZIP_DEFLATED):
    """entries: (name, data) pairs or (ZipInfo, data) pairs."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def member(name, data=b"", type=tarfile.REGTYPE, **attrs):
    info = tarfile.TarInfo(name)
    info.type = type
    info.size = len(data) if type == tarfile.REGTYPE else 0
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar_bytes(members, format=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=format) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() and data else None)
    return buf.getvalue()


def write_tgz(path, members, format=tarfile.PAX_FORMAT):
    path.write_bytes(gzip.compress(tar_bytes(members, format), compresslevel=6))
    return path


def patch_zip_flags(raw: bytes, bits: int) -> bytes:
    """Set general-purpose flag bits in every local and central header."""
    data = bytearray(raw)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            flags = int.from_bytes(data[start + offset : start + offset + 2], "little")
            data[start + offset : start + offset + 2] = (flags | bits).to_bytes(2, "little")
            start += 4
    return bytes(data)


def assert_refused(path, entry=None, **limits) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        inspect_package(path, **limits)
    exc = caught.value
    assert exc.status == 422
    assert exc.errors == [{"pointer": "/package", "message": exc.message}]
    if entry is not None:
        assert f"entry {entry!r}" in exc.message
    return exc


# --- accepted packages ----------------------------------------------------------------------


def test_a_zip_with_module_yaml_at_its_root_is_accepted_with_a_sorted_report(tmp_path):
    path = write_zip(tmp_path / "p.zip", [("src/b.py", b"x = 1\n"), ("module.yaml", MANIFEST)])

    package = inspect_package(path)

    assert package.manifest_bytes == MANIFEST
    assert package.report.as_dict() == {
        "kind": "zip",
        "files": [{"path": "module.yaml", "size": len(MANIFEST)}, {"path": "src/b.py", "size": 6}],
        "file_count": 2,
        "total_size": len(MANIFEST) + 6,
        "manifest_path": "module.yaml",
        "warnings": [],
    }


def test_a_tar_gz_with_module_yaml_inside_one_top_folder_is_accepted(tmp_path):
    path = write_tgz(
        tmp_path / "p.tgz",
        [
            member("mymod-1.0.0", type=tarfile.DIRTYPE, mode=0o755),
            member("mymod-1.0.0/module.yaml", MANIFEST),
            member("mymod-1.0.0/src/a.py", b"pass\n"),
        ],
    )

    package = inspect_package(path)

    assert package.report.kind == "tar.gz"
    assert package.report.manifest_path == "mymod-1.0.0/module.yaml"
    assert package.manifest_bytes == MANIFEST
    assert [f["path"] for f in package.report.files] == [
        "mymod-1.0.0/module.yaml",
        "mymod-1.0.0/src/a.py",
    ]


def test_a_zip_with_one_top_folder_and_directory_entries_is_accepted(tmp_path):
    entries = [("mymod/", b""), ("mymod/module.yaml", MANIFEST), ("mymod/lib/", b"")]
    package = inspect_package(write_zip(tmp_path / "p.zip", entries))

    assert package.report.manifest_path == "mymod/module.yaml"
    assert package.report.files == [{"path": "mymod/module.yaml", "size": len(MANIFEST)}]


def test_a_tar_gz_named_zip_is_accepted_because_the_kind_comes_from_the_content(tmp_path):
    path = write_tgz(tmp_path / "really-a-tarball.zip", [member("module.yaml", MANIFEST)])

    assert inspect_package(path).report.kind == "tar.gz"


def test_a_tarball_written_with_dot_slash_prefixes_is_accepted(tmp_path):
    path = write_tgz(
        tmp_path / "p.tgz",
        [member("./", type=tarfile.DIRTYPE), member("./module.yaml", MANIFEST)],
    )

    assert inspect_package(path).report.manifest_path == "module.yaml"


def test_a_tar_gz_made_of_concatenated_gzip_members_is_read_whole(tmp_path):
    raw = tar_bytes([member("module.yaml", MANIFEST), member("a.txt", b"a" * 3000)])
    path = tmp_path / "p.tgz"
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))

    assert len(inspect_package(path).report.files) == 2


def test_warnings_flag_executables_compiled_python_large_files_and_case_clashes(tmp_path):
    path = write_tgz(
        tmp_path / "p.tgz",
        [
            member("module.yaml", MANIFEST),
            member("bin/tool", b"#!/bin/sh\n", mode=0o755),
            member("setup.bat", b"@echo off\n"),
            member("libx.so.1", b"\x7fELF"),
            member("x.pyc", b"\x00"),
            member("README", b"a"),
            member("readme", b"b"),
        ],
    )
    script = zipfile.ZipInfo("run")
    script.create_system, script.external_attr = 3, (stat.S_IFREG | 0o755) << 16
    big = write_zip(
        tmp_path / "big.zip",
        [("module.yaml", MANIFEST), ("data.bin", bytes(12 * MIB)), (script, b"#!/bin/sh\n")],
        compression=zipfile.ZIP_STORED,
    )

    assert inspect_package(path).report.warnings == [
        "bin/tool: executable",
        "libx.so.1: executable",
        "readme: same name as README but for letter case",
        "setup.bat: executable",
        "x.pyc: compiled Python",
    ]
    assert inspect_package(big).report.warnings == [
        "data.bin: large file (12.0 MiB)",
        "run: executable",
    ]


def test_detect_kind_reads_magic_bytes_not_names():
    tar_gz = gzip.compress(tar_bytes([member("module.yaml", MANIFEST)]))

    assert detect_kind(b"PK\x03\x04rest") == "zip"
    assert detect_kind(b"PK\x05\x06" + bytes(18)) == "zip"
    assert detect_kind(tar_gz) == "tar.gz"
    assert detect_kind(tar_gz[:20]) == "tar.gz"  # too short to tell, the full read decides
    assert detect_kind(gzip.compress(b"just some text\n" * 100)) is None
    assert detect_kind(b"name: demo\n") is None


# --- not an archive -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"name: demo\nversion: 1.0.0\n",
        gzip.compress(b"plain text, gzipped\n" * 50),
        tar_bytes([member("module.yaml", MANIFEST)]),  # an uncompressed tar
        b"",
    ],
    ids=["text", "gzipped-text", "plain-tar", "empty"],
)
def test_content_that_is_not_a_zip_or_tar_gz_is_an_unsupported_type(tmp_path, content):
    path = tmp_path / "p.zip"
    path.write_bytes(content)

    with pytest.raises(UnsupportedType) as caught:
        inspect_package(path)

    assert caught.value.status == 415
    assert caught.value.message == "not a zip or tar.gz archive"


# --- layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [
        ["README.md", "src/a.py"],
        ["a/module.yaml", "b/module.yaml"],
        ["a/b/module.yaml"],
        ["mymod/module.yaml", "stray.txt"],
    ],
    ids=["missing", "two-top-folders", "nested-too-deep", "not-every-entry-under-the-folder"],
)
def test_a_package_without_module_yaml_where_expected_is_refused(tmp_path, names):
    path = write_zip(tmp_path / "p.zip", [(name, MANIFEST) for name in names])

    assert "no module.yaml" in assert_refused(path).message


def test_a_module_yaml_over_256_kib_is_too_large(tmp_path):
    big = MANIFEST + b"#" * (256 * 1024)
    for path in (
        write_zip(tmp_path / "p.zip", [("module.yaml", big)]),
        write_tgz(tmp_path / "p.tgz", [member("module.yaml", big)]),
    ):
        with pytest.raises(TooLarge) as caught:
            inspect_package(path)
        assert caught.value.status == 413
        assert caught.value.message == "module.yaml is larger than 256 KiB"


def test_a_file_that_is_also_used_as_a_folder_is_refused(tmp_path):
    path = write_tgz(
        tmp_path / "p.tgz",
        [member("module.yaml", MANIFEST), member("lib", b"x"), member("lib/a.py", b"y")],
    )

    assert "'lib' is a file" in assert_refused(path, "lib/a.py").message


# --- hostile names --------------------------------------------------------------------------

HOSTILE_NAMES = {
    "dot-dot": "../evil",
    "dot-dot-inside": "mymod/../../evil",
    "absolute": "/etc/passwd",
    "drive-letter": "C:/evil.txt",
    "backslash": "mymod\\evil.txt",
    "newline": "bad\nname",
    "escape": "bad\x1b[2Jname",
}


@pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_a_zip_entry_with_a_hostile_name_is_refused_by_name(tmp_path, name):
    path = write_zip(tmp_path / "p.zip", [("module.yaml", MANIFEST), (name, b"x")])

    assert_refused(path, name)


@pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_a_tar_entry_with_a_hostile_name_is_refused_by_name(tmp_path, name):
    path = write_tgz(tmp_path / "p.tgz", [member("module.yaml", MANIFEST), member(name, b"x")])

    assert_refused(path, name)


def test_a_zip_entry_whose_name_hides_a_nul_byte_is_refused(tmp_path):
    raw = write_zip(tmp_path / "p.zip", [("module.yaml", MANIFEST), ("nulXname.txt", b"x")])
    raw.write_bytes(raw.read_bytes().replace(b"nulXname", b"nul\x00name"))

    assert "control character" in assert_refused(raw, "nul\x00name.txt").message


@pytest.mark.parametrize("archive", ["zip", "tar.gz"])
def test_duplicate_entry_names_are_refused(tmp_path, archive):
    if archive == "zip":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate
            path = write_zip(
                tmp_path / "p.zip",
                [("module.yaml", MANIFEST), ("a.txt", b"1"), ("a.txt", b"2")],
            )
        assert_refused(path, "a.txt")
    else:
        path = write_tgz(
            tmp_path / "p.tgz",
            [member("module.yaml", MANIFEST), member("a.txt", b"1"), member("./a.txt", b"2")],
        )
        assert_refused(path, "./a.txt")


def test_a_directory_and_a_file_of_the_same_name_are_duplicates(tmp_path):
    path = write_zip(tmp_path / "p.zip", [("module.yaml", MANIFEST), ("lib/", b""), ("lib", b"")])

    assert "duplicate" in assert_refused(path, "lib").message


# --- links, special files, sparse and encrypted members -------------------------------------

SPECIAL_TAR_MEMBERS = {
    "symlink-inside": (member("mymod/link", type=tarfile.SYMTYPE, linkname="module.yaml"), "link"),
    "symlink-out": (member("mymod/out", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "link"),
    "hard-link": (
        member("mymod/hard", type=tarfile.LNKTYPE, linkname="mymod/module.yaml"),
        "hard link",
    ),
    "char-device": (member("mymod/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3), "device"),
    "block-device": (member("mymod/sda", type=tarfile.BLKTYPE, devmajor=8), "device"),
    "fifo": (member("mymod/pipe", type=tarfile.FIFOTYPE), "FIFO"),
}


@pytest.mark.parametrize(
    ("special", "reason"), SPECIAL_TAR_MEMBERS.values(), ids=SPECIAL_TAR_MEMBERS.keys()
)
def test_tar_links_devices_and_fifos_are_refused_by_name(tmp_path, special, reason):
    path = write_tgz(tmp_path / "p.tgz", [member("mymod/module.yaml", MANIFEST), special])

    assert reason in assert_refused(path, special[0].name).message


def test_a_sparse_tar_member_is_refused(tmp_path):
    sparse = member("mymod/holes", type=tarfile.GNUTYPE_SPARSE)
    path = write_tgz(
        tmp_path / "p.tgz",
        [member("mymod/module.yaml", MANIFEST), sparse],
        format=tarfile.GNU_FORMAT,
    )

    assert "sparse" in assert_refused(path, "mymod/holes").message


@pytest.mark.parametrize(
    ("file_type", "reason"),
    [(stat.S_IFLNK, "symbolic link"), (stat.S_IFIFO, "FIFO"), (stat.S_IFCHR, "device")],
)
def test_zip_entries_marked_as_links_or_special_files_are_refused(tmp_path, file_type, reason):
    info = zipfile.ZipInfo("mymod/link")
    info.create_system = 3
    info.external_attr = (file_type | 0o777) << 16
    path = write_zip(tmp_path / "p.zip", [("mymod/module.yaml", MANIFEST), (info, b"module.yaml")])

    assert reason in assert_refused(path, "mymod/link").message


def test_an_encrypted_zip_member_is_refused(tmp_path):
    path = write_zip(tmp_path / "p.zip", [("module.yaml", MANIFEST)])
    path.write_bytes(patch_zip_flags(path.read_bytes(), 0x1))

    assert "encrypted" in assert_refused(path, "module.yaml").message


# --- limits and bombs -----------------------------------------------------------------------


def test_a_zip_with_more_than_5000_entries_is_refused(tmp_path):
    entries = [("module.yaml", MANIFEST)] + [(f"f{i}", b"") for i in range(MAX_ENTRIES)]

    message = assert_refused(write_zip(tmp_path / "p.zip", entries, zipfile.ZIP_STORED)).message

    assert f"more than {MAX_ENTRIES} entries in the archive ({MAX_ENTRIES + 1})" in message


def test_a_tar_gz_with_more_than_5000_entries_is_refused_at_the_first_one_too_many(tmp_path):
    members = [member("module.yaml", MANIFEST)] + [member(f"f{i}") for i in range(MAX_ENTRIES)]

    message = assert_refused(write_tgz(tmp_path / "p.tgz", members), f"f{MAX_ENTRIES - 1}").message

    assert f"more than {MAX_ENTRIES} entries" in message


def test_a_zip_bomb_member_is_refused_by_its_compression_ratio(tmp_path):
    path = write_zip(tmp_path / "p.zip", [("module.yaml", MANIFEST), ("zeros.bin", bytes(5 * MIB))])

    assert "compression ratio over 100" in assert_refused(path, "zeros.bin").message


def test_zip_members_are_checked_before_any_of_them_is_opened(tmp_path, monkeypatch):
    path = write_zip(tmp_path / "p.zip", [("module.yaml", MANIFEST), ("zeros.bin", bytes(5 * MIB))])
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: pytest.fail("content read"))

    assert "compression ratio" in assert_refused(path, "zeros.bin").message


def test_a_tar_gz_bomb_is_refused_by_its_compression_ratio(tmp_path):
    members = [member("module.yaml", MANIFEST), member("zeros.bin", bytes(5 * MIB))]

    path = write_tgz(tmp_path / "p.tgz", members)
    assert "compression ratio over 100" in assert_refused(path).message


def test_a_tar_declaring_300_mib_is_refused_before_any_data_is_read(tmp_path):
    # The header claims 300 MiB that the file does not even hold: the size check comes first.
    huge = member("huge.bin", size=300 * MIB)
    path = write_tgz(tmp_path / "p.tgz", [member("module.yaml", MANIFEST), huge])

    assert "more than 200 MiB" in assert_refused(path, "huge.bin").message


def test_limits_are_parameters_with_the_module_constants_as_defaults(tmp_path):
    path = write_zip(
        tmp_path / "p.zip",
        [("module.yaml", MANIFEST), ("a.txt", b"a" * 2000), ("b.txt", b"b")],
        compression=zipfile.ZIP_STORED,
    )

    assert inspect_package(path).report.total_size == len(MANIFEST) + 2001
    message = assert_refused(path, "a.txt", max_unpacked_bytes=1000).message
    assert "unpacks to more than 1000 bytes" in message
    assert "more than 2 entries" in assert_refused(path, max_entries=2).message


def test_a_tar_header_far_bigger_than_its_members_declare_is_refused(tmp_path):
    # A 2 MiB pax record compresses to almost nothing but would all sit in memory.
    padded = member("module.yaml", MANIFEST, pax_headers={"comment": "x" * 2 * MIB})

    message = assert_refused(write_tgz(tmp_path / "p.tgz", [padded])).message

    assert "holds more than its entries declare" in message


# --- damaged archives -----------------------------------------------------------------------


def valid_zip(tmp_path):
    return write_zip(tmp_path / "p.zip", [("module.yaml", MANIFEST), ("a.txt", b"hello " * 500)])


def valid_tgz(tmp_path):
    noise = hashlib.sha256(b"seed").hexdigest().encode() * 200
    return write_tgz(tmp_path / "p.tgz", [member("module.yaml", MANIFEST), member("a", noise)])


@pytest.mark.parametrize("build", [valid_zip, valid_tgz], ids=["zip", "tar.gz"])
def test_an_archive_cut_in_half_is_not_readable_whole(tmp_path, build):
    path = build(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])

    assert assert_refused(path).message.startswith("archive is not readable whole: ")


def test_a_zip_member_with_a_bad_crc_is_not_readable_whole(tmp_path):
    path = write_zip(
        tmp_path / "p.zip", [("module.yaml", MANIFEST), ("a.txt", b"hello")], zipfile.ZIP_STORED
    )
    path.write_bytes(path.read_bytes().replace(b"hello", b"jello"))

    assert "CRC" in assert_refused(path).message


def test_junk_after_the_gzip_stream_is_not_readable_whole(tmp_path):
    path = valid_tgz(tmp_path)
    path.write_bytes(path.read_bytes() + b"hidden payload")

    assert "data after the end of the gzip stream" in assert_refused(path).message


def test_megabytes_of_zeros_after_the_end_of_the_tar_are_refused(tmp_path):
    raw = tar_bytes([member("module.yaml", MANIFEST)]) + bytes(8 * MIB)
    path = tmp_path / "p.tgz"
    path.write_bytes(gzip.compress(raw))

    assert "holds more than its entries declare" in assert_refused(path).message


def test_zero_padding_after_the_gzip_stream_is_tolerated_like_gzip_does(tmp_path):
    path = valid_tgz(tmp_path)
    path.write_bytes(path.read_bytes() + bytes(4096))

    assert inspect_package(path).report.manifest_path == "module.yaml"


def test_an_empty_zip_has_no_module_yaml(tmp_path):
    path = write_zip(tmp_path / "p.zip", [])

    assert detect_kind(path.read_bytes()) == "zip"
    assert "no module.yaml" in assert_refused(path).message


def test_a_tar_cut_mid_header_inside_a_whole_gzip_stream_is_not_readable_whole(tmp_path):
    raw = tar_bytes([member("module.yaml", MANIFEST), member("a.txt", b"a")])
    path = tmp_path / "p.tgz"
    path.write_bytes(gzip.compress(raw[: 1024 + 300]))  # the second header, cut at 300 bytes

    assert "damaged tar header" in assert_refused(path).message


def test_a_gzip_magic_followed_by_garbage_is_not_readable_whole_rather_than_foreign(tmp_path):
    path = tmp_path / "p.tgz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)

    assert assert_refused(path).message.startswith("archive is not readable whole: ")


def test_a_gzip_stream_with_a_bad_crc_is_not_readable_whole(tmp_path):
    path = valid_tgz(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 0xFF  # the CRC32 in the gzip trailer

    path.write_bytes(bytes(raw))

    assert assert_refused(path).message.startswith("archive is not readable whole: ")


# --- storage --------------------------------------------------------------------------------


def test_stream_to_temp_hashes_exactly_the_bytes_it_stores(tmp_path):
    store = PackageStore(tmp_path / "store")
    payload = bytes(range(256)) * 5000

    temp_path, digest, size = stream_to_temp(io.BytesIO(payload), store, max_bytes=2 * MIB)

    assert digest == hashlib.sha256(payload).hexdigest()
    assert size == len(payload)
    assert temp_path.parent == tmp_path / "store" / "tmp"
    assert temp_path.read_bytes() == payload


def test_stream_to_temp_over_the_limit_is_too_large_and_leaves_no_file(tmp_path):
    store = PackageStore(tmp_path / "store")

    with pytest.raises(TooLarge) as caught:
        stream_to_temp(io.BytesIO(bytes(2 * MIB + 1)), store, max_bytes=2 * MIB, chunk_size=4096)

    assert caught.value.status == 413
    assert "2 MB" in caught.value.message
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_stream_to_temp_removes_its_file_when_the_stream_fails(tmp_path):
    class Broken(io.BytesIO):
        def read(self, n=-1):
            if self.tell():
                raise ConnectionResetError("client went away")
            return super().read(n)

    store = PackageStore(tmp_path / "store")

    with pytest.raises(ConnectionResetError):
        stream_to_temp(Broken(b"x" * 100), store, max_bytes=MIB, chunk_size=10)

    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_commit_moves_the_file_to_its_digest_path_and_a_second_copy_is_dropped(tmp_path):
    store = PackageStore(tmp_path / "store")
    temp_path, digest, _ = stream_to_temp(io.BytesIO(b"package"), store, max_bytes=MIB)

    final = store.commit(temp_path, digest)
    again, same_digest, _ = stream_to_temp(io.BytesIO(b"package"), store, max_bytes=MIB)

    assert final == tmp_path / "store" / digest[:2] / digest[2:4] / digest
    assert final.read_bytes() == b"package" and store.exists(digest)
    assert store.commit(again, same_digest) == final
    assert not temp_path.exists() and not again.exists()
    store.delete(digest)
    assert not store.exists(digest)


def test_path_for_accepts_only_a_sha256_hex_digest(tmp_path):
    store = PackageStore(tmp_path)

    assert store.path_for("AB" * 32).name == "ab" * 32
    with pytest.raises(ValueError):
        store.path_for("../../etc/passwd")


@pytest.mark.parametrize("kept", [300, 2000, 6000, 10500, 10636])
def test_a_gzipped_tar_cut_short_is_not_readable_whole_never_a_foreign_type(tmp_path, kept):
    """Reliability review D12: a tar cut short and gzipped whole is a 422 (not readable
    whole) wherever the cut falls: in a header (300: the whole gzip stream is shorter than
    one tar block, which used to be called a foreign type, 415), in a member's data, or in
    the padding after it."""
    raw = tar_bytes([member("module.yaml", MANIFEST), member("src/data.bin", os.urandom(9000))])
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(gzip.compress(raw[:kept]))  # data.bin's bytes run from 1536 to 10536
    assert "not readable whole" in assert_refused(path).message


def test_a_short_gzip_of_something_else_is_still_a_foreign_type():
    assert detect_kind(gzip.compress(b"hello\nworld\n")) is None
    assert detect_kind(gzip.compress(b"%PDF-1.7 tiny")) is None

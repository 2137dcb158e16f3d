"""Bounded readers: caps, FIFOs, devices, deep nesting (issue 12)."""
from __future__ import annotations

import os
import threading

import pytest

from keck_tui.common.bounded import BoundedInputError, parse_json, parse_toml, read_file


def test_reads_a_small_regular_file_and_follows_a_symlink(tmp_path):
    f = tmp_path / "config.toml"
    f.write_bytes(b"interval = 2\n")
    link = tmp_path / "link.toml"
    link.symlink_to(f)
    assert read_file(link, 100) == b"interval = 2\n"


def test_a_file_over_the_cap_is_refused(tmp_path):
    f = tmp_path / "big"
    f.write_bytes(b"x" * 101)
    with pytest.raises(BoundedInputError, match="larger than"):
        read_file(f, 100, "token file")


def test_dev_zero_is_refused_at_once():
    with pytest.raises(BoundedInputError, match="not a regular file"):
        read_file("/dev/zero", 1 << 20, "config file")


def test_a_fifo_nobody_writes_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = threading.Event()
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            read_file(fifo, 100)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        done.set()

    threading.Thread(target=attempt, daemon=True).start()
    assert done.wait(5), "read_file blocked on a FIFO"
    assert isinstance(errors[0], BoundedInputError) and "not a regular file" in str(errors[0])


def test_a_directory_and_a_missing_file(tmp_path):
    with pytest.raises(BoundedInputError, match="directory|regular"):
        read_file(tmp_path, 100)
    with pytest.raises(FileNotFoundError):
        read_file(tmp_path / "nope", 100)


def test_deep_json_and_toml_are_one_line_errors():
    with pytest.raises(BoundedInputError, match="nested"):
        parse_json("[" * 200_000 + "]" * 200_000)
    with pytest.raises(BoundedInputError, match="nested more than 64"):
        parse_json("[" * 65 + "]" * 65)
    assert parse_json("[" * 64 + "]" * 64)
    deep_toml = "a = " + "[" * 100_000 + "]" * 100_000 + "\n"
    with pytest.raises(BoundedInputError, match="nested"):
        parse_toml(deep_toml.encode())


def test_bad_text_is_a_one_line_error():
    with pytest.raises(BoundedInputError, match="not JSON") as info:
        parse_json(b"{oops")
    assert "\n" not in str(info.value)
    with pytest.raises(BoundedInputError, match="UTF-8"):
        parse_toml(b"\xff\xfe")


def test_read_file_without_following_symlinks(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"data")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert read_file(link, 100) == b"data"  # followed by default (ConfigMaps are links)
    with pytest.raises(BoundedInputError, match="symbolic link: refused"):
        read_file(link, 100, follow_symlinks=False)
    assert read_file(target, 100, follow_symlinks=False) == b"data"

"""The local adb server: a broken adb is not "no phone" (android_harness.adb.attached_devices)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest


def _unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_adb_port(monkeypatch):
    """A port no adb server listens on, for this test only (the machine's server on 5037 is left alone)."""
    port = _unused_port()
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))
    return port


def _fake_adb(directory: Path) -> Path:
    """An `adb` that fails the way a broken install does: exit 1 with a message."""
    directory.mkdir(exist_ok=True)
    script = directory / "adb"
    script.write_text("#!/bin/sh\necho \"adb: $* failed: could not install *smartsocket* listener\" >&2\nexit 1\n")
    script.chmod(0o755)
    return directory


def test_adb_that_cannot_start_its_server_is_an_error_naming_the_command(tmp_path, monkeypatch, private_adb_port):
    from android_harness import adb

    monkeypatch.setenv("PATH", f"{_fake_adb(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(adb.AdbBroken, match=re.escape(
            f"`adb start-server` ({tmp_path / 'bin' / 'adb'}) exited with status 1: "
            "adb: start-server failed: could not install *smartsocket* listener")):
        adb.attached_devices()


def test_no_adb_installed_means_no_phone(tmp_path, monkeypatch, private_adb_port):
    from android_harness import adb

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert adb.attached_devices() == []


def test_a_server_that_answers_garbage_is_an_error_naming_its_address(private_adb_port):
    import socket
    import threading

    from android_harness import adb

    server = socket.create_server(("127.0.0.1", private_adb_port))

    def answer_garbage():
        for _ in range(2):  # the liveness probe, then ppadb's request
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    try:
        with pytest.raises(adb.AdbBroken, match=re.escape(
                f"the adb server at 127.0.0.1:{private_adb_port} does not answer `adb devices` as an adb server should")):
            adb.attached_devices()
    finally:
        server.close()


def test_bad_adb_server_port_variable_is_refused(monkeypatch):
    from android_harness import adb

    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "50x37")
    with pytest.raises(adb.AdbError, match=r"\$ANDROID_ADB_SERVER_PORT must be a TCP port number \(1-65535\), got '50x37'"):
        adb.server_address()



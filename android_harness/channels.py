"""Byte channels to a runner in serve mode (``serve.py``): a local process's pipes (qemu) or an
ADB ``exec:`` socket (a phone). Both offer ``write(bytes)``, ``read(n, timeout)`` (exactly
``n`` bytes; EOFError when the other end is gone, TimeoutError when it says nothing),
``close()`` and ``detail()`` (what is known of the end: exit code, the tail of stderr).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SERVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serve.py")


class ProcessChannel:
    """A child process's stdin/stdout; its stderr is kept in a temporary file for errors."""

    def __init__(self, argv: list[str], env: dict, config: dict):
        self.config = config
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, bufsize=0, start_new_session=True)
        self.pid = self.proc.pid

    def write(self, data: bytes) -> None:
        if self.proc.stdin is None or self.proc.stdin.closed:
            raise ValueError("the channel is closed")
        view = memoryview(data)
        while view:
            written = os.write(self.proc.stdin.fileno(), view)
            view = view[written:]

    def read(self, n: int, timeout: float) -> bytes:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        chunks, got = [], 0
        while got < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError(f"no answer within {timeout:.0f} s")
            chunk = os.read(fd, n - got)
            if not chunk:
                raise EOFError("end of the runner's output")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._stderr.close()
        if getattr(self, "tmp", None):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def detail(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        try:
            self._stderr.seek(0)
            tail = self._stderr.read().decode(errors="replace").strip().splitlines()[-8:]
        except (OSError, ValueError):
            tail = []
        what = "still running" if code is None else (f"killed by signal {-code}" if code < 0 else f"exit code {code}")
        return what + (": " + " | ".join(tail) if tail else "")


class SocketChannel:
    """A socket to a process on a phone (ADB's ``exec:`` service: raw bytes both ways);
    ``detail`` asks the phone for the tail of the process's stderr log."""

    def __init__(self, sock: socket.socket, config: dict, detail=None):
        self.config = config
        self.sock = sock
        self._detail = detail

    def write(self, data: bytes) -> None:
        self.sock.settimeout(None)
        self.sock.sendall(data)

    def read(self, n: int, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        chunks, got = [], 0
        while got < n:
            try:
                chunk = self.sock.recv(min(n - got, 1 << 20))
            except socket.timeout as exc:
                raise TimeoutError(f"no answer within {timeout:.0f} s") from exc
            if not chunk:
                raise EOFError("end of the runner's output")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def detail(self) -> str:
        try:
            return self._detail() if self._detail else ""
        except Exception as exc:  # noqa: BLE001  (the phone may be gone too)
            return f"(its log could not be read: {exc})"

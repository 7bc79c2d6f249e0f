# SPDX-License-Identifier: Apache-2.0
"""Login events from the audit read-only group, for real PAM logins through su (needs root).

A throwaway user with a known password is created; `su` run as `nobody` on a
pseudo-terminal logs in as that user with the right and with a wrong
password. If kernel audit is disabled it is enabled for the test and
restored afterwards (the kernel drops user records while it is off).
Needs `su` (util-linux) and `useradd`/`chpasswd`/`userdel` (passwd).
"""

from __future__ import annotations

import os
import pty
import secrets
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from ebpfsensor.errors import PrivilegeError
from ebpfsensor.events import UserLogin
from ebpfsensor.host.audit import audit_status, audit_status_text, set_audit_enabled
from ebpfsensor.sources.audit import AuditLoginSource

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

SU = "/usr/bin/su"
NOBODY = 65534
TOOLS = {"su": "util-linux", "useradd": "passwd", "chpasswd": "passwd", "userdel": "passwd"}


def _require_tools() -> None:
    missing = [f"{tool} (apt package {pkg})" for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    if missing or not os.access(SU, os.X_OK):
        pytest.skip(f"login test needs {', '.join(missing) or SU}")


@pytest.fixture(scope="module")
def audit_enabled() -> Iterator[None]:
    """Kernel audit on for the duration, restored to what it was."""
    try:
        before = audit_status()
    except PrivilegeError as exc:
        pytest.skip(f"cannot read the audit status: {exc}")
    if before.enabled:
        yield
        return
    set_audit_enabled(1)
    try:
        yield
    finally:
        set_audit_enabled(before.enabled)


@pytest.fixture(scope="module")
def user() -> Iterator[tuple[str, str]]:
    """A throwaway account with a known password, removed afterwards."""
    _require_tools()
    name = f"ebpfst{os.getpid() % 100000}"
    password = secrets.token_urlsafe(12)
    subprocess.run(["userdel", name], capture_output=True)
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True, capture_output=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True, capture_output=True)
        yield name, password
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def su_as_nobody(user: str, password: str, timeout: float = 15.0) -> tuple[int, int, str]:
    """Run `su USER -c true` as nobody on a pty, typing password at the
    prompt; returns (su's pid, its exit status, what it printed)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.chdir("/")
            os.execve(SU, ["su", user, "-c", "true"], {"PATH": "/usr/bin:/bin", "LANG": "C"})
        finally:
            os._exit(127)
    output, sent = b"", False
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            if not select.select([fd], [], [], 0.1)[0]:
                continue
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: su is gone
                break
            if not chunk:
                break
            output += chunk
            if not sent and b"assword" in output:
                os.write(fd, password.encode() + b"\n")
                sent = True
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return pid, os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def wait_for(
    source: AuditLoginSource, seen: list[UserLogin], match: Callable[[UserLogin], bool], timeout: float = 5.0
) -> UserLogin:
    """The first event in seen, or still to come (appended to seen), that matches."""
    end = time.monotonic() + timeout
    checked = 0
    while True:
        for event in seen[checked:]:
            if match(event):
                return event
        checked = len(seen)
        if time.monotonic() >= end:
            pytest.fail(f"no matching login event within {timeout}s; got {seen}; {source.status()}")
        seen.extend(source.poll(0.05))


def test_status_names_the_state() -> None:
    st = audit_status()
    text = audit_status_text()
    assert ("disabled (enabled=0)" in text) == (st.enabled == 0), text
    if st.pid == 0 and st.enabled != 2:  # no daemon owns the setting: flip it and back
        previous = set_audit_enabled(1 - st.enabled)
        try:
            assert ("disabled (enabled=0)" in audit_status_text()) == (st.enabled == 1)
        finally:
            set_audit_enabled(previous)
    assert audit_status().enabled == st.enabled


def test_successful_su(audit_enabled: None, user: tuple[str, str]) -> None:
    name, password = user
    seen: list[UserLogin] = []
    with AuditLoginSource(auth_success=True) as source:
        assert "enabled" in source.status() and "disabled" not in source.status()
        pid, status, output = su_as_nobody(name, password)
        assert status == 0, output
        auth = wait_for(source, seen, lambda e: e.pid == pid and e.record_type == "USER_AUTH")
        start = wait_for(source, seen, lambda e: e.pid == pid and e.record_type == "USER_START")
    for e in (auth, start):
        assert (e.user, e.success, e.uid, e.exe) == (name, True, NOBODY, os.path.realpath(SU))
        assert e.terminal.startswith("/dev/pts/")
        assert e.audit_ts > 1e9 and e.audit_serial > 0
    assert auth.op == "PAM:authentication" and start.op == "PAM:session_open"


def test_failed_su(audit_enabled: None, user: tuple[str, str]) -> None:
    name, _ = user
    seen: list[UserLogin] = []
    with AuditLoginSource() as source:
        pid, status, output = su_as_nobody(name, "not-" + secrets.token_hex(4))
        assert status != 0 and "Authentication failure" in output, output
        auth = wait_for(source, seen, lambda e: e.pid == pid)
        assert (auth.record_type, auth.user, auth.success) == ("USER_AUTH", name, False)
        assert auth.exe == os.path.realpath(SU) and "res=failed" in auth.message
        assert source.stats().overruns == 0


def test_successful_auth_filtered_by_default(audit_enabled: None, user: tuple[str, str]) -> None:
    name, password = user
    seen: list[UserLogin] = []
    with AuditLoginSource() as source:
        pid, status, _ = su_as_nobody(name, password)
        assert status == 0
        wait_for(source, seen, lambda e: e.pid == pid and e.record_type == "USER_START")
        seen.extend(source.poll(0.2))
    assert not [e for e in seen if e.pid == pid and e.record_type == "USER_AUTH"]
    assert source.stats().filtered >= 1

# SPDX-License-Identifier: Apache-2.0
"""The audit provider against the real kernel audit (needs root).

Every test leaves the audit subsystem as it found it: the autouse fixture
compares the rules and the settings (enabled, the registered daemon, the
rate and backlog limits) before and after. The one input that is not the
kernel's is the status reading given to the refusal of a locked audit
(``enabled=2`` cannot be set here without needing a reboot afterwards).

The coexistence test starts Debian's auditd (package ``auditd``) when it is
installed, and skips, saying so, when it is not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ebpfsensor
from ebpfsensor import sensor as sensor_module
from ebpfsensor.events import (
    CredChange,
    FileCreate,
    FileOpen,
    FileRename,
    NetConnect,
    ProcessExec,
    ProcessExit,
    ProcessFork,
)
from ebpfsensor.exclusions import ExcludeExecutable, ExcludePathPrefix, ExcludeSelf, ExcludeUid
from ebpfsensor.host import audit as ha
from ebpfsensor.host.audit import AuditStatus, audit_status, list_rules, set_audit_enabled
from ebpfsensor.host.syscalls import syscall_number
from ebpfsensor.sources.audit_provider import KEY, STATE_PATH, AuditLockedError, AuditProvider

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

TRUE = os.path.realpath("/bin/true")
NOBODY = 65534
AUDITD = "/usr/sbin/auditd"
AUDIT_LOG = Path("/var/log/audit/audit.log")

# run by a child: file, network and privilege calls, then it waits (its
# sockets open) until its stdin closes, and reports what it did
WORKLOAD = r"""
import json, os, socket, sys
d, port = sys.argv[1], int(sys.argv[2])
os.chdir(d)
fd = os.open("written.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
os.write(fd, b"x")
os.close(fd)
open("old", "w").close()
open("new", "w").close()
os.rename("old", "new")
c = socket.socket()
c.connect(("127.0.0.1", port))
child = os.fork()
if child == 0:
    os.setgid(65534)
    os.setuid(65534)
    os._exit(0)
os.waitpid(child, 0)
print(json.dumps({"pid": os.getpid(), "child": child, "local_port": c.getsockname()[1]}), flush=True)
sys.stdin.read()
"""


def settings(st: AuditStatus) -> tuple[int, int, int, int]:
    return st.enabled, st.pid, st.rate_limit, st.backlog_limit


@pytest.fixture(autouse=True)
def audit_unchanged() -> Iterator[AuditStatus]:
    """The audit rules and settings after a test are those before it."""
    rules, before = list_rules(), audit_status()
    yield before
    after = audit_status()
    assert list_rules() == rules, "the test changed the audit rules"
    assert settings(after) == settings(before), f"audit settings changed: {before} -> {after}"


def wait_for(
    poll: Callable[[float], list[Any]], seen: list[Any], match: Callable[[Any], bool], timeout: float = 10.0
) -> Any:
    """The first event (seen, or still to come) that matches."""
    end = time.monotonic() + timeout
    checked = 0
    while True:
        for event in seen[checked:]:
            if match(event):
                return event
        checked = len(seen)
        if time.monotonic() >= end:
            pytest.fail(f"no matching event within {timeout}s among {len(seen)}")
        seen.extend(poll(0.05))


def our_rules() -> list[Any]:
    return [r for r in list_rules() if r.key == KEY]


def test_events_field_by_field(tmp_path: Path) -> None:
    with socket.socket() as listener:
        events_field_by_field(tmp_path, listener)


def events_field_by_field(tmp_path: Path, listener: socket.socket) -> None:
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    seen: list[Any] = []
    # every open reported: the activity's opens are read-only ones too
    with ebpfsensor.Sensor(provider="audit", log_file=None, read_opens="all") as s:
        h = s.health()
        assert (h.supplementary_events_subsystem, h.ebpf) == ("audit", False)
        assert "chosen by configuration" in h.reason
        assert h.kinds["file_open"].source == "audit" and h.kinds["file_open"].live
        assert h.kinds["process_fork"].source == "proc_connector"
        assert s.stats().audit_provider is not None
        # the provider's own process (exclude_self): in every rule, and listed
        assert [r.rule for r in h.exclusions] == [ExcludeSelf()]
        assert all((ha.AUDIT_PID, ha.AUDIT_NOT_EQUAL, os.getpid()) in r.fields for r in our_rules())

        argv = [TRUE, "ebpfsensor audit", "two\twords", ""]
        before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        true = subprocess.run(argv, cwd=tmp_path, check=True)
        del true
        ex = wait_for(s.poll, seen, lambda e: isinstance(e, ProcessExec) and e.argv == argv)
        assert (ex.exe, ex.cwd, ex.comm, ex.ppid) == (TRUE, os.path.realpath(tmp_path), "true", os.getpid())
        assert ex.tid == ex.pid and ex.old_tid == ex.pid
        assert (ex.uid, ex.gid, ex.euid, ex.egid, ex.suid, ex.sgid, ex.fsuid, ex.fsgid) == (0,) * 8
        assert ex.loginuid == int(Path("/proc/self/loginuid").read_text())
        assert ex.sessionid == int(Path("/proc/self/sessionid").read_text())
        assert ex.parent_exe == os.readlink("/proc/self/exe")
        assert ex.parent_comm == Path("/proc/self/comm").read_text().strip()
        assert not (ex.argv_truncated or ex.exe_deleted or ex.exe_memfd or ex.exe_truncated)
        # the record's time: the kernel's coarse wall clock (a tick), in ms, on the boot clock
        assert before - 12_000_000 <= ex.ts_ns <= time.clock_gettime_ns(time.CLOCK_BOOTTIME)

        child = subprocess.Popen(
            [sys.executable, "-c", WORKLOAD, str(tmp_path), str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None and child.stdin is not None
            done = json.loads(child.stdout.readline())
            pid = done["pid"]
            conn, _ = listener.accept()
            conn.close()
            written = str(tmp_path.resolve() / "written.txt")
            # one call, one event: the creating open is a FileCreate
            opened = wait_for(s.poll, seen, lambda e: isinstance(e, (FileOpen, FileCreate)) and e.path == written)
            connect = wait_for(s.poll, seen, lambda e: isinstance(e, NetConnect) and e.pid == pid)
        finally:
            if child.stdin:
                child.stdin.close()
            child.wait()
            if child.stdout:
                child.stdout.close()
        st = os.stat(written)
        assert (opened.pid, opened.tid, opened.ppid, opened.uid, opened.comm) == (pid, pid, os.getpid(), 0, "python3")
        assert (opened.result >= 0, opened.syscall_nr, opened.dirfd) == (True, syscall_number("openat"), -100)
        assert opened.flags & 0o3 == os.O_WRONLY and opened.flags & os.O_CREAT and opened.mode == 0o640
        assert (opened.arg_path, opened.created, opened.resolved) == ("written.txt", True, False)
        assert (opened.ino, opened.dev) == (st.st_ino, st.st_dev)
        assert opened.start_time_ns > 0 and opened.cgroup_id > 0
        assert type(opened) is FileCreate
        assert not [e for e in seen if isinstance(e, (FileOpen, FileCreate)) and e.path == written and e is not opened]

        ren = wait_for(s.poll, seen, lambda e: isinstance(e, FileRename) and e.pid == pid)
        base = str(tmp_path.resolve())
        assert (ren.path, ren.new_path, ren.arg_path, ren.new_arg_path) == (f"{base}/old", f"{base}/new", "old", "new")
        assert (ren.result, ren.replaced, ren.dirfd, ren.new_dirfd) == (0, True, -100, -100)

        assert (connect.result, connect.family, connect.remote_address, connect.remote_port) == (
            0,
            2,
            "127.0.0.1",
            port,
        )
        # read from the child's socket while it was still open, where the
        # kernel lets another process's fd be copied (pidfd_getfd, 5.6); else
        # absent, and health says why
        reason = s.health().kinds["net_connect"].reason
        if "pidfd_getfd, Linux 5.6, is missing" in reason:
            assert tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2]) < (5, 6)
            assert (connect.sock_type, connect.protocol, connect.local_port) == (0, 0, 0)
        else:
            assert "from the live socket" in reason
            assert (connect.sock_type, connect.protocol) == (socket.SOCK_STREAM, socket.IPPROTO_TCP)
            assert (connect.local_address, connect.local_port) == ("127.0.0.1", done["local_port"])

        cred = wait_for(
            s.poll, seen, lambda e: isinstance(e, CredChange) and e.pid == done["child"] and e.new_uid == NOBODY
        )
        assert (cred.ppid, cred.arg0, cred.new_euid, cred.new_suid, cred.new_fsuid) == (
            pid,
            NOBODY,
            NOBODY,
            NOBODY,
            NOBODY,
        )
        assert (cred.new_gid, cred.new_egid, cred.result) == (NOBODY, NOBODY, 0)

        # fork and exit come from the process connector beside the provider
        fork = wait_for(s.poll, seen, lambda e: isinstance(e, ProcessFork) and e.child_pid == done["child"])
        assert fork.pid == pid
        exit_ = wait_for(s.poll, seen, lambda e: isinstance(e, ProcessExit) and e.pid == pid)
        assert exit_.exit_code == 0
        stats = s.stats()
        assert stats.provider == "audit" and stats.audit_provider is not None
        ap = stats.audit_provider
        assert ap.mode in ("receiver", "multicast") and ap.kinds["file_open"].delivered >= 1
        assert (ap.overruns, ap.undecodable) == (0, 0)


def test_own_process_in_the_rules_only_when_asked() -> None:
    with ebpfsensor.Sensor(provider="audit", kinds={"file_open"}, exclude_self=False, log_file=None) as s:
        assert s.health().exclusions == []
        rules = our_rules()
        assert rules and not [f for r in rules for f in r.fields if f[0] == ha.AUDIT_PID]


def test_configured_rules_that_do_not_resolve_are_skipped_and_reported(tmp_path: Path) -> None:
    # an executable removed since it was configured, and a malformed prefix:
    # the provider starts without them and says why, as eBPF does (one stale
    # rule must not leave the host unwatched); the rules that resolve are in
    # the kernel's audit rules
    removed = tmp_path / "removed-since"
    stale, malformed = ExcludeExecutable(str(removed)), ExcludePathPrefix("var/log")
    valid = ExcludeUid(NOBODY)
    rules = (stale, valid, malformed)
    with ebpfsensor.Sensor(provider="audit", kinds={"file_open"}, exclusions=rules, log_file=None) as s:
        h = s.health()
        assert h.supplementary_events_subsystem == "audit" and h.kinds["file_open"].live
        assert [r.rule for r in h.exclusions] == [ExcludeSelf(), valid]
        assert [sk.rule for sk in h.exclusions_skipped] == [stale, malformed]
        assert "the file must exist" in h.exclusions_skipped[0].reason
        assert "not absolute" in h.exclusions_skipped[1].reason
        fields = [f for r in our_rules() for f in r.fields]
        assert (ha.AUDIT_UID, ha.AUDIT_NOT_EQUAL, NOBODY) in fields
        assert not [f for f in fields if f[0] == ha.AUDIT_EXE]


def locked() -> AuditStatus:
    st = audit_status()
    return AuditStatus(2, st.failure, st.pid, st.rate_limit, st.backlog_limit, st.lost, st.backlog)


def test_locked_audit_is_refused_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the only input not from the kernel: a status saying enabled=2
    rules = list_rules()
    state = tmp_path / "audit.state"
    with pytest.raises(AuditLockedError, match="reboot"):
        AuditProvider(state_path=str(state), read_status=locked).start()
    assert list_rules() == rules and not state.exists()

    class Locked(AuditProvider):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, read_status=locked, **kw)

    monkeypatch.setattr(sensor_module, "AuditProvider", Locked)
    with ebpfsensor.Sensor(provider="audit", log_file=None) as s:
        h = s.health()
        assert h.supplementary_events_subsystem == "proc_connector"
        assert "the audit provider cannot run" in h.reason and "locked (enabled=2" in h.reason
        assert "reboot" in h.reason
        assert h.kinds["file_open"].reason == "not provided without eBPF"
        assert not our_rules()


CHILD = r"""
import sys, time
from ebpfsensor.sources.audit_provider import AuditProvider
p = AuditProvider({"file_open", "process_exec"}).start()
print(p.mode, flush=True)
time.sleep(60)
"""


def test_rules_of_a_killed_provider_are_removed_by_the_next_start(audit_unchanged: AuditStatus) -> None:
    before = audit_unchanged
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    mode = child.stdout.readline().strip()
    child.stdout.close()
    try:
        assert mode in ("receiver", "multicast")
        left = our_rules()
        assert left, "the child's rules are not there"
        state = json.loads(Path(STATE_PATH).read_text())
        assert state["pid"] == child.pid
        if mode == "receiver":
            assert audit_status().pid == child.pid and state["receiver"] is True
        if before.enabled == 0:
            assert state["enabled"] == 0
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert our_rules() == left, "SIGKILL removed the rules?"
    with AuditProvider({"file_open"}) as p:
        mine = our_rules()
        # the dead provider's rules are gone: only this one's are there
        assert mine == p.rules() and mine != left
        assert audit_status().pid in (os.getpid(), before.pid)
    assert Path(STATE_PATH).read_text() == ""


def kmsg_lines(fd: int) -> list[str]:
    lines = []
    while True:
        try:
            lines.append(os.read(fd, 8192).decode(errors="replace"))
        except BlockingIOError:
            return lines
        except OSError:  # EPIPE: lines were overwritten meanwhile
            continue


def test_kernel_log_stays_quiet_while_receiving(tmp_path: Path, audit_unchanged: AuditStatus) -> None:
    if audit_unchanged.pid:
        pytest.skip(f"an audit daemon (pid {audit_unchanged.pid}) receives the records here")
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.lseek(fd, 0, os.SEEK_END)
        seen: list[Any] = []
        with AuditProvider({"process_exec", "file_open"}) as p:
            assert p.mode == "receiver" and audit_status().pid == os.getpid()
            for i in range(20):
                subprocess.run([TRUE, f"quiet-{i}"], cwd=tmp_path, check=True)
            wait_for(p.poll, seen, lambda e: isinstance(e, ProcessExec) and e.argv == [TRUE, "quiet-19"])
            during = kmsg_lines(fd)
        after = kmsg_lines(fd)
    finally:
        os.close(fd)
    assert not [line for line in during if "audit: type=1300" in line], during
    if audit_unchanged.enabled == 0:
        # audit goes back off before the provider unregisters: nothing at close either
        assert not [line for line in after if "audit: type=1300" in line], after


def test_losses_are_counted(tmp_path: Path) -> None:
    seen: list[Any] = []
    with AuditProvider({"file_open"}, rate_limit=20) as p:
        if p.mode != "receiver":
            pytest.skip("beside an audit daemon the rate limit is the daemon's")
        assert audit_status().rate_limit == 20
        code = "import os\nfor i in range(3000):\n    os.close(os.open('/', os.O_RDONLY))\n"
        subprocess.run([sys.executable, "-c", code], check=True)
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            seen += p.poll(0.1)
        st = p.stats()
    assert st.kernel_lost > 0 and st.dropped >= st.kernel_lost
    assert st.delivered < 3000


@pytest.fixture
def auditd(tmp_path: Path) -> Iterator[int]:
    """The real audit daemon, started for the test and stopped after it."""
    if shutil.which("auditd") is None and not os.path.exists(AUDITD):
        pytest.skip("auditd is not installed (Debian package auditd): the coexistence test needs it")
    before = audit_status()
    if before.pid:
        pytest.skip("an audit daemon already runs here")
    # -n: no fork; it logs to its log file (with -f it would write to stderr instead)
    daemon = subprocess.Popen([AUDITD, "-n"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 10
        while audit_status().pid != daemon.pid:
            if time.monotonic() > end or daemon.poll() is not None:
                pytest.fail("auditd did not register with the kernel")
            time.sleep(0.05)
        yield daemon.pid
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(15)
        # auditd turned audit on at start and leaves it on
        set_audit_enabled(before.enabled)


def test_beside_auditd(auditd: int, tmp_path: Path) -> None:
    log_size = AUDIT_LOG.stat().st_size if AUDIT_LOG.exists() else 0
    seen: list[Any] = []
    with AuditProvider({"process_exec"}) as p:
        assert p.mode == "multicast"
        assert audit_status().pid == auditd  # the daemon stays the receiver
        argv = [TRUE, "beside-auditd"]
        proc = subprocess.run(argv, cwd=tmp_path, check=True)
        del proc
        ex = wait_for(p.poll, seen, lambda e: isinstance(e, ProcessExec) and e.argv == argv)
        assert (ex.exe, ex.cwd) == (TRUE, os.path.realpath(tmp_path))
        assert p.kind_health("process_exec").reason.startswith("as audit multicast reader")
    assert audit_status().pid == auditd and not our_rules()
    # auditd logged the same event, under our key
    end = time.monotonic() + 5
    while True:
        with open(AUDIT_LOG, "rb") as f:
            f.seek(log_size)
            logged = f.read().decode(errors="replace")
        lines = [line for line in logged.splitlines() if f"pid={ex.pid} " in line and f'key="{KEY}"' in line]
        if lines or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert lines, "auditd did not log the provider's record"

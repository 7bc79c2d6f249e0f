# SPDX-License-Identifier: Apache-2.0
"""Parsing audit USER_* records into UserLogin events, on recorded records."""

from __future__ import annotations

import struct

import msgspec
import pytest

from ebpfsensor.errors import DecodeError
from ebpfsensor.events import UserLogin
from ebpfsensor.sources.audit import (
    DEFAULT_RECORD_TYPES,
    AuditLoginSource,
    parse_fields,
    parse_log_line,
    parse_record,
)

# audit.log lines as sshd, login, su and PAM write them (Debian 12, OpenSSH 9.2, Linux-PAM 1.5)
SSHD_LOGIN_OK = (
    "type=USER_LOGIN msg=audit(1700000000.123:456): pid=1234 uid=0 auid=0 ses=5"
    ' subj=unconfined msg=\'op=login id=0 exe="/usr/sbin/sshd" hostname=? addr=192.0.2.10'
    ' terminal=/dev/pts/0 res=success\'\x1dUID="root" AUID="root" ID="root"'
)
SSHD_AUTH_FAILED = (
    "type=USER_AUTH msg=audit(1700000100.456:789): pid=2345 uid=0 auid=4294967295 ses=4294967295"
    ' subj=unconfined msg=\'op=PAM:authentication grantors=? acct="alice" exe="/usr/sbin/sshd"'
    " hostname=198.51.100.7 addr=198.51.100.7 terminal=ssh res=failed'"
)
SSHD_LOGIN_FAILED = (
    "type=USER_LOGIN msg=audit(1700000100.789:790): pid=2345 uid=0 auid=4294967295 ses=4294967295"
    ' subj=unconfined msg=\'op=login acct="alice" exe="/usr/sbin/sshd" hostname=? addr=198.51.100.7'
    " terminal=ssh res=failed'"
)
# "(invalid user)" has a space, so sshd's libaudit hex-encodes it
SSHD_INVALID_USER = (
    "type=USER_LOGIN msg=audit(1700000101.000:791): pid=2399 uid=0 auid=4294967295 ses=4294967295"
    ' msg=\'op=login acct=28696E76616C6964207573657229 exe="/usr/sbin/sshd" hostname=? addr=2001:db8::7'
    " terminal=sshd res=failed'"
)
LOGIN_TTY_OK = (
    "type=USER_LOGIN msg=audit(1700000200.001:900): pid=800 uid=0 auid=0 ses=3"
    " msg='op=login id=0 exe=\"/usr/bin/login\" hostname=debian addr=? terminal=/dev/tty1 res=success'"
)
LOGIN_TTY_FAILED = (
    "type=USER_LOGIN msg=audit(1700000201.002:901): pid=801 uid=0 auid=4294967295 ses=4294967295"
    ' msg=\'op=login acct="bob" exe="/usr/bin/login" hostname=debian addr=? terminal=/dev/tty1 res=failed\''
)
SU_START_OK = (
    "type=USER_START msg=audit(1795893548.954:6): pid=17424 uid=65534 auid=4294967295 ses=4294967295"
    " msg='op=PAM:session_open grantors=pam_env,pam_env,pam_mail,pam_limits,pam_permit,pam_unix"
    ' acct="ebpfslogin" exe="/usr/bin/su" hostname=? addr=? terminal=/dev/pts/0 res=success\''
)
SU_AUTH_OK = (
    "type=USER_AUTH msg=audit(1795893548.950:3): pid=17424 uid=65534 auid=4294967295 ses=4294967295"
    ' msg=\'op=PAM:authentication grantors=pam_unix acct="ebpfslogin" exe="/usr/bin/su" hostname=?'
    " addr=? terminal=/dev/pts/0 res=success'"
)
SU_AUTH_FAILED = (
    "type=USER_AUTH msg=audit(1795893549.002:9): pid=17427 uid=65534 auid=4294967295 ses=4294967295"
    ' msg=\'op=PAM:authentication grantors=? acct="ebpfslogin" exe="/usr/bin/su" hostname=? addr=?'
    " terminal=/dev/pts/0 res=failed'"
)
SSHD_LOGOUT = (
    "type=USER_LOGOUT msg=audit(1700000300.500:1000): pid=1234 uid=0 auid=0 ses=5"
    " msg='op=login id=0 exe=\"/usr/sbin/sshd\" hostname=? addr=192.0.2.10 terminal=/dev/pts/0 res=success'"
)
SSHD_USER_ERR = (
    "type=USER_ERR msg=audit(1700000400.100:1100): pid=3000 uid=0 auid=4294967295 ses=4294967295"
    ' msg=\'op=PAM:bad_ident grantors=? acct="?" exe="/usr/sbin/sshd" hostname=203.0.113.9'
    " addr=203.0.113.9 terminal=ssh res=failed'"
)
# a program in a directory with a space: exe is hex-encoded too
CUSTOM_EXE = (
    "type=USER_LOGIN msg=audit(1700000500.000:1200): pid=4000 uid=0 auid=4294967295 ses=4294967295"
    " msg='op=login acct=\"o'brien\" exe=2F6F70742F6D7920617070732F6C6F67696E hostname=? addr=10.0.0.1"
    " terminal=pts/3 res=failed'"
)
SYSCALL = (
    "type=SYSCALL msg=audit(1700000600.000:1300): arch=c000003e syscall=59 success=yes exit=0"
    ' comm="true" exe="/usr/bin/true" key=(null)'
)


def login(line: str) -> UserLogin:
    event = parse_log_line(line, ts_ns=42)
    assert event is not None
    return event


def test_sshd_login_success() -> None:
    e = login(SSHD_LOGIN_OK)
    assert (e.record_type, e.op, e.success) == ("USER_LOGIN", "login", True)
    assert (e.audit_ts, e.audit_serial, e.ts_ns) == (1700000000.123, 456, 42)
    assert (e.pid, e.uid, e.auid, e.ses) == (1234, 0, 0, 5)
    assert e.user == "root"  # id=0 resolved through the password database
    assert (e.exe, e.hostname, e.addr, e.terminal) == ("/usr/sbin/sshd", "", "192.0.2.10", "/dev/pts/0")
    assert e.message.startswith("audit(1700000000.123:456): pid=1234")


def test_sshd_failures() -> None:
    auth = login(SSHD_AUTH_FAILED)
    assert (auth.record_type, auth.op, auth.user, auth.success) == ("USER_AUTH", "PAM:authentication", "alice", False)
    assert (auth.hostname, auth.addr, auth.terminal) == ("198.51.100.7", "198.51.100.7", "ssh")
    assert (auth.auid, auth.ses) == (4294967295, 4294967295)
    failed = login(SSHD_LOGIN_FAILED)
    assert (failed.record_type, failed.user, failed.success, failed.addr) == (
        "USER_LOGIN",
        "alice",
        False,
        "198.51.100.7",
    )


def test_hex_encoded_values() -> None:
    e = login(SSHD_INVALID_USER)
    assert e.user == "(invalid user)"
    assert e.addr == "2001:db8::7"
    e = login(CUSTOM_EXE)
    assert e.exe == "/opt/my apps/login"
    assert e.user == "o'brien"  # a quote inside msg='...' does not end it
    assert e.terminal == "pts/3" and not e.success


def test_login_program() -> None:
    ok, bad = login(LOGIN_TTY_OK), login(LOGIN_TTY_FAILED)
    assert (ok.user, ok.success, ok.terminal, ok.hostname, ok.addr) == ("root", True, "/dev/tty1", "debian", "")
    assert (bad.user, bad.success, bad.exe) == ("bob", False, "/usr/bin/login")


def test_su() -> None:
    start, auth_ok, auth_bad = login(SU_START_OK), login(SU_AUTH_OK), login(SU_AUTH_FAILED)
    assert (start.record_type, start.op, start.user, start.uid, start.success) == (
        "USER_START",
        "PAM:session_open",
        "ebpfslogin",
        65534,
        True,
    )
    assert (auth_ok.user, auth_ok.success) == ("ebpfslogin", True)
    assert (auth_bad.user, auth_bad.success, auth_bad.exe, auth_bad.pid) == ("ebpfslogin", False, "/usr/bin/su", 17427)


def test_logout_and_user_err() -> None:
    out = login(SSHD_LOGOUT)
    assert (out.record_type, out.user, out.success) == ("USER_LOGOUT", "root", True)
    err = login(SSHD_USER_ERR)
    assert (err.record_type, err.op, err.user, err.success) == ("USER_ERR", "PAM:bad_ident", "", False)


def test_numeric_id_without_account_stays_a_number() -> None:
    e = parse_record(1112, "audit(1.5:1): pid=1 uid=0 auid=0 ses=1 msg='op=login id=3999999999 res=success'")
    assert e.user == "3999999999"
    assert e.audit_ts == 1.5


def test_netlink_payload_form_and_type_numbers() -> None:
    body = SU_AUTH_FAILED.split(" msg=", 1)[1] + "\0"
    e = parse_record(1100, body, ts_ns=7)
    assert e == msgspec.structs.replace(login(SU_AUTH_FAILED), ts_ns=7)


def test_parse_fields() -> None:
    f = parse_fields('a=1 b="two words" exe=2F62696E2F7368 comm=ABC msg=\'op=x acct="q" res=success\' tail')
    assert f == {
        "a": "1",
        "b": "two words",
        "exe": "/bin/sh",
        "comm": "ABC",
        "msg": 'op=x acct="q" res=success',
        "op": "x",
        "acct": "q",
        "res": "success",
    }
    assert parse_fields("uid=0 id=1000") == {"uid": "0", "id": "1000"}  # numbers are never hex-decoded


def test_not_user_records_and_malformed() -> None:
    assert parse_log_line(SYSCALL) is None
    assert parse_log_line("garbage") is None
    with pytest.raises(DecodeError, match="USER_LOGIN record without an audit"):
        parse_record(1112, "pid=1 uid=0 msg='op=login res=success'")


def test_json_shape() -> None:
    doc = msgspec.json.decode(msgspec.json.encode(login(SSHD_LOGIN_OK)))
    assert doc["kind"] == "user_login" and doc["user"] == "root" and doc["success"] is True


def _nlmsg(mtype: int, text: str, payload_only_len: bool = False) -> bytes:
    body = text.encode() + b"\0"
    length = len(body) if payload_only_len else 16 + len(body)
    msg = struct.pack("=IHHII", length, mtype, 0, 0, 0) + body
    return msg + b"\0" * (-len(msg) % 4)


def _body(line: str) -> str:
    return line.split(" msg=", 1)[1]


def test_source_filters_by_type_and_auth_success() -> None:
    src = AuditLoginSource()
    out: list[UserLogin] = []
    for mtype, line in ((1100, SU_AUTH_OK), (1100, SU_AUTH_FAILED), (1105, SU_START_OK), (1103, SU_START_OK)):
        src._parse(_nlmsg(mtype, _body(line)), out)
    assert [(e.record_type, e.success) for e in out] == [("USER_AUTH", False), ("USER_START", True)]
    assert src.stats().filtered == 2
    src = AuditLoginSource(frozenset({"USER_AUTH", "CRED_ACQ"}), auth_success=True)
    out = []
    for mtype, line in ((1100, SU_AUTH_OK), (1105, SU_START_OK), (1103, SU_START_OK), (1300, SYSCALL)):
        src._parse(_nlmsg(mtype, _body(line), payload_only_len=True), out)
    assert [e.record_type for e in out] == ["USER_AUTH", "CRED_ACQ"]


def test_source_counts_undecodable() -> None:
    src = AuditLoginSource()
    out: list[UserLogin] = []
    src._parse(_nlmsg(1112, "no header here"), out)
    assert out == [] and src.stats().undecodable == 1


def test_source_arguments() -> None:
    assert "USER_LOGIN" in DEFAULT_RECORD_TYPES and "CRED_ACQ" not in DEFAULT_RECORD_TYPES
    with pytest.raises(ValueError, match="USER_LOGON"):
        AuditLoginSource(frozenset({"USER_LOGON"}))
    with pytest.raises(ValueError, match="not started"):
        AuditLoginSource().poll(0)


def test_the_user_part_cannot_override_the_kernels_fields() -> None:
    """A program that reports a user record chooses what goes inside msg='...';
    it must not pass itself off as another process, user or session."""
    forged = (
        "audit(1700000300.000:900): pid=4242 uid=1000 auid=1000 ses=7 subj=unconfined"
        ' msg=\'op=login pid=1 uid=0 auid=0 ses=1 subj=kernel acct="root" exe="/usr/sbin/sshd"'
        " hostname=? addr=? terminal=ssh res=success'"
    )
    event = parse_record("USER_LOGIN", forged)
    assert (event.pid, event.uid, event.auid, event.ses) == (4242, 1000, 1000, 7)
    assert event.user == "root" and event.exe == "/usr/sbin/sshd" and event.success
    fields = parse_fields(forged.split(": ", 1)[1])
    assert fields["subj"] == "unconfined" and fields["op"] == "login"

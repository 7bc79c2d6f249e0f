# SPDX-License-Identifier: Apache-2.0
"""The audit provider without a kernel: rules as the kernel encodes them, and
events assembled from recorded records.

The records below were received by the provider's receiving socket on
Linux 6.18 (x86_64) while real programs ran: a Python script making each
call, ``/bin/true`` with a 9000-byte argument, mount(8) and umount(8). Only
the process ids were changed (to numbers no process can have, so that
nothing is read from /proc) and the PROCTITLE records shortened; the
9000-byte argument is rebuilt from its length. The rule listed by the
kernel was added with ``auditctl -a always,exit -F arch=b64 -S openat,rename
-F uid!=1234 -F exe=/usr/bin/true -F dir=/tmp -k ebpfsensor-scratch``.
"""

from __future__ import annotations

import os
import re
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from ebpfsensor.errors import ConfigError, EbpfSensorError
from ebpfsensor.events import (
    BpfCall,
    CredChange,
    FileChmod,
    FileCreate,
    FileLink,
    FileOpen,
    FileRename,
    FileSymlink,
    FileUnlink,
    Kill,
    MemfdCreate,
    Mount,
    NetAccept,
    NetBind,
    NetConnect,
    NetListen,
    ProcessExec,
    Setsid,
    Umount,
)
from ebpfsensor.exclusions import ExcludeExecutable, ExcludeName, ExcludePathPrefix, ExcludeSelf, ExcludeUid
from ebpfsensor.host import audit as ha
from ebpfsensor.host.audit import AuditRule, AuditStatus, decode_rule, encode_rule
from ebpfsensor.sources import audit_provider as ap
from ebpfsensor.sources.audit_provider import AuditLockedError, AuditProvider, build_rules

X86 = [(ha.AUDIT_ARCH_X86_64, "x86"), (ha.AUDIT_ARCH_I386, "i386")]
AT_FDCWD = -100
UNKNOWN = 4294967295
PYTHON = "/root/.pyenv/versions/3.11.7/bin/python3.11"

# the rule auditctl added, as AUDIT_LIST_RULES returned it: the 32-bit words
# of struct audit_rule_data that are not zero, then its string buffer
LISTED_WORDS = {
    0: 0x4,
    1: 0x2,
    2: 0x5,
    5: 0x40000,
    11: 0x2,
    67: 0xB,
    68: 0x1,
    69: 0x70,
    70: 0x6B,
    71: 0xD2,
    131: 0xC000003E,
    132: 0x4D2,
    133: 0xD,
    134: 0x4,
    135: 0x12,
    195: 0x40000000,
    196: 0x30000000,
    197: 0x40000000,
    198: 0x40000000,
    199: 0x40000000,
    259: 0x23,
}
LISTED_BUF = b"/usr/bin/true/tmpebpfsensor-scratch"

OPEN_CREATE = [
    (
        1300,
        "audit(1796578672.614:2509): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c"
        " a1=7f8cdc437e00 a2=80041 a3=1a0 items=2 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0"
        ' euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796578672.614:2509): cwd="/tmp/ap/w2"'),
    (
        1302,
        'audit(1796578672.614:2509): item=0 name="/tmp/ap/w2" inode=2149619 dev=fe:00 mode=040755 ouid=0'
        " ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796578672.614:2509): item=1 name="new.txt" inode=2149624 dev=fe:00 mode=0100640 ouid=0'
        " ogid=0 rdev=00:00 nametype=CREATE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796578672.614:2509): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.614:2509): "),
]
OPEN_FAILED_DIRFD = [
    (
        1300,
        "audit(1796578672.614:2512): arch=c000003e syscall=257 success=no exit=-2 a0=3 a1=7f8cdc437e00"
        " a2=80000 a3=0 items=1 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0 euid=0 suid=0"
        ' fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796578672.614:2512): cwd="/tmp/ap/w2"'),
    (
        1302,
        'audit(1796578672.614:2512): item=0 name="nonexist" nametype=UNKNOWN cap_fp=0 cap_fi=0 cap_fe=0'
        " cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796578672.614:2512): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.614:2512): "),
]
EXEC = [
    (
        1300,
        "audit(1796578672.570:2375): arch=c000003e syscall=59 success=yes exit=0 a0=55adc57eacd0"
        " a1=55adbaad78b8 a2=55adc57eab98 a3=8 items=2 ppid=99000000 pid=99000001 auid=4294967295 uid=0"
        ' gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (
        1321,
        "audit(1796578672.570:2375): fver=0 fp=0 fi=0 fe=0 old_pp=000001fffeffffff old_pi=0"
        " old_pe=000001fffeffffff old_pa=0 pp=000001fffeffffff pi=0 pe=000001fffeffffff pa=0 frootid=0",
    ),
    (1309, 'audit(1796578672.570:2375): argc=2 a0="python3" a1="/tmp/ap/work.py"'),
    (1307, 'audit(1796578672.570:2375): cwd="/tmp"'),
    (
        1302,
        'audit(1796578672.570:2375): item=0 name="/root/.pyenv/versions/3.11.7/bin/python3" inode=26723'
        " dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0"
        " cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796578672.570:2375): item=1 name="/lib64/ld-linux-x86-64.so.2" inode=338944 dev=fe:00'
        " mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"
        " cap_frootid=0",
    ),
    (1327, "audit(1796578672.570:2375): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.570:2375): "),
]
RENAME_REPLACING = [
    (
        1300,
        "audit(1796578672.614:2515): arch=c000003e syscall=82 success=yes exit=0 a0=7f8cdc437e00"
        " a1=7f8cdc437f80 a2=0 a3=7f8cdca35528 items=5 ppid=99000000 pid=99000001 auid=4294967295 uid=0"
        ' gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796578672.614:2515): cwd="/tmp/ap/w2"'),
    (
        1302,
        'audit(1796578672.614:2515): item=0 name="/tmp/ap/w2" inode=2149619 dev=fe:00 mode=040755 ouid=0'
        " ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796578672.614:2515): item=1 name="/tmp/ap/w2" inode=2149619 dev=fe:00 mode=040755 ouid=0'
        " ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796578672.614:2515): item=2 name="old" inode=2149633 dev=fe:00 mode=0100644 ouid=0 ogid=0'
        " rdev=00:00 nametype=DELETE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796578672.614:2515): item=3 name="target" inode=2149637 dev=fe:00 mode=0100644 ouid=0'
        " ogid=0 rdev=00:00 nametype=DELETE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796578672.614:2515): item=4 name="target" inode=2149633 dev=fe:00 mode=0100644 ouid=0'
        " ogid=0 rdev=00:00 nametype=CREATE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796578672.614:2515): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.614:2515): "),
]
RENAME_INTO_SUB = [
    (
        1300,
        "audit(1796578672.614:2517): arch=c000003e syscall=82 success=yes exit=0 a0=7f8cdc437f80"
        " a1=7f8cdc437e00 a2=0 a3=562e92ae3da0 items=4 ppid=99000000 pid=99000001 auid=4294967295 uid=0"
        ' gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796578672.614:2517): cwd="/tmp/ap/w2"'),
    (
        1302,
        'audit(1796578672.614:2517): item=0 name="sub/" inode=2149637 dev=fe:00 mode=040700 ouid=0 ogid=0'
        " rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796578672.614:2517): item=1 name="/tmp/ap/w2" inode=2149619 dev=fe:00 mode=040755 ouid=0'
        " ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796578672.614:2517): item=2 name="target" inode=2149633 dev=fe:00 mode=0100644 ouid=0'
        " ogid=0 rdev=00:00 nametype=DELETE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796578672.614:2517): item=3 name="sub/moved" inode=2149633 dev=fe:00 mode=0100644 ouid=0'
        " ogid=0 rdev=00:00 nametype=CREATE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796578672.614:2517): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.614:2517): "),
]
FCHMOD = [
    (
        1300,
        "audit(1796578672.614:2520): arch=c000003e syscall=91 success=yes exit=0 a0=3 a1=1a4 a2=0"
        " a3=7f8cdca27608 items=1 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0 euid=0 suid=0"
        ' fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796578672.614:2520): cwd="/tmp/ap/w2"'),
    (
        1302,
        "audit(1796578672.614:2520): item=0 name=(null) inode=2149633 dev=fe:00 mode=0100600 ouid=0"
        " ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796578672.614:2520): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.614:2520): "),
]
SYMLINK = [
    (
        1300,
        "audit(1796578672.614:2524): arch=c000003e syscall=88 success=yes exit=0 a0=7f8cdc437f80"
        " a1=7f8cdc437e00 a2=0 a3=7f8cdca28f40 items=3 ppid=99000000 pid=99000001 auid=4294967295 uid=0"
        ' gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796578672.614:2524): cwd="/tmp/ap/w2"'),
    (
        1302,
        'audit(1796578672.614:2524): item=0 name="/tmp/ap/w2" inode=2149619 dev=fe:00 mode=040755 ouid=0'
        " ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        "audit(1796578672.614:2524): item=1 name=2E2E2F736F6D6520746172676574 nametype=UNKNOWN cap_fp=0"
        " cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796578672.614:2524): item=2 name="sym" inode=2149646 dev=fe:00 mode=0120777 ouid=0 ogid=0'
        " rdev=00:00 nametype=CREATE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796578672.614:2524): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.614:2524): "),
]
MKNOD = [
    (
        1300,
        "audit(1796578672.614:2525): arch=c000003e syscall=259 success=yes exit=0 a0=ffffff9c"
        " a1=7f8cdc437e00 a2=1180 a3=0 items=2 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0"
        ' euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796578672.614:2525): cwd="/tmp/ap/w2"'),
    (
        1302,
        'audit(1796578672.614:2525): item=0 name="/tmp/ap/w2" inode=2149619 dev=fe:00 mode=040755 ouid=0'
        " ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796578672.614:2525): item=1 name="fifo" inode=2149648 dev=fe:00 mode=010600 ouid=0 ogid=0'
        " rdev=00:00 nametype=CREATE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796578672.614:2525): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.614:2525): "),
]
RMDIR = [
    (
        1300,
        "audit(1796578672.614:2528): arch=c000003e syscall=84 success=yes exit=0 a0=7f8cdc437e00 a1=0"
        " a2=0 a3=7f8cdca2da58 items=2 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0 euid=0"
        ' suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796578672.614:2528): cwd="/tmp/ap/w2"'),
    (
        1302,
        'audit(1796578672.614:2528): item=0 name="/tmp/ap/w2" inode=2149619 dev=fe:00 mode=040755 ouid=0'
        " ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796578672.614:2528): item=1 name="empty" inode=2149649 dev=fe:00 mode=040755 ouid=0'
        " ogid=0 rdev=00:00 nametype=DELETE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796578672.614:2528): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.614:2528): "),
]
BIND_INET = [
    (
        1300,
        "audit(1796578672.618:2529): arch=c000003e syscall=49 success=yes exit=0 a0=3 a1=7fff658812b0"
        " a2=10 a3=0 items=0 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0"
        ' egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1306, "audit(1796578672.618:2529): saddr=020000007F0000010000000000000000"),
    (1327, "audit(1796578672.618:2529): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.618:2529): "),
]
LISTEN = [
    (
        1300,
        "audit(1796578672.618:2530): arch=c000003e syscall=50 success=yes exit=0 a0=3 a1=7 a2=0"
        " a3=7f8cdc437fe8 items=0 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0 euid=0 suid=0"
        ' fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1327, "audit(1796578672.618:2530): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.618:2530): "),
]
CONNECT_INET = [
    (
        1300,
        "audit(1796578672.618:2531): arch=c000003e syscall=42 success=yes exit=0 a0=4 a1=7fff658812c0"
        " a2=10 a3=0 items=0 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0"
        ' egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1306, "audit(1796578672.618:2531): saddr=0200C6DB7F0000010000000000000000"),
    (1327, "audit(1796578672.618:2531): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.618:2531): "),
]
ACCEPT4 = [
    (
        1300,
        "audit(1796578672.618:2532): arch=c000003e syscall=288 success=yes exit=5 a0=3 a1=7fff658812a0"
        " a2=7fff65881294 a3=80000 items=0 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0 euid=0"
        ' suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1306, "audit(1796578672.618:2532): saddr=020094C07F0000010000000000000000"),
    (1327, "audit(1796578672.618:2532): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.618:2532): "),
]
CONNECT_UNIX_FAILED = [
    (
        1300,
        "audit(1796578672.618:2533): arch=c000003e syscall=42 success=no exit=-2 a0=3 a1=7fff658812c0"
        " a2=16 a3=0 items=1 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0"
        ' egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1306, "audit(1796578672.618:2533): saddr=01002F746D702F61702F6E6F737563682E736F636B00"),
    (1307, 'audit(1796578672.618:2533): cwd="/tmp/ap/w2"'),
    (
        1302,
        'audit(1796578672.618:2533): item=0 name="/tmp/ap/nosuch.sock" nametype=UNKNOWN cap_fp=0 cap_fi=0'
        " cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796578672.618:2533): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.618:2533): "),
]
BIND_INET6 = [
    (
        1300,
        "audit(1796578672.618:2534): arch=c000003e syscall=49 success=yes exit=0 a0=3 a1=7fff658812b0"
        " a2=1c a3=7f8cdc42a1e2 items=0 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0 euid=0"
        ' suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1306, "audit(1796578672.618:2534): saddr=0A000000000000000000000000000000000000000000000100000000"),
    (1327, "audit(1796578672.618:2534): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.618:2534): "),
]
SETUID = [
    (
        1300,
        "audit(1796578672.622:2536): arch=c000003e syscall=105 success=yes exit=0 a0=fffe a1=7fff6588131c"
        " a2=1 a3=7f8cdca2bd00 items=0 ppid=99000001 pid=99000002 auid=4294967295 uid=65534 gid=65534"
        " euid=65534 suid=65534 fsuid=65534 egid=65534 sgid=65534 fsgid=65534 tty=(none) ses=4294967295"
        ' comm="python3" exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1327, "audit(1796578672.622:2536): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.622:2536): "),
]
KILL = [
    (
        1300,
        "audit(1796578672.622:2537): arch=c000003e syscall=62 success=yes exit=0 a0=4b0e a1=f"
        " a2=7f8cdcfb17a8 a3=7f8cdca34580 items=0 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0"
        ' euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1318, 'audit(1796578672.622:2537): opid=19214 oauid=-1 ouid=0 oses=-1 ocomm="python3"'),
    (1327, "audit(1796578672.622:2537): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.622:2537): "),
]
MEMFD = [
    (
        1300,
        "audit(1796578672.626:2538): arch=c000003e syscall=319 success=yes exit=3 a0=7f8cdc437e00 a1=1"
        " a2=0 a3=7f8cdca32138 items=0 ppid=99000000 pid=99000001 auid=4294967295 uid=0 gid=0 euid=0"
        ' suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1327, "audit(1796578672.626:2538): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.626:2538): "),
]
SETSID = [
    (
        1300,
        "audit(1796578672.630:2539): arch=c000003e syscall=112 success=yes exit=19215 a0=7f8cdc891990"
        " a1=0 a2=7f8cdd069760 a3=7f8cdca291c8 items=0 ppid=99000001 pid=99000003 auid=4294967295 uid=0"
        ' gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1327, "audit(1796578672.630:2539): proctitle=707974686F6E33"),
    (1320, "audit(1796578672.630:2539): "),
]
EXEC_LONG_ARGV = [
    (
        1300,
        "audit(1796579307.266:119923): arch=c000003e syscall=59 success=yes exit=0 a0=7f27fafa4a20"
        " a1=7f27fa98cd90 a2=7ffd9928ca80 a3=8 items=2 ppid=99000004 pid=99000005 auid=4294967295 uid=0"
        ' gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="true"'
        ' exe="/usr/bin/true" key="ebpfsensor-scratch"',
    ),
    (
        1321,
        "audit(1796579307.266:119923): fver=0 fp=0 fi=0 fe=0 old_pp=000001fffeffffff old_pi=0"
        " old_pe=000001fffeffffff old_pa=0 pp=000001fffeffffff pi=0 pe=000001fffeffffff pa=0 frootid=0",
    ),
    (
        1309,
        'audit(1796579307.266:119923): argc=3 a0="/bin/true" a1_len=18000 a1[0]=' + "41" * 3732,
    ),
    (1309, "audit(1796579307.266:119923):  a1[1]=" + "41" * 3746),
    (1309, "audit(1796579307.266:119923):  a1[2]=" + "41" * 1522 + " a2=7461620968657265"),
    (1307, 'audit(1796579307.266:119923): cwd="/tmp/ebpfs-9o78ifyp"'),
    (
        1302,
        'audit(1796579307.266:119923): item=0 name="/bin/true" inode=260958 dev=fe:00 mode=0100755 ouid=0'
        " ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796579307.266:119923): item=1 name="/lib64/ld-linux-x86-64.so.2" inode=338944 dev=fe:00'
        " mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"
        " cap_frootid=0",
    ),
    (1327, "audit(1796579307.266:119923): proctitle=707974686F6E33"),
    (1320, "audit(1796579307.266:119923): "),
]
CAPSET = [
    (
        1300,
        "audit(1796579307.266:119924): arch=c000003e syscall=126 success=yes exit=0 a0=7f27fadaa650"
        " a1=7f27fa98ce50 a2=7f27fb755548 a3=0 items=0 ppid=99000004 pid=99000006 auid=4294967295 uid=0"
        ' gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (
        1322,
        "audit(1796579307.266:119924): pid=99000006 cap_pi=0 cap_pp=000001fffeffdfff cap_pe=000001fffeffdfff cap_pa=0",
    ),
    (1327, "audit(1796579307.266:119924): proctitle=707974686F6E33"),
    (1320, "audit(1796579307.266:119924): "),
]
MKNODAT = [
    (
        1300,
        "audit(1796579307.266:119926): arch=c000003e syscall=259 success=yes exit=0 a0=3 a1=7f27fb751df0"
        " a2=1180 a3=0 items=2 ppid=99000007 pid=99000004 auid=4294967295 uid=0 gid=0 euid=0 suid=0"
        ' fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796579307.266:119926): cwd="/tmp/ebpfs-9o78ifyp"'),
    (
        1302,
        'audit(1796579307.266:119926): item=0 name="/tmp/ebpfs-9o78ifyp" inode=2187411 dev=fe:00'
        " mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"
        " cap_frootid=0",
    ),
    (
        1302,
        'audit(1796579307.266:119926): item=1 name="p" inode=2187427 dev=fe:00 mode=010600 ouid=0 ogid=0'
        " rdev=00:00 nametype=CREATE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796579307.266:119926): proctitle=707974686F6E33"),
    (1320, "audit(1796579307.266:119926): "),
]
LINKAT = [
    (
        1300,
        "audit(1796579307.266:119927): arch=c000003e syscall=265 success=yes exit=0 a0=3 a1=7f27fb751df0"
        " a2=3 a3=7f27fb751e20 items=3 ppid=99000007 pid=99000004 auid=4294967295 uid=0 gid=0 euid=0"
        ' suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796579307.266:119927): cwd="/tmp/ebpfs-9o78ifyp"'),
    (
        1302,
        'audit(1796579307.266:119927): item=0 name="/tmp/ebpfs-9o78ifyp" inode=2187411 dev=fe:00'
        " mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"
        " cap_frootid=0",
    ),
    (
        1302,
        'audit(1796579307.266:119927): item=1 name="p" inode=2187427 dev=fe:00 mode=010600 ouid=0 ogid=0'
        " rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796579307.266:119927): item=2 name="q" inode=2187427 dev=fe:00 mode=010600 ouid=0 ogid=0'
        " rdev=00:00 nametype=CREATE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796579307.266:119927): proctitle=707974686F6E33"),
    (1320, "audit(1796579307.266:119927): "),
]
UNLINKAT = [
    (
        1300,
        "audit(1796579307.266:119928): arch=c000003e syscall=263 success=yes exit=0 a0=3 a1=7f27fb751e20"
        " a2=0 a3=7f27fb036f80 items=2 ppid=99000007 pid=99000004 auid=4294967295 uid=0 gid=0 euid=0"
        ' suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796579307.266:119928): cwd="/tmp/ebpfs-9o78ifyp"'),
    (
        1302,
        'audit(1796579307.266:119928): item=0 name="/tmp/ebpfs-9o78ifyp" inode=2187411 dev=fe:00'
        " mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"
        " cap_frootid=0",
    ),
    (
        1302,
        'audit(1796579307.266:119928): item=1 name="q" inode=2187427 dev=fe:00 mode=010600 ouid=0 ogid=0'
        " rdev=00:00 nametype=DELETE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796579307.266:119928): proctitle=707974686F6E33"),
    (1320, "audit(1796579307.266:119928): "),
]
RENAMEAT = [
    (
        1300,
        "audit(1796579307.266:119929): arch=c000003e syscall=264 success=yes exit=0 a0=3 a1=7f27fb751df0"
        " a2=3 a3=7f27fb751e50 items=4 ppid=99000007 pid=99000004 auid=4294967295 uid=0 gid=0 euid=0"
        ' suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796579307.266:119929): cwd="/tmp/ebpfs-9o78ifyp"'),
    (
        1302,
        'audit(1796579307.266:119929): item=0 name="/tmp/ebpfs-9o78ifyp" inode=2187411 dev=fe:00'
        " mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"
        " cap_frootid=0",
    ),
    (
        1302,
        'audit(1796579307.266:119929): item=1 name="/tmp/ebpfs-9o78ifyp" inode=2187411 dev=fe:00'
        " mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"
        " cap_frootid=0",
    ),
    (
        1302,
        'audit(1796579307.266:119929): item=2 name="p" inode=2187427 dev=fe:00 mode=010600 ouid=0 ogid=0'
        " rdev=00:00 nametype=DELETE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (
        1302,
        'audit(1796579307.266:119929): item=3 name="r" inode=2187427 dev=fe:00 mode=010600 ouid=0 ogid=0'
        " rdev=00:00 nametype=CREATE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
    ),
    (1327, "audit(1796579307.266:119929): proctitle=707974686F6E33"),
    (1320, "audit(1796579307.266:119929): "),
]
MOUNT = [
    (
        1300,
        "audit(1796579307.270:119949): arch=c000003e syscall=165 success=yes exit=0 a0=557535538410"
        " a1=557535539100 a2=5575355383b0 a3=0 items=1 ppid=99000004 pid=99000008 auid=4294967295 uid=0"
        ' gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="mount"'
        ' exe="/usr/bin/mount" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796579307.270:119949): cwd="/tmp/ebpfs-9o78ifyp"'),
    (
        1302,
        'audit(1796579307.270:119949): item=0 name="/tmp/ebpfs-9o78ifyp/mnt" inode=2187459 dev=fe:00'
        " mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"
        " cap_frootid=0",
    ),
    (1327, "audit(1796579307.270:119949): proctitle=707974686F6E33"),
    (1320, "audit(1796579307.270:119949): "),
]
UMOUNT2 = [
    (
        1300,
        "audit(1796579307.278:119969): arch=c000003e syscall=166 success=yes exit=0 a0=561594efd100 a1=0"
        " a2=0 a3=0 items=1 ppid=99000004 pid=99000009 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0"
        ' egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="umount" exe="/usr/bin/umount"'
        ' key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796579307.278:119969): cwd="/tmp/ebpfs-9o78ifyp"'),
    (
        1302,
        'audit(1796579307.278:119969): item=0 name="/tmp/ebpfs-9o78ifyp/mnt" inode=1 dev=00:29'
        " mode=041777 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fe=? cap_fver=? cap_fp=? cap_fi=?",
    ),
    (1327, "audit(1796579307.278:119969): proctitle=707974686F6E33"),
    (1320, "audit(1796579307.278:119969): "),
]
TKILL = [
    (
        1300,
        "audit(1796579307.278:119970): arch=c000003e syscall=200 success=yes exit=0 a0=63c0 a1=f"
        " a2=7f27fa992de0 a3=7f27fabb3f70 items=0 ppid=99000007 pid=99000004 auid=4294967295 uid=0 gid=0"
        ' euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1318, 'audit(1796579307.278:119970): opid=25536 oauid=-1 ouid=0 oses=-1 ocomm="python3"'),
    (1327, "audit(1796579307.278:119970): proctitle=707974686F6E33"),
    (1320, "audit(1796579307.278:119970): "),
]
BIND_ABSTRACT = [
    (
        1300,
        "audit(1796579307.278:119972): arch=c000003e syscall=49 success=yes exit=0 a0=3 a1=7ffd9928c420"
        " a2=11 a3=0 items=0 ppid=99000007 pid=99000004 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0"
        ' egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1306, "audit(1796579307.278:119972): saddr=01000065627066732D6162737472616374"),
    (1327, "audit(1796579307.278:119972): proctitle=707974686F6E33"),
    (1320, "audit(1796579307.278:119972): "),
]
RENAME_FAILED = [
    (
        1300,
        "audit(1796579307.278:119974): arch=c000003e syscall=82 success=no exit=-2 a0=7f27fab3b770"
        " a1=7f27fb751f70 a2=0 a3=55608fff0da0 items=2 ppid=99000007 pid=99000004 auid=4294967295 uid=0"
        ' gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="python3"'
        ' exe="/root/.pyenv/versions/3.11.7/bin/python3.11" key="ebpfsensor-scratch"',
    ),
    (1307, 'audit(1796579307.278:119974): cwd="/tmp/ebpfs-9o78ifyp"'),
    (
        1302,
        'audit(1796579307.278:119974): item=0 name="/tmp/ebpfs-9o78ifyp" inode=2187393 dev=fe:00'
        " mode=040700 ouid=0 ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"
        " cap_frootid=0",
    ),
    (
        1302,
        'audit(1796579307.278:119974): item=1 name="/tmp/ebpfs-9o78ifyp" inode=2187393 dev=fe:00'
        " mode=040700 ouid=0 ogid=0 rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"
        " cap_frootid=0",
    ),
    (1327, "audit(1796579307.278:119974): proctitle=707974686F6E33"),
    (1320, "audit(1796579307.278:119974): "),
]


def datagram(rtype: int, text: str) -> bytes:
    """A record as the kernel sends it to the audit daemon (nlmsg_len counts
    the payload only)."""
    payload = text.encode() + b"\0"
    return ha.NLMSG_HEADER.pack(len(payload), rtype, 0, 0, 0) + payload


def replay(records: list[tuple[int, str]], provider: AuditProvider | None = None, **kw: Any) -> list[Any]:
    """The events a provider (not started) makes of recorded records; every
    open reported unless read_opens says otherwise."""
    p = provider or AuditProvider(arches=X86, **{"read_opens": "all", **kw})
    out: list[Any] = []
    for rtype, text in records:
        out += p.feed(datagram(rtype, text))
    return out


def one(records: list[tuple[int, str]], cls: type, **kw: Any) -> Any:
    events = [e for e in replay(records, **kw) if type(e) is cls]
    assert len(events) == 1, events
    return events[0]


def common(e: Any, pid: int = 99000001, ppid: int = 99000000, comm: str = "python3", uid: int = 0) -> None:
    """The fields every event gets from the SYSCALL record (the process is
    gone: /proc gives nothing)."""
    assert (e.pid, e.tid, e.ppid, e.uid, e.gid, e.comm) == (pid, pid, ppid, uid, uid, comm)
    assert (e.cgroup_id, e.start_time_ns, e.container_id) == (0, 0, "")


# --- rules ----------------------------------------------------------------------------------


def test_rule_listed_by_the_kernel_decodes_and_encodes_back() -> None:
    raw = bytearray(struct.pack("=260I", *(LISTED_WORDS.get(i, 0) for i in range(260))) + LISTED_BUF)
    rule = decode_rule(bytes(raw))
    assert rule.flags == ha.AUDIT_FILTER_EXIT and rule.action == ha.AUDIT_ALWAYS
    assert rule.syscalls == {257, 82}
    assert rule.fields == (
        (ha.AUDIT_ARCH, ha.AUDIT_EQUAL, ha.AUDIT_ARCH_X86_64),
        (ha.AUDIT_UID, ha.AUDIT_NOT_EQUAL, 1234),
        (ha.AUDIT_EXE, ha.AUDIT_EQUAL, "/usr/bin/true"),
        (ha.AUDIT_DIR, ha.AUDIT_EQUAL, "/tmp"),
        (ha.AUDIT_FILTERKEY, ha.AUDIT_EQUAL, "ebpfsensor-scratch"),
    )
    assert rule.key == "ebpfsensor-scratch"
    assert encode_rule(rule) == bytes(raw)
    built = AuditRule.syscall_rule(ha.AUDIT_ALWAYS, {82, 257}, rule.fields)
    assert encode_rule(built) == bytes(raw)


def test_rule_encoding_refuses_what_the_kernel_would() -> None:
    too_many = tuple((ha.AUDIT_UID, ha.AUDIT_NOT_EQUAL, i) for i in range(65))
    with pytest.raises(ValueError, match="at most 64 fields"):
        encode_rule(AuditRule.syscall_rule(ha.AUDIT_ALWAYS, {1}, too_many))
    with pytest.raises(ValueError, match="takes a string"):
        encode_rule(AuditRule.syscall_rule(ha.AUDIT_ALWAYS, {1}, ((ha.AUDIT_FILTERKEY, ha.AUDIT_EQUAL, 5),)))
    with pytest.raises(ValueError, match="outside the audit bitmap"):
        AuditRule.syscall_rule(ha.AUDIT_ALWAYS, {4096}, ())
    with pytest.raises(Exception, match="struct audit_rule_data has 1040"):
        decode_rule(b"\0" * 100)
    short = struct.pack("=260I", *(LISTED_WORDS.get(i, 0) for i in range(260))) + LISTED_BUF[:5]
    with pytest.raises(Exception, match="runs past"):
        decode_rule(short)


def fields_of(rule: AuditRule) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for field, op, value in rule.fields:
        out.setdefault(field, []).append((op, value))
    return out


def test_rules_for_every_kind_on_x86_64() -> None:
    rules = build_rules(ap.KIND_SYSCALLS, arches=X86)
    assert all(r.key == ap.KEY and r.flags == ha.AUDIT_FILTER_EXIT for r in rules)
    assert all(r.action == ha.AUDIT_ALWAYS for r in rules)
    native = [r for r in rules if fields_of(r)[ha.AUDIT_ARCH] == [(ha.AUDIT_EQUAL, ha.AUDIT_ARCH_X86_64)]]
    compat = [r for r in rules if fields_of(r)[ha.AUDIT_ARCH] == [(ha.AUDIT_EQUAL, ha.AUDIT_ARCH_I386)]]
    assert len(native) == len(compat) == 4
    main, kill, tgkill, bpf = native
    # execve, open, openat, openat2, creat, rename, renameat2, connect, setuid, mount, umount2, fchmodat2
    assert {59, 2, 257, 437, 85, 82, 316, 42, 105, 165, 166, 452} <= main.syscalls
    assert not main.syscalls & {62, 200, 234, 321}
    # signal 0 is left out in the kernel: kill's and tkill's in a1, tgkill's in a2
    assert kill.syscalls == {62, 200} and fields_of(kill)[ha.AUDIT_ARG0 + 1] == [(ha.AUDIT_NOT_EQUAL, 0)]
    assert tgkill.syscalls == {234} and fields_of(tgkill)[ha.AUDIT_ARG0 + 2] == [(ha.AUDIT_NOT_EQUAL, 0)]
    assert bpf.syscalls == {321}
    assert [v for _, v in fields_of(bpf)[ha.AUDIT_ARG0]] == [1, 2, 3, 4, 21, 24, 25, 26, 27]
    # 32-bit: execve 11, socketcall 102 for the network calls, setuid32 213
    assert {11, 102, 213, 362, 5, 295} <= compat[0].syscalls


def test_rules_for_some_kinds_and_exclusions(tmp_path: Path) -> None:
    exe = tmp_path / "noisy"
    exe.write_text("")
    other = tmp_path / "other"
    other.write_text("")
    rules = build_rules(
        {"file_open", "net_connect"},
        [
            ExcludeUid(1234),
            ExcludeUid(5),
            ExcludeExecutable(str(exe)),
            ExcludeExecutable(str(other)),
            ExcludeExecutable("/bin/sh", descendants=True),
            ExcludePathPrefix("/var/log/app"),
            ExcludePathPrefix("/absent/dir"),
            ExcludeName("noisy"),
        ],
        self_pid=4321,
        arches=X86[:1],
        dir_exists=lambda path: path == "/var/log/app",
    )
    never_exe, never_dir, always = rules
    assert never_exe.action == never_dir.action == ha.AUDIT_NEVER
    assert fields_of(never_exe)[ha.AUDIT_EXE] == [(ha.AUDIT_EQUAL, str(other))]
    assert never_exe.syscalls == {2, 257, 437, 85, 42}
    # a path prefix is matched in the kernel only for calls naming one file
    assert fields_of(never_dir)[ha.AUDIT_DIR] == [(ha.AUDIT_EQUAL, "/var/log/app")]
    assert never_dir.syscalls == {2, 257, 437, 85}
    f = fields_of(always)
    assert f[ha.AUDIT_UID] == [(ha.AUDIT_NOT_EQUAL, 5), (ha.AUDIT_NOT_EQUAL, 1234)]
    assert f[ha.AUDIT_PID] == [(ha.AUDIT_NOT_EQUAL, 4321)]
    assert f[ha.AUDIT_EXE] == [(ha.AUDIT_NOT_EQUAL, str(exe))]
    assert always.syscalls == {2, 257, 437, 85, 42}
    for rule in rules:
        assert encode_rule(rule)  # fits the kernel's structure
    # logins need no rule; fork and exit are not audit's
    assert build_rules({"user_login"}, arches=X86) == []
    with pytest.raises(ConfigError, match="process_fork"):
        build_rules({"process_fork"}, arches=X86)


def test_i386_numbers_match_the_kernel_headers() -> None:
    header = Path("/usr/include/x86_64-linux-gnu/asm/unistd_32.h")
    if not header.exists():
        pytest.skip("no i386 syscall header (linux-libc-dev) to compare with")
    numbers = {m[0]: int(m[1]) for m in re.findall(r"#define __NR_(\w+)\s+(\d+)", header.read_text())}
    for nr, name in ap._I386.items():
        candidates = {name, f"{name}32"}
        assert nr in {numbers.get(c) for c in candidates} or (name, nr) == ("fchmodat2", 452), (nr, name)


# --- events from recorded records ----------------------------------------------------------------


def test_exec_with_argv_cwd_and_credentials() -> None:
    e = one(EXEC, ProcessExec)
    common(e)
    assert e.argv == ["python3", "/tmp/ap/work.py"] and not e.argv_truncated
    assert (e.exe, e.cwd, e.exe_deleted, e.exe_memfd) == (PYTHON, "/tmp", False, False)
    assert (e.euid, e.egid, e.suid, e.sgid, e.fsuid, e.fsgid) == (0, 0, 0, 0, 0, 0)
    assert (e.loginuid, e.sessionid, e.tty, e.old_tid) == (UNKNOWN, UNKNOWN, "", 99000001)
    # gone from /proc: the parent and namespaces are neutral
    assert (e.parent_comm, e.parent_exe, e.pid_ns, e.mnt_ns) == ("", "", 0, 0)
    assert e.ts_ns > 0


def test_exec_argv_split_over_records_and_hex_encoded() -> None:
    e = one(EXEC_LONG_ARGV, ProcessExec)
    common(e, pid=99000005, ppid=99000004, comm="true")
    assert e.exe == "/usr/bin/true" and e.cwd == "/tmp/ebpfs-9o78ifyp"
    # 9000 bytes of the argument fit in ARGV_LEN - 1 (8191) bytes cut like the eBPF path
    assert e.argv_truncated
    assert e.argv[0] == "/bin/true" and set(e.argv[1]) == {"A"} and len(e.argv) == 2
    assert len("\0".join(e.argv).encode()) == 8191


def test_open_that_created_a_file() -> None:
    # one call, one event: a FileCreate with every kind on, a FileOpen
    # saying it created the file when file_create is off
    (created,) = replay(OPEN_CREATE)
    (opened,) = replay(OPEN_CREATE, kinds=ap.AuditProvider.available_kinds - {"file_create"})
    assert (type(created), type(opened)) == (FileCreate, FileOpen)
    assert replay(OPEN_CREATE, kinds={"process_exec"}) == []
    for e in (opened, created):
        common(e)
        assert (e.result, e.syscall_nr, e.dirfd, e.flags, e.mode) == (3, 257, AT_FDCWD, 0o2000101, 0o640)
        assert (e.path, e.arg_path, e.created, e.resolved) == ("/tmp/ap/w2/new.txt", "new.txt", True, False)
        assert (e.ino, e.dev) == (2149624, os.makedev(0xFE, 0))
        assert not e.path_truncated and not e.arg_path_truncated


def test_a_failed_o_creat_open_is_an_open_unless_creations_alone() -> None:
    # the failed openat of OPEN_FAILED_DIRFD, with O_CREAT|O_WRONLY added by the caller
    creat = [(t, x.replace(" a2=80000 ", " a2=80041 ")) for t, x in OPEN_FAILED_DIRFD]
    (e,) = replay(creat)
    assert (type(e), e.result, e.flags, e.created) == (FileOpen, -2, 0o2000101, False)
    (e,) = replay(creat, kinds={"file_create"})
    assert (type(e), e.result) == (FileCreate, -2)


def test_failed_open_relative_to_a_directory_fd() -> None:
    e = one(OPEN_FAILED_DIRFD, FileOpen)
    # the process is gone, so its fd 3 cannot be read: the string alone
    assert (e.result, e.errno, e.dirfd, e.path, e.arg_path) == (-2, 2, 3, "nonexist", "nonexist")
    assert (e.ino, e.dev, e.created) == (0, 0, False)
    assert not [x for x in replay(OPEN_FAILED_DIRFD) if isinstance(x, FileCreate)]


def test_open_policy_in_user_space() -> None:
    """Under the default open policy a read-only open that failed other
    than by a refusal, or opened a file not watched, is counted as
    filtered; with the file watched (its device and inode) it is reported."""
    p = AuditProvider(arches=X86)
    assert not [e for e in replay(OPEN_FAILED_DIRFD, p) if isinstance(e, FileOpen)]
    assert p.stats().kinds["file_open"].filtered == 1
    (e,) = [e for e in replay(OPEN_FAILED_DIRFD) if isinstance(e, FileOpen)]
    assert e.result == -2
    # a read-only open of an existing file (the creation's records, made O_RDONLY)
    read = [
        (t, x.replace("a2=80041", "a2=80000").replace("nametype=CREATE", "nametype=NORMAL")) for t, x in OPEN_CREATE
    ]
    p = AuditProvider(arches=X86)
    p._watched, p._watched_at = frozenset(), time.monotonic()
    assert replay(read, p) == [] and p.stats().kinds["file_open"].filtered == 1
    p = AuditProvider(arches=X86)
    p._watched, p._watched_at = frozenset({(os.makedev(0xFE, 0), 2149624)}), time.monotonic()
    (e,) = replay(read, p)
    assert type(e) is FileOpen and (e.dev, e.ino, e.flags) == (os.makedev(0xFE, 0), 2149624, 0o2000000)


def test_rename_replacing_a_file_and_into_a_directory() -> None:
    e = one(RENAME_REPLACING, FileRename)
    common(e)
    assert (e.path, e.new_path, e.arg_path, e.new_arg_path) == ("/tmp/ap/w2/old", "/tmp/ap/w2/target", "old", "target")
    assert (e.replaced, e.flags, e.dirfd, e.new_dirfd, e.syscall_nr) == (True, 0, AT_FDCWD, AT_FDCWD, 82)
    e = one(RENAME_INTO_SUB, FileRename)
    assert (e.path, e.new_path, e.replaced) == ("/tmp/ap/w2/target", "/tmp/ap/w2/sub/moved", False)


def test_renameat_with_directory_fds_and_a_failed_rename() -> None:
    e = one(RENAMEAT, FileRename)
    assert (e.dirfd, e.new_dirfd, e.arg_path, e.new_arg_path, e.syscall_nr) == (3, 3, "p", "r", 264)
    e = one(RENAME_FAILED, FileRename)
    # the kernel records only the directories of a rename that failed
    assert (e.result, e.path, e.new_path, e.replaced) == (-2, "", "", False)


def test_file_calls_naming_one_file() -> None:
    e = one(FCHMOD, FileChmod)
    assert (e.dirfd, e.mode, e.path, e.arg_path, e.syscall_nr) == (3, 0o644, "", "", 91)
    e = one(SYMLINK, FileSymlink)
    assert (e.target, e.path, e.arg_path, e.dirfd) == ("../some target", "/tmp/ap/w2/sym", "sym", AT_FDCWD)
    e = one(MKNOD, FileCreate)
    assert (e.mode, e.created, e.path, e.flags, e.ino) == (0o10600, True, "/tmp/ap/w2/fifo", 0, 0)
    e = one(MKNODAT, FileCreate)
    assert (e.dirfd, e.arg_path, e.syscall_nr) == (3, "p", 259)
    e = one(RMDIR, FileUnlink)
    assert (e.is_dir, e.flags, e.path, e.syscall_nr) == (True, 0x200, "/tmp/ap/w2/empty", 84)
    e = one(UNLINKAT, FileUnlink)
    assert (e.is_dir, e.dirfd, e.arg_path) == (False, 3, "q")
    e = one(LINKAT, FileLink)
    assert (e.arg_path, e.new_arg_path, e.dirfd, e.new_dirfd, e.flags) == ("p", "q", 3, 3, 0)


def test_network_calls_from_sockaddr() -> None:
    e = one(CONNECT_INET, NetConnect)
    common(e)
    assert (e.fd, e.family, e.remote_address, e.remote_port, e.syscall_nr) == (4, 2, "127.0.0.1", 0xC6DB, 42)
    # the caller's socket is gone: its type and local address are unknown
    assert (e.sock_type, e.protocol, e.local_port, e.local_address) == (0, 0, 0, "0.0.0.0")
    e = one(ACCEPT4, NetAccept)
    assert (e.result, e.fd, e.flags, e.remote_address, e.remote_port) == (5, 3, 0o2000000, "127.0.0.1", 0x94C0)
    e = one(BIND_INET, NetBind)
    assert (e.local_address, e.local_port, e.remote_port) == ("127.0.0.1", 0, 0)
    e = one(BIND_INET6, NetBind)
    assert (e.family, e.local_address) == (10, "::1")
    # the same Structs as the eBPF provider's: addresses as text
    assert (e.local_addr, e.remote_addr, str(e.local_ip)) == ("::1", "::", "::1")
    e = one(BIND_ABSTRACT, NetBind)
    assert (e.family, e.local_path, e.local_address) == (1, "\0ebpfs-abstract", "@ebpfs-abstract")
    assert (e.local_addr, e.remote_addr, e.local_ip) == ("", "", None)
    e = one(LISTEN, NetListen)
    assert (e.fd, e.backlog) == (3, 7)
    e = one(CONNECT_UNIX_FAILED, NetConnect)
    assert (e.result, e.family, e.remote_path) == (-2, 1, "/tmp/ap/nosuch.sock")


def test_privilege_calls() -> None:
    e = one(SETUID, CredChange)
    # the ids after the call: the task's uid and gid are nobody's now
    common(e, pid=99000002, ppid=99000001, uid=65534)
    assert (e.new_uid, e.new_euid, e.new_suid, e.new_fsuid, e.new_gid) == (65534, 65534, 65534, 65534, 65534)
    assert (e.old_uid, e.old_euid, e.arg0, e.arg1, e.syscall_nr) == (UNKNOWN, UNKNOWN, 65534, 0, 105)
    e = one(CAPSET, CredChange)
    assert (e.new_cap_permitted, e.new_cap_effective, e.new_cap_inheritable) == (0x1FFFEFFDFFF, 0x1FFFEFFDFFF, 0)
    e = one(KILL, Kill)
    assert (e.target_pid, e.target_tid, e.signal) == (19214, 0, 15)
    e = one(TKILL, Kill)
    assert (e.target_pid, e.target_tid, e.signal, e.syscall_nr) == (0, 25536, 15, 200)
    e = one(MEMFD, MemfdCreate)
    assert (e.result, e.flags, e.name) == (3, 1, "")
    e = one(SETSID, Setsid)
    assert (e.result, e.pid, e.ppid) == (19215, 99000003, 99000001)
    e = one(MOUNT, Mount)
    assert (e.target, e.path, e.source, e.fstype, e.flags) == (
        "/tmp/ebpfs-9o78ifyp/mnt",
        "/tmp/ebpfs-9o78ifyp/mnt",
        "",
        "",
        0,
    )
    e = one(UMOUNT2, Umount)
    assert (e.target, e.flags, e.syscall_nr) == ("/tmp/ebpfs-9o78ifyp/mnt", 0, 166)


def test_bpf_map_access_and_own_signals_are_filtered() -> None:
    bpf = [(1300, text.replace("syscall=91 ", "syscall=321 ")) if t == 1300 else (t, text) for t, text in FCHMOD]
    p = AuditProvider(arches=X86)
    # a0=3: BPF_MAP_DELETE_ELEM, as the eBPF path leaves it out
    assert replay(bpf, p) == [] and p.stats().kinds["bpf_call"].filtered == 1
    load = [(t, x.replace("a0=3 ", "a0=5 ", 1)) for t, x in bpf]
    assert isinstance(one(load, BpfCall), BpfCall)
    own = [(t, x.replace("opid=19214", "opid=99000001")) for t, x in KILL]
    p = AuditProvider(arches=X86)
    assert replay(own, p) == [] and p.stats().kinds["kill"].filtered == 1


def test_records_of_other_rules_and_kinds_not_asked_for() -> None:
    p = AuditProvider({"file_rename"}, arches=X86)
    assert replay(EXEC + OPEN_CREATE, p) == []
    assert [type(e) for e in replay(RENAME_REPLACING, p)] == [FileRename]
    st = p.stats()
    assert (st.delivered, st.filtered) == (1, 2)
    assert set(st.kinds) == {"file_rename"}


def test_exclusions_applied_to_recorded_events(tmp_path: Path) -> None:
    p = AuditProvider(arches=X86, exclusions=(ExcludeName("python3"),))
    p._excl = ap._Exclusions(p.exclusions)
    assert replay(OPEN_CREATE + RENAME_REPLACING, p) == []
    assert p.stats().excluded == 2
    # a rename is excluded only when both names are covered
    p = AuditProvider(arches=X86, exclusions=(ExcludePathPrefix("/tmp/ap/w2/sub"),))
    p._excl = ap._Exclusions(p.exclusions)
    assert [type(e) for e in replay(RENAME_INTO_SUB, p)] == [FileRename]
    p = AuditProvider(arches=X86, exclusions=(ExcludePathPrefix("/tmp/ap/w2"),))
    p._excl = ap._Exclusions(p.exclusions)
    assert replay(RENAME_INTO_SUB + OPEN_CREATE, p) == []
    assert p.stats().kinds["file_rename"].excluded == 1


def test_exclusions_changed_while_running_match_the_executable_by_identity(tmp_path: Path) -> None:
    """Rules given while the provider runs (a sensor's exclude() beside
    eBPF) apply from then on; an executable is its file, under any name."""
    exe = tmp_path / "tool"
    exe.write_bytes(b"x")
    os.link(exe, tmp_path / "other-name")

    def records(serial: int) -> list[tuple[int, str]]:
        named = [
            (t, x.replace('exe="/root/.pyenv/versions/3.11.7/bin/python3.11"', f'exe="{exe}"')) for t, x in OPEN_CREATE
        ]
        return [(t, x.replace(":2509)", f":{serial})")) for t, x in named]

    p = AuditProvider(arches=X86)
    assert [type(e) for e in replay(records(1), p)] == [FileCreate]
    p.set_exclusions([ExcludeExecutable(str(tmp_path / "other-name"))])
    assert replay(records(2), p) == [] and p.stats().excluded == 1
    p.set_exclusions([])
    assert [type(e) for e in replay(records(3), p)] == [FileCreate]


def test_the_providers_own_process_is_excluded_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    # the recorded events are of pid 99000001: the provider's, as far as this test goes
    monkeypatch.setattr(ap, "own_kernel_pid", lambda: 99000001)
    p = AuditProvider(arches=X86, exclusions=(ExcludeSelf(),))
    p._excl = ap._Exclusions(p.exclusions)
    assert replay(OPEN_CREATE + RENAME_REPLACING, p) == []
    assert p.stats().excluded == 2
    # another process's events are not
    monkeypatch.setattr(ap, "own_kernel_pid", lambda: 99000002)
    p = AuditProvider(arches=X86, exclusions=(ExcludeSelf(),))
    p._excl = ap._Exclusions(p.exclusions)
    assert [type(e) for e in replay(OPEN_CREATE + RENAME_REPLACING, p)] == [FileCreate, FileRename]


def serial_of(text: str, serial: int) -> str:
    return re.sub(r":\d+\)", f":{serial})", text, count=1)


def test_serial_gaps_and_events_without_their_end() -> None:
    p = AuditProvider(arches=X86)
    for serial in (10, 13, 12):
        replay([(t, serial_of(x, serial)) for t, x in SETSID], p)
    assert p.flush() == [] and p.stats().serial_gaps == 0
    p.flush(now=1e12)
    assert p.stats().serial_gaps == 1  # 11 never came
    # an event whose EOE never comes is delivered after waiting, counted
    cut = [(t, serial_of(x, 20)) for t, x in RENAME_REPLACING if t != ap.AUDIT_EOE]
    assert replay(cut, p) == []
    late = p.flush(now=1e12)
    assert [type(e) for e in late] == [FileRename] and late[0].replaced
    assert p.stats().incomplete == 1


def test_undecodable_records_are_counted() -> None:
    p = AuditProvider(arches=X86)
    assert p.feed(b"\x10\0") == []
    assert p.feed(datagram(1300, "audit(nonsense): arch=c000003e")) == []
    assert p.stats().undecodable == 2


# --- the provider's lifecycle, without the kernel ----------------------------------------------


def locked() -> AuditStatus:
    return AuditStatus(enabled=2, failure=1, pid=0, rate_limit=0, backlog_limit=8192, lost=0, backlog=0)


def test_locked_audit_is_refused_before_anything(tmp_path: Path) -> None:
    state = tmp_path / "run" / "audit.state"
    p = AuditProvider(state_path=str(state), read_status=locked)
    with pytest.raises(AuditLockedError, match=r"locked \(enabled=2.*reboot"):
        p.start()
    assert not state.parent.exists()
    assert p.mode == "" and p.rules() == []


def test_state_file_is_private_and_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "run" / "audit.state"
    first = ap._State(str(path))
    assert first.acquire() is None
    first.write({"pid": 1234, "enabled": 0, "receiver": True})
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    second = ap._State(str(path))
    with pytest.raises(EbpfSensorError, match=r"another process \(pid 1234\)"):
        second.acquire()
    # a process that dies holding it leaves its content; the next one reads it
    os.close(first.fd)  # type: ignore[arg-type]
    first.fd = None
    assert second.acquire() == {"pid": 1234, "enabled": 0, "receiver": True}
    second.release()
    assert path.read_bytes() == b""


# su's PAM records as the kernel sends them (the netlink form of test_audit_parse's log lines)
SU_AUTH_OK = (
    "audit(1795893548.950:3): pid=17424 uid=65534 auid=4294967295 ses=4294967295"
    ' msg=\'op=PAM:authentication grantors=pam_unix acct="ebpfslogin" exe="/usr/bin/su" hostname=?'
    " addr=? terminal=/dev/pts/0 res=success'"
)
SU_START_OK = (
    "audit(1795893548.954:6): pid=17424 uid=65534 auid=4294967295 ses=4294967295"
    " msg='op=PAM:session_open grantors=pam_env,pam_env,pam_mail,pam_limits,pam_permit,pam_unix"
    ' acct="ebpfslogin" exe="/usr/bin/su" hostname=? addr=? terminal=/dev/pts/0 res=success\''
)


def test_login_records_as_the_login_source_delivers_them() -> None:
    from ebpfsensor.events import UserLogin

    p = AuditProvider({"user_login", "file_open"}, arches=X86)
    assert p.feed(datagram(1100, SU_AUTH_OK)) == []  # a successful authentication is filtered
    (login,) = p.feed(datagram(1105, SU_START_OK))
    assert isinstance(login, UserLogin)
    assert (login.record_type, login.user, login.pid, login.uid, login.success) == (
        "USER_START",
        "ebpfslogin",
        17424,
        65534,
        True,
    )
    assert (login.op, login.terminal, login.audit_serial) == ("PAM:session_open", "/dev/pts/0", 6)
    st = p.stats().kinds["user_login"]
    assert (st.delivered, st.filtered) == (1, 1)
    # without the kind, login records are not delivered
    assert AuditProvider({"file_open"}, arches=X86).feed(datagram(1105, SU_START_OK)) == []

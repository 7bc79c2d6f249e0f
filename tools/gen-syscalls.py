#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generate python/ebpfsensor/data/syscalls.json: syscall number -> name, per architecture.

The numbers come from the kernel's UAPI headers as the C preprocessor sees
them, so aliases (arm64's __NR_fcntl -> __NR3264_fcntl) resolve as in C:

    x86:   gcc -E -dM, <asm/unistd_64.h>        (Debian linux-libc-dev)
    arm64: aarch64-linux-gnu-gcc -E -dM, <asm/unistd.h>  (linux-libc-dev-arm64-cross)

    python3 tools/gen-syscalls.py [--check]

--check compares with the committed file instead of writing it (exit 1 on a difference).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "python" / "ebpfsensor" / "data" / "syscalls.json"
SOURCES = {
    "x86": (["gcc", "-E", "-dM", "-"], "#include <asm/unistd_64.h>\n", "linux-libc-dev"),
    "arm64": (["aarch64-linux-gnu-gcc", "-E", "-dM", "-"], "#include <asm/unistd.h>\n", "linux-libc-dev-arm64-cross"),
}
# counts and range markers, not syscalls
_NOT_SYSCALLS = {"syscalls", "arch_specific_syscall"}
_DEFINE = re.compile(r"^#define (__NR3264_\w+|__NR_\w+) (.+)$")


def table(cmd: list[str], source: str) -> dict[int, str]:
    text = subprocess.run(cmd, input=source, capture_output=True, text=True, check=True).stdout
    macros = {m[1]: m[2].strip() for line in text.splitlines() if (m := _DEFINE.match(line))}

    def value(expr: str, depth: int = 0) -> int | None:
        expr = expr.strip("() ")
        if re.fullmatch(r"\d+", expr):
            return int(expr)
        if expr in macros and depth < 8:
            return value(macros[expr], depth + 1)
        return None

    out: dict[int, str] = {}
    for macro, expr in macros.items():
        name = macro.removeprefix("__NR_")
        if not macro.startswith("__NR_") or name in _NOT_SYSCALLS:
            continue
        nr = value(expr)
        if nr is not None:
            out.setdefault(nr, name)
    return dict(sorted(out.items()))


def package_version(name: str) -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def generate() -> str:
    data: dict[str, object] = {
        "generated_by": "tools/gen-syscalls.py",
        "headers": {arch: f"{pkg} {package_version(pkg)}" for arch, (_, _, pkg) in SOURCES.items()},
    }
    for arch, (cmd, source, _) in SOURCES.items():
        data[arch] = {str(nr): name for nr, name in table(cmd, source).items()}
    return json.dumps(data, indent=1, sort_keys=False) + "\n"


def main() -> int:
    text = generate()
    if "--check" in sys.argv[1:]:
        # the header versions may differ between machines; compare the tables
        same = {k: v for k, v in json.loads(text).items() if k != "headers"} == {
            k: v for k, v in json.loads(OUT.read_text()).items() if k != "headers"
        }
        print("syscalls.json is up to date" if same else "syscalls.json differs from the headers; regenerate it")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

# SPDX-License-Identifier: Apache-2.0
"""Regenerate the schema extracts in this directory from the published schemas.

Not run by the tests; README.md says where the inputs come from:

    python3 tests/data/schemas/extract.py ocsf OCSF_REPO COMPILED.json > tests/data/schemas/ocsf-1.8.0.json
    python3 tests/data/schemas/extract.py ecs ecs_flat.yml 9.4.0 > tests/data/schemas/ecs-9.4.0.json

OCSF: COMPILED.json is `python -m ocsf.compile --ignore-extension linux windows -- OCSF_REPO`
(the `ocsf-lib` package); the classes ebpfsensor maps to and every object they
reach are kept, each attribute reduced to what validation needs. Two things
the compiler gets wrong are corrected from the repository's own files, where
the nearest definition in the `extends` chain wins: `constraints` (it keeps
the base `_entity`'s), and an attribute's `profile` where a class or its
category sets `"profile": null` (system activities require `actor` and
`device` whatever the profiles).

ECS: every field of the flat reference with its type, whether it is an array,
whether it is required, and the allowed values of the categorization fields.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from typing import Any

OCSF_CLASSES = (
    "base_event",
    "file_activity",
    "kernel_extension_activity",
    "kernel_activity",
    "process_activity",
    "authentication",
    "network_activity",
    "application_error",
)


def _raw(repo: str) -> tuple[dict[str, Any], dict[str, Any]]:
    objects: dict[str, Any] = {}
    events: dict[str, Any] = {}
    for path in glob.glob(os.path.join(repo, "objects", "*.json")):
        with open(path) as f:
            d = json.load(f)
        objects[d["name"]] = d
    for path in glob.glob(os.path.join(repo, "events", "**", "*.json"), recursive=True):
        with open(path) as f:
            d = json.load(f)
        events[d["name"]] = d
    return objects, events


def _chain(raw: dict[str, Any], name: str) -> list[dict[str, Any]]:
    out = []
    while name in raw:
        out.append(raw[name])
        name = raw[name].get("extends")
    return out


def _attr(a: dict[str, Any]) -> dict[str, Any]:
    d: dict[str, Any] = {"type": a["type"], "requirement": a["requirement"]}
    if a.get("is_array"):
        d["is_array"] = True
    if a.get("profile"):
        d["profile"] = a["profile"]
    if a.get("sibling"):
        d["sibling"] = a["sibling"]
    if a.get("enum"):
        d["enum"] = {k: v.get("caption") for k, v in a["enum"].items()}
    if a.get("@deprecated"):
        d["deprecated"] = True
    return d


def _fix(raw: dict[str, Any], name: str, out: dict[str, Any]) -> None:
    chain = _chain(raw, name)
    for d in chain:
        if "constraints" in d:
            out["constraints"] = d["constraints"] or None
            break
    for attr, a in out["attributes"].items():
        for d in chain:
            r = d.get("attributes", {}).get(attr)
            if r is not None and "profile" in r:
                if r["profile"] is None:
                    a.pop("profile", None)
                break


def ocsf(repo: str, compiled_path: str) -> dict[str, Any]:
    with open(compiled_path) as f:
        s = json.load(f)
    raw_objects, raw_events = _raw(repo)
    classes: dict[str, Any] = {}
    todo: list[str] = []
    for name in OCSF_CLASSES:
        c = s["classes"][name]
        classes[name] = {
            "uid": c["uid"],
            "caption": c["caption"],
            "category": c.get("category"),
            "attributes": {k: _attr(a) for k, a in sorted(c["attributes"].items())},
        }
        _fix(raw_events, name, classes[name])
        todo += [a["type"] for a in c["attributes"].values() if a["type"] in s["objects"]]
    objects: dict[str, Any] = {}
    while todo:
        name = todo.pop()
        if name in objects:
            continue
        o = s["objects"][name]
        attributes = {k: _attr(a) for k, a in sorted(o["attributes"].items())}
        objects[name] = {"caption": o["caption"], "attributes": attributes}
        _fix(raw_objects, name, objects[name])
        todo += [a["type"] for a in o["attributes"].values() if a["type"] in s["objects"]]
    types = {
        k: {kk: v[kk] for kk in ("type", "regex", "max_len", "range", "values") if v.get(kk) is not None}
        for k, v in sorted(s["types"].items())
    }
    categories = {k: {"uid": v["uid"], "caption": v["caption"]} for k, v in sorted(s["categories"].items())}
    return {
        "version": s["version"],
        "profiles": sorted(s["profiles"]),
        "categories": categories,
        "classes": classes,
        "objects": dict(sorted(objects.items())),
        "types": types,
    }


def ecs(flat_path: str, version: str) -> dict[str, Any]:
    import yaml

    with open(flat_path) as f:
        flat = yaml.safe_load(f)
    fields: dict[str, Any] = {}
    for name, f in sorted(flat.items()):
        d: dict[str, Any] = {"type": f["type"]}
        if "array" in (f.get("normalize") or []):
            d["array"] = True
        if f.get("required"):
            d["required"] = True
        if f.get("allowed_values"):
            d["allowed_values"] = {v["name"]: v.get("expected_event_types") for v in f["allowed_values"]}
        fields[name] = d
    return {"version": version, "fields": fields}


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "ocsf":
        data = ocsf(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "ecs":
        data = ecs(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    json.dump(data, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

# SPDX-License-Identifier: Apache-2.0
"""The managed configuration file: schema, error messages, safety checks, atomic writes."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from ebpfsensor.config import Config
from ebpfsensor.errors import ConfigError
from ebpfsensor.exclusions import ExcludeName, ExcludePid
from ebpfsensor.managed_config import (
    DEFAULT_PATH,
    MAX_BYTES,
    ConfigWatcher,
    ManagedConfig,
    ManagedConfigError,
    load_managed_config,
    write_exclusions,
    write_feature,
)


def write(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    d = tmp_path / "etc"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    return d / "config.json"


def error(path: str) -> ManagedConfigError:
    with pytest.raises(ManagedConfigError) as info:
        load_managed_config(path)
    assert isinstance(info.value, ConfigError)
    assert path in str(info.value)
    return info.value


def test_default_path() -> None:
    assert DEFAULT_PATH == "/etc/ebpfsensor/config.json"


def test_missing_file_is_defaults(cfg: Path) -> None:
    got = load_managed_config(str(cfg))
    assert got == ManagedConfig(ebpf_enabled=True, fail_closed=False, sensor=Config(), path=str(cfg))
    missing_dir = str(cfg.parent / "nope" / "config.json")
    assert load_managed_config(missing_dir).ebpf_enabled


def test_reference_agent_shape(cfg: Path) -> None:
    path = write(cfg, '{"features": {"ebpfSupplementaryEventProvider": "disabled"}}')
    got = load_managed_config(path)
    assert (got.ebpf_enabled, got.fail_closed, got.sensor, got.path) == (False, False, Config(), path)
    write(cfg, '{"features": {"ebpfSupplementaryEventProvider": "enabled"}}')
    assert load_managed_config(path).ebpf_enabled


def test_full_file(cfg: Path) -> None:
    path = write(
        cfg,
        json.dumps(
            {
                "features": {"ebpfSupplementaryEventProvider": "enabled"},
                "provider": {"failMode": "fail-closed"},
                "sensor": {"kinds": ["process_exec", "process_exit"], "report_threads": True, "max_latency_ms": 50},
            }
        ),
    )
    got = load_managed_config(path)
    assert got.fail_closed and got.ebpf_enabled
    assert got.sensor == Config(
        kinds=frozenset({"process_exec", "process_exit"}), report_threads=True, max_latency_ms=50
    )
    write(cfg, '{"provider": {"failMode": "degrade"}, "sensor": {}}')
    assert not load_managed_config(path).fail_closed


def test_every_config_field_is_accepted(cfg: Path) -> None:
    defaults = Config()
    doc = {"sensor": {f: getattr(defaults, f) for f in Config.__struct_fields__}}
    doc["sensor"] = {k: sorted(v) if isinstance(v, frozenset) else v for k, v in doc["sensor"].items()}
    assert load_managed_config(write(cfg, json.dumps(doc))).sensor == defaults


def test_malformed_json_names_line_and_column(cfg: Path) -> None:
    path = write(cfg, '{\n  "features": {\n    "ebpfSupplementaryEventProvider": "enabled",\n  }\n}\n')
    err = error(path)
    assert "malformed JSON at line 4, column 3" in str(err)
    assert "json.tool" in err.fix


def test_duplicate_key(cfg: Path) -> None:
    err = error(write(cfg, '{"provider": {"failMode": "degrade", "failMode": "fail-closed"}}'))
    assert err.key == "failMode" and "duplicate key" in str(err)


def test_unknown_keys(cfg: Path) -> None:
    err = error(write(cfg, '{"featurs": {}}'))
    assert err.key == "featurs"
    assert "unknown key" in str(err) and "features, provider, sensor" in str(err)
    err = error(write(cfg, '{"features": {"ebpfSupplementaryEventProvder": "enabled"}}'))
    assert err.key == "features.ebpfSupplementaryEventProvder"
    assert "ebpfSupplementaryEventProvider" in err.fix
    err = error(write(cfg, '{"sensor": {"ring_size": 1}}'))
    assert err.key == "sensor.ring_size" and "lifecycle_ring_bytes" in err.fix


def test_wrong_types(cfg: Path) -> None:
    err = error(write(cfg, '{"features": {"ebpfSupplementaryEventProvider": true}}'))
    assert err.key == "features.ebpfSupplementaryEventProvider"
    assert err.problem == "expected str, got bool" and '"enabled" or "disabled"' in err.fix
    err = error(write(cfg, '{"sensor": {"max_latency_ms": "50"}}'))
    assert (err.key, err.problem) == ("sensor.max_latency_ms", "expected int, got str")
    err = error(write(cfg, '{"features": "enabled"}'))
    assert (err.key, err.problem) == ("features", "expected object, got str")
    err = error(write(cfg, "[]"))
    assert err.key == "(top level)"
    err = error(write(cfg, '{"sensor": {"kinds": [1]}}'))
    assert err.key == "sensor.kinds[0]"


def test_invalid_values(cfg: Path) -> None:
    err = error(write(cfg, '{"features": {"ebpfSupplementaryEventProvider": "on"}}'))
    assert str(err) == (
        f"managed config {cfg}: features.ebpfSupplementaryEventProvider: invalid value 'on'; "
        'use "enabled" or "disabled"'
    )
    err = error(write(cfg, '{"provider": {"failMode": "closed"}}'))
    assert err.key == "provider.failMode" and '"degrade" or "fail-closed"' in err.fix
    err = error(write(cfg, '{"sensor": {"kinds": ["process_exce"]}}'))
    assert err.key == "sensor.kinds" and "process_exce" in err.fix and "process_exec" in err.fix
    err = error(write(cfg, '{"sensor": {"max_latency_ms": 0}}'))
    assert err.key == "sensor.max_latency_ms" and "1..60000" in err.fix
    err = error(write(cfg, '{"sensor": {"max_latency_ms": NaN}}'))
    assert "NaN is not valid JSON" in str(err)


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_group_or_other_writable_file_is_refused(cfg: Path, mode: int) -> None:
    path = write(cfg, "{}", mode)
    err = error(path)
    assert "writable by group or others" in err.problem
    assert err.fix == f"run `chmod go-w {path}`"


def test_readable_by_others_is_fine(cfg: Path) -> None:
    assert load_managed_config(write(cfg, "{}", 0o644)).ebpf_enabled


def test_writable_directory_is_refused(cfg: Path) -> None:
    path = write(cfg, "{}")
    os.chmod(cfg.parent, 0o777)
    err = error(path)
    assert "its directory" in err.problem
    assert err.fix == f"run `chmod go-w {cfg.parent}`"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_foreign_owner_is_refused(cfg: Path) -> None:
    path = write(cfg, "{}")
    os.chown(path, 65534, 65534)
    err = error(path)
    assert "owned by uid 65534" in err.problem and "chown root" in err.fix


def test_not_a_regular_file(cfg: Path) -> None:
    cfg.mkdir()
    err = error(str(cfg))
    assert "not a regular file" in err.problem


def test_write_feature_keeps_other_keys(cfg: Path) -> None:
    path = write(
        cfg,
        '{"provider": {"failMode": "fail-closed"}, "features": {}, "sensor": {"max_latency_ms": 7}}',
        0o644,
    )
    write_feature(path, False)
    doc = json.loads(cfg.read_text())
    assert doc == {
        "provider": {"failMode": "fail-closed"},
        "features": {"ebpfSupplementaryEventProvider": "disabled"},
        "sensor": {"max_latency_ms": 7},
    }
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    write_feature(path, True)
    assert json.loads(cfg.read_text())["features"]["ebpfSupplementaryEventProvider"] == "enabled"
    assert sorted(os.listdir(cfg.parent)) == ["config.json"]  # no temporary file left


def test_write_feature_creates_file_and_directory(tmp_path: Path) -> None:
    path = str(tmp_path / "new" / "config.json")
    write_feature(path, False)
    got = load_managed_config(path)
    assert not got.ebpf_enabled and not got.fail_closed
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_write_feature_is_atomic(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(cfg, '{"features": {"ebpfSupplementaryEventProvider": "enabled"}}')

    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        write_feature(path, False)
    assert load_managed_config(path).ebpf_enabled
    assert sorted(os.listdir(cfg.parent)) == ["config.json"]


def test_write_feature_refuses_unsafe_or_malformed(cfg: Path) -> None:
    path = write(cfg, "{}", 0o666)
    with pytest.raises(ManagedConfigError, match="chmod go-w"):
        write_feature(path, False)
    write(cfg, "{not json", 0o600)
    with pytest.raises(ManagedConfigError, match="malformed JSON"):
        write_feature(path, False)
    assert cfg.read_text() == "{not json"
    write(cfg, '{"features": []}', 0o600)
    with pytest.raises(ManagedConfigError, match="features: expected object"):
        write_feature(path, False)


def test_watcher_keeps_last_valid(cfg: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(cfg, '{"features": {"ebpfSupplementaryEventProvider": "disabled"}}')
    w = ConfigWatcher(path)
    assert w.current.ebpf_enabled is False and w.last_error is None
    write(cfg, '{"features": {"ebpfSupplementaryEventProvider": "maybe"}}')
    with caplog.at_level(logging.WARNING, logger="ebpfsensor"), pytest.raises(ConfigError, match="maybe"):
        w.reload()
    assert "keeping the previous configuration" in caplog.text
    assert w.current.ebpf_enabled is False
    assert isinstance(w.last_error, ManagedConfigError)
    write(cfg, '{"features": {"ebpfSupplementaryEventProvider": "enabled"}}')
    assert w.reload().ebpf_enabled
    assert w.current.ebpf_enabled and w.last_error is None


def test_watcher_with_invalid_initial_file(cfg: Path) -> None:
    path = write(cfg, "{", 0o600)
    w = ConfigWatcher(path)
    assert w.current == ManagedConfig(path=path)
    assert w.last_error is not None and "malformed JSON" in str(w.last_error)


def test_watcher_reload_if_changed(cfg: Path) -> None:
    path = str(cfg)
    w = ConfigWatcher(path)
    assert w.current.ebpf_enabled and not w.reload_if_changed()
    write_feature(path, False)
    assert w.reload_if_changed() and not w.current.ebpf_enabled
    assert not w.reload_if_changed()
    os.chmod(path, 0o666)
    assert not w.reload_if_changed()
    assert not w.current.ebpf_enabled and w.last_error is not None
    assert "chmod go-w" in str(w.last_error)
    os.unlink(path)
    assert w.reload_if_changed() and w.current.ebpf_enabled and w.last_error is None


def test_write_refuses_to_write_an_invalid_file(cfg: Path) -> None:
    text = '{"features": {"ebpfSupplementaryEventProvder": "enabled"}}'
    path = write(cfg, text, 0o600)
    with pytest.raises(ManagedConfigError, match=r"features\.ebpfSupplementaryEventProvder: unknown key"):
        write_feature(path, True)
    assert cfg.read_text() == text


# --- hostile or careless files ------------------------------------------------------

DEEP = '{"sensor": {"kinds": ' + "[" * 100_000 + "]" * 100_000 + "}}"
LONG_NUMBER = '{"sensor": {"max_latency_ms": ' + "1" * 5000 + "}}"


def test_deeply_nested_json(cfg: Path) -> None:
    err = error(write(cfg, DEEP))
    assert err.problem == "JSON nested too deeply to parse" and "few levels deep" in err.fix


def test_number_too_long_to_parse(cfg: Path) -> None:
    err = error(write(cfg, LONG_NUMBER))
    assert err.problem == "a number with too many digits to parse" and "range" in err.fix


def test_watcher_polls_never_raise_and_log_once_per_change(cfg: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(cfg, '{"features": {"ebpfSupplementaryEventProvider": "disabled"}}')
    w = ConfigWatcher(path)
    caplog.set_level(logging.WARNING, logger="ebpfsensor")
    for text, problem in [(DEEP, "nested too deeply"), (LONG_NUMBER, "too many digits"), ("{", "malformed JSON")]:
        caplog.clear()
        write(cfg, text)
        for _ in range(3):
            assert w.reload_if_changed() is False
        assert w.current.ebpf_enabled is False  # the last good configuration stays in force
        assert isinstance(w.last_error, ManagedConfigError) and problem in w.last_error.problem
        assert [r.getMessage().count(problem) for r in caplog.records] == [1]
        # an explicit reload of the same file reports the error, and does not log it again
        with pytest.raises(ManagedConfigError, match=problem):
            w.reload()
        assert len(caplog.records) == 1
    write(cfg, "{}")
    assert w.reload_if_changed() and w.current.ebpf_enabled and w.last_error is None


def test_size_cap(cfg: Path) -> None:
    path = write(cfg, "{}".ljust(MAX_BYTES))
    assert load_managed_config(path).ebpf_enabled
    write(cfg, "{}".ljust(MAX_BYTES + 1))
    err = error(path)
    assert err.problem == f"{MAX_BYTES + 1} bytes, more than the {MAX_BYTES} a configuration file may have"
    assert MAX_BYTES == 1 << 20


def test_size_cap_is_checked_before_reading(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(cfg, "")
    os.truncate(path, 1 << 40)  # sparse: a terabyte of NULs, on no disk

    def no_read(*_args: object) -> bytes:
        raise AssertionError("read an oversized file")

    monkeypatch.setattr(os, "read", no_read)
    assert f"{1 << 40} bytes, more than the {MAX_BYTES}" in error(path).problem


def test_symlink_is_refused(cfg: Path) -> None:
    real = write(cfg.parent / "real.json", '{"provider": {"failMode": "fail-closed"}}')
    cfg.symlink_to(real)
    err = error(str(cfg))
    assert err.problem == f"is a symlink (to {real}); the sensor follows no symlink to its configuration"
    assert err.fix == "point the sensor at the real file (--config, or the path argument)"
    assert load_managed_config(real).fail_closed
    # a dangling link is refused too, not read as "no file, defaults"
    cfg.unlink()
    cfg.symlink_to(cfg.parent / "missing.json")
    assert "is a symlink" in error(str(cfg)).problem


def test_rewrite_refuses_symlink(cfg: Path) -> None:
    text = '{"provider": {"failMode": "fail-closed"}}'
    real = write(cfg.parent / "real.json", text)
    cfg.symlink_to(real)
    with pytest.raises(ManagedConfigError, match="is a symlink") as info:
        write_feature(str(cfg), False)
    assert "--config" in info.value.fix
    with pytest.raises(ManagedConfigError, match="is a symlink"):
        write_exclusions(str(cfg), [ExcludeName("noisy")])
    assert cfg.is_symlink() and os.readlink(cfg) == real
    assert Path(real).read_text() == text
    assert sorted(os.listdir(cfg.parent)) == ["config.json", "real.json"]


def test_rewrite_keeps_a_stricter_mode(cfg: Path) -> None:
    path = write(cfg, "{}", 0o400)
    write_feature(path, False)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o400
    assert not load_managed_config(path).ebpf_enabled


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775])
def test_rewrite_refuses_an_unsafe_directory_without_a_file(cfg: Path, mode: int) -> None:
    os.chmod(cfg.parent, mode)
    with pytest.raises(ManagedConfigError, match="its directory") as info:
        write_feature(str(cfg), False)
    assert info.value.fix == f"run `chmod go-w {cfg.parent}`"
    assert os.listdir(cfg.parent) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the directory to another uid")
def test_rewrite_refuses_a_directory_another_user_owns(cfg: Path) -> None:
    os.chown(cfg.parent, 65534, 65534)
    with pytest.raises(ManagedConfigError, match="owned by uid 65534"):
        write_feature(str(cfg), False)
    assert os.listdir(cfg.parent) == []


def test_pid_rules_are_not_written(cfg: Path) -> None:
    text = '{"sensor": {"exclusions": [{"type": "name", "name": "noisy"}]}}'
    path = write(cfg, text)
    with pytest.raises(ManagedConfigError) as info:
        write_exclusions(path, [ExcludeName("noisy"), ExcludePid(os.getpid())])
    err = info.value
    assert err.key == "sensor.exclusions[1]"
    assert "a pid names one process of one boot" in err.problem and "unrelated process" in err.problem
    assert "Sensor.exclude(ExcludePid(...))" in err.fix and "--executable" in err.fix
    assert cfg.read_text() == text
    os.unlink(path)
    with pytest.raises(ManagedConfigError, match="pid names one process"):
        write_exclusions(path, [ExcludePid(os.getpid())])
    assert not cfg.exists()


def test_pid_rules_are_not_read(cfg: Path) -> None:
    with pytest.raises(ManagedConfigError) as written:
        write_exclusions(str(cfg), [ExcludePid(1)])
    text = '{"sensor": {"exclusions": [{"type": "pid", "pid": 1}]}}'
    err = error(write(cfg, text))
    assert (err.key, err.problem, err.fix) == ("sensor.exclusions[0]", written.value.problem, written.value.fix)
    # nor kept by a rewrite of another key
    with pytest.raises(ManagedConfigError, match="pid names one process"):
        write_feature(str(cfg), False)
    assert cfg.read_text() == text


def test_watcher_sees_a_symlink_replaced_by_the_file(cfg: Path) -> None:
    real = cfg.parent / "real.json"
    write(real, '{"features": {"ebpfSupplementaryEventProvider": "disabled"}}')
    cfg.symlink_to(real)
    w = ConfigWatcher(str(cfg))
    assert w.last_error is not None and "symlink" in str(w.last_error)
    os.rename(real, cfg)  # the same inode, size and mtime the symlink led to
    assert w.reload_if_changed() and not w.current.ebpf_enabled and w.last_error is None


def test_watcher_sees_its_directory_fixed(cfg: Path) -> None:
    path = write(cfg, '{"features": {"ebpfSupplementaryEventProvider": "disabled"}}')
    os.chmod(cfg.parent, 0o777)
    w = ConfigWatcher(path)
    assert w.last_error is not None and w.current.ebpf_enabled
    assert not w.reload_if_changed()
    os.chmod(cfg.parent, 0o755)
    assert w.reload_if_changed() and not w.current.ebpf_enabled and w.last_error is None

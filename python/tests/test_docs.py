"""The generated option reference and the packaging metadata."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from jupyterhub.spawner import Spawner

from sdspawner import SystemdSpawner
from sdspawner.docs import INHERITED_OPTIONS, main, own_options, render_markdown

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

# The upstream jupyterhub-systemdspawner options, which existing configs use.
UPSTREAM_OPTIONS = {
    "user_workingdir",
    "username_template",
    "default_shell",
    "extra_paths",
    "unit_name_template",
    "unit_extra_properties",
    "isolate_tmp",
    "isolate_devices",
    "disable_user_sudo",
    "readonly_paths",
    "readwrite_paths",
    "dynamic_users",
    "slice",
}


def test_every_option_has_help() -> None:
    traits = SystemdSpawner.class_own_traits(config=True)

    assert traits, "SystemdSpawner defines no configurable traits"
    for name, trait in traits.items():
        assert trait.help.strip(), f"{name} has no help text"


def test_upstream_options_configurable() -> None:
    traits = SystemdSpawner.class_own_traits(config=True)

    assert set(traits) >= UPSTREAM_OPTIONS


def test_limits_inherited_not_redefined() -> None:
    own = SystemdSpawner.class_own_traits()

    assert "mem_limit" not in own
    assert "cpu_limit" not in own
    assert SystemdSpawner.class_traits()["mem_limit"] is Spawner.class_traits()["mem_limit"]


def test_reference_lists_every_option() -> None:
    text = render_markdown()

    for name in SystemdSpawner.class_own_traits(config=True):
        assert f"| `{name}` |" in text, name
    for name in INHERITED_OPTIONS:
        assert f"| `{name}` |" in text, name


def test_reference_rows_are_single_lines() -> None:
    for row in own_options():
        assert "\n" not in row.help, row.name
        assert row.help, row.name


def test_reference_independent_of_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELL", "/bin/first-shell")
    first = render_markdown()
    monkeypatch.setenv("SHELL", "/bin/second-shell")

    assert render_markdown() == first
    assert "first-shell" not in first


def test_main_writes_markdown() -> None:
    out = io.StringIO()

    main(out)

    assert out.getvalue().startswith("# SystemdSpawner options\n")


def test_inherited_options_exist() -> None:
    traits = SystemdSpawner.class_traits(config=True)

    for name in INHERITED_OPTIONS:
        assert name in traits, name


def test_entry_point_names_spawner() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads(PYPROJECT.read_text())["project"]

    entry_points = project["entry-points"]["jupyterhub.spawners"]
    assert entry_points == {"sdspawner": "sdspawner:SystemdSpawner"}
    assert project["version"] == "0.1.0"

"""The generated option reference, docs/options.md, and the packaging metadata."""

from __future__ import annotations

import ast
import difflib
import io
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import make_spawner
from jupyterhub.spawner import Spawner
from traitlets import Unicode

from sdspawner import SystemdSpawner
from sdspawner.docs import (
    DEFAULT_ALLOWED_PROPERTIES,
    INHERITED_OPTIONS,
    NEVER_ALLOWED_PROPERTIES,
    REGENERATE_COMMAND,
    inherited_options,
    main,
    own_options,
    render_markdown,
)

PYTHON_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PYTHON_DIR.parent
PYPROJECT = PYTHON_DIR / "pyproject.toml"
OPTIONS_DOC = REPO_DIR / "docs" / "options.md"
PROPERTIES_GO = REPO_DIR / "internal" / "policy" / "properties.go"

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

# Inherited options whose default differs between JupyterHub versions, so the reference
# describes it in words.
VERSION_DEPENDENT_DEFAULTS = {"env_keep"}


def test_options_doc_up_to_date() -> None:
    assert OPTIONS_DOC.is_file(), f"{OPTIONS_DOC} is missing; run `{REGENERATE_COMMAND}`"
    committed = OPTIONS_DOC.read_text(encoding="utf-8")
    generated = render_markdown()

    if committed != generated:
        diff = difflib.unified_diff(
            committed.splitlines(),
            generated.splitlines(),
            "docs/options.md (committed)",
            "docs/options.md (generated)",
            lineterm="",
        )
        excerpt = "\n".join(list(diff)[:40])
        pytest.fail(
            f"docs/options.md is out of date; run `{REGENERATE_COMMAND}` and commit the"
            f" result. First differences:\n{excerpt}"
        )


def test_every_option_has_help() -> None:
    traits = SystemdSpawner.class_own_traits(config=True)

    assert traits, "SystemdSpawner defines no configurable traits"
    for name, trait in traits.items():
        assert trait.help.strip(), f"{name} has no help text"


def test_every_option_has_example() -> None:
    traits = SystemdSpawner.class_own_traits(config=True)

    for name, trait in traits.items():
        assert trait.metadata.get("example"), f"{name} has no example metadata"


def test_option_without_example_rejected() -> None:
    class UndocumentedSpawner(SystemdSpawner):
        undocumented = Unicode("", help="An option without an example.").tag(config=True)

    with pytest.raises(ValueError, match="undocumented has no example metadata"):
        own_options(UndocumentedSpawner)


@pytest.mark.parametrize("option", own_options() + inherited_options(), ids=lambda o: o.name)
def test_example_valid_for_trait(option: Any, short_tmp: Path) -> None:
    prefix = f"c.SystemdSpawner.{option.name} = "
    assert option.example.startswith(prefix), option.example
    value = ast.literal_eval(option.example[len(prefix) :])
    spawner = make_spawner(str(short_tmp / "unused.sock"))

    # The trait raises TraitError for a value it does not accept.
    setattr(spawner, option.name, value)


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
        assert f"### `{name}`\n" in text, name
    for name in INHERITED_OPTIONS:
        assert f"### `{name}`\n" in text, name


def test_reference_has_default_and_example() -> None:
    text = render_markdown()

    for option in own_options() + inherited_options():
        assert f"- Default: {option.default}\n" in text, option.name
        assert f"- Example: `{option.example}`\n" in text, option.name


def test_reference_names_regenerate_command() -> None:
    assert REGENERATE_COMMAND in render_markdown()


def test_reference_independent_of_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELL", "/bin/first-shell")
    first = render_markdown()
    monkeypatch.setenv("SHELL", "/bin/second-shell")

    assert render_markdown() == first
    assert "first-shell" not in first


def test_main_writes_markdown() -> None:
    out = io.StringIO()

    main([], out)

    assert out.getvalue() == render_markdown()
    assert out.getvalue().startswith("# SystemdSpawner options\n")


def test_main_output_replaces_file(tmp_path: Path) -> None:
    target = tmp_path / "options.md"
    target.write_text("stale\n")

    main(["--output", str(target)])

    assert target.read_text(encoding="utf-8") == render_markdown()
    assert [path.name for path in tmp_path.iterdir()] == ["options.md"]


def test_inherited_options_exist() -> None:
    traits = SystemdSpawner.class_traits(config=True)

    for name in INHERITED_OPTIONS:
        assert name in traits, name


def test_inherited_defaults_match_jupyterhub() -> None:
    traits = SystemdSpawner.class_traits(config=True)

    for name, option in INHERITED_OPTIONS.items():
        if name in VERSION_DEPENDENT_DEFAULTS:
            continue
        documented = ast.literal_eval(option.default.strip("`"))
        assert documented == traits[name].default(), name


def _go_block(pattern: str) -> str:
    source = PROPERTIES_GO.read_text(encoding="utf-8")
    match = re.search(pattern, source, re.DOTALL)
    assert match, f"pattern {pattern!r} not found in {PROPERTIES_GO}; update this test"
    return match.group(1)


def test_allowed_properties_match_daemon() -> None:
    block = _go_block(r"var DefaultAllowedProperties = \[\]string\{(.*?)\n\}")
    in_go = re.findall(r'"([^"]+)"', block)

    assert list(DEFAULT_ALLOWED_PROPERTIES) == in_go, (
        "DEFAULT_ALLOWED_PROPERTIES in sdspawner/docs.py differs from"
        " DefaultAllowedProperties in internal/policy/properties.go; copy the Go list and"
        f" run `{REGENERATE_COMMAND}`"
    )


def test_never_allowed_properties_match_daemon() -> None:
    block = _go_block(r"var neverAllowed = map\[string\]string\{(.*?)\n\}")
    in_go = re.findall(r'^\s*"([^"]+)":', block, re.MULTILINE)

    assert sorted(NEVER_ALLOWED_PROPERTIES, key=str.lower) == sorted(in_go, key=str.lower), (
        "NEVER_ALLOWED_PROPERTIES in sdspawner/docs.py differs from neverAllowed in"
        f" internal/policy/properties.go; copy the Go names and run `{REGENERATE_COMMAND}`"
    )


def test_entry_point_names_spawner() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads(PYPROJECT.read_text())["project"]

    entry_points = project["entry-points"]["jupyterhub.spawners"]
    assert entry_points == {"sdspawner": "sdspawner:SystemdSpawner"}
    assert project["version"] == "0.1.0"

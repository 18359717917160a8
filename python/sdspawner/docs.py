"""Print the configuration reference of SystemdSpawner as Markdown.

Run `python -m sdspawner.docs > options.md`. The text comes from the traits' help
strings, so the reference changes together with the code.
"""

from __future__ import annotations

import sys
import textwrap
from typing import NamedTuple, TextIO

from traitlets import TraitType

from .spawner import SystemdSpawner

# Options inherited from jupyterhub.spawner.Spawner whose effect SystemdSpawner defines.
# JupyterHub's own help for them describes the base class, so each gets a note here.
INHERITED_OPTIONS = {
    "cmd": "The server's command, followed by `args`. The daemon looks up the first"
    " element on the server's `PATH` unless it is an absolute path.",
    "args": "Arguments appended to `cmd`.",
    "ip": "Address the server listens on. The hub connects to it, or to 127.0.0.1"
    " when it is empty.",
    "port": "Port the server listens on. With 0, the spawner picks a free port on the"
    " hub's machine for each start.",
    "mem_limit": "Memory limit in bytes, with suffixes K, M, G or T. The daemon sets"
    " the unit's `MemoryMax=` and the `MEM_LIMIT` variable. `None` sets no limit.",
    "cpu_limit": "CPUs of quota, so 0.5 is half of one CPU and 2 is two CPUs. The"
    " daemon sets the unit's CPU quota and the `CPU_LIMIT` variable. `None` sets no"
    " quota.",
    "environment": "More environment variables of the server. Callables are called"
    " with the spawner, and every value is sent as a string.",
    "env_keep": "Environment variables of the hub process that the server inherits.",
}

_TYPE_NAMES = {
    "Unicode": "str",
    "Bool": "bool",
    "Float": "float",
    "Int": "int",
    "List": "list",
    "Dict": "dict",
    "Command": "list of str",
    "ByteSpecification": "int (bytes)",
}


class OptionDoc(NamedTuple):
    """One row of the reference table."""

    name: str
    type: str
    default: str
    help: str


def _type_text(trait: TraitType) -> str:
    kind = type(trait).__name__
    text = _TYPE_NAMES.get(kind, kind)
    item_trait = getattr(trait, "_trait", None)
    if kind == "List" and item_trait is not None:
        text = f"list of {_TYPE_NAMES.get(type(item_trait).__name__, 'values')}"
    if trait.allow_none:
        text += " or None"
    return text


def _default_text(cls: type[SystemdSpawner], name: str, trait: TraitType) -> str:
    override = trait.metadata.get("default_doc")
    if override:
        return str(override)
    if name in cls._trait_default_generators:
        # A @default method computes the value when the hub runs, so the value seen
        # here would only describe the machine that generated the docs.
        raise ValueError(
            f"trait {name} has a computed default but no default_doc metadata to describe it"
        )
    return f"`{trait.default()!r}`"


def _help_text(text: str) -> str:
    """Return help text as one table cell: paragraphs joined by <br><br>."""
    paragraphs = textwrap.dedent(text).strip().split("\n\n")
    joined = "<br><br>".join(" ".join(p.split()) for p in paragraphs)
    return joined.replace("|", "\\|")


def own_options(cls: type[SystemdSpawner] = SystemdSpawner) -> list[OptionDoc]:
    """Collect the configurable traits that `cls` defines itself, sorted by name."""
    traits = cls.class_own_traits(config=True)
    return [
        OptionDoc(name, _type_text(trait), _default_text(cls, name, trait), _help_text(trait.help))
        for name, trait in sorted(traits.items())
    ]


def inherited_options(cls: type[SystemdSpawner] = SystemdSpawner) -> list[OptionDoc]:
    """Collect the inherited Spawner traits listed in INHERITED_OPTIONS."""
    traits = cls.class_traits(config=True)
    return [
        OptionDoc(name, _type_text(traits[name]), f"`{traits[name].default()!r}`", note)
        for name, note in INHERITED_OPTIONS.items()
    ]


def _table(rows: list[OptionDoc]) -> list[str]:
    lines = ["| option | type | default | description |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| `{row.name}` | {row.type} | {row.default} | {row.help} |")
    return lines


def render_markdown() -> str:
    """Render the reference of SystemdSpawner's options as a Markdown document."""
    lines = [
        "# SystemdSpawner options",
        "",
        "Set them in `jupyterhub_config.py` as `c.SystemdSpawner.<option>`, after",
        '`c.JupyterHub.spawner_class = "sdspawner"`.',
        "",
        *_table(own_options()),
        "",
        "## Inherited JupyterHub Spawner options",
        "",
        "Set these as `c.Spawner.<option>` or `c.SystemdSpawner.<option>`. SystemdSpawner",
        "uses them as follows.",
        "",
        *_table(inherited_options()),
        "",
    ]
    return "\n".join(lines)


def main(out: TextIO = sys.stdout) -> None:
    """Write the Markdown reference to `out`."""
    out.write(render_markdown())


if __name__ == "__main__":
    main()

"""Generate docs/options.md, the configuration reference of SystemdSpawner.

Run `cd python && python3 -m sdspawner.docs --output ../docs/options.md`, or leave out
`--output` to print the page. The text comes from the traits' help strings and their
`example`, `default_doc` and `type_doc` metadata, and from the tables in this module.
tests/test_docs.py fails when the committed page differs from the output.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import NamedTuple, TextIO

from traitlets import TraitType

from .spawner import SystemdSpawner

REGENERATE_COMMAND = "cd python && python3 -m sdspawner.docs --output ../docs/options.md"

# Width at which help paragraphs are wrapped, so that a changed sentence changes few lines.
_WRAP_WIDTH = 88


class InheritedOption(NamedTuple):
    """The documentation of an option that SystemdSpawner inherits from JupyterHub."""

    type: str
    default: str
    example: str
    help: str


# Options inherited from jupyterhub.spawner.Spawner whose effect SystemdSpawner defines.
# JupyterHub's own help for them describes the base class, so each gets a text here. The
# types and defaults are written out, because some differ between JupyterHub versions and
# the page must not change with the JupyterHub that generates it.
INHERITED_OPTIONS: dict[str, InheritedOption] = {
    "cmd": InheritedOption(
        "list of str",
        "`['jupyterhub-singleuser']`",
        '["/opt/jupyterhub/bin/jupyterhub-singleuser"]',
        "The server's command, followed by `args`. The daemon replaces {USERNAME},"
        " {USERID} and {SERVERNAME} in every element of `cmd` and `args`, as in path"
        " templates but with no checks on the result. It looks up the first element on"
        " the server's `PATH` (see `extra_paths`) unless it is an absolute path, rejects"
        " a relative path that contains `/`, and rejects the start when the file is"
        " missing or not executable. Unless `dynamic_users` is set, it also rejects the"
        " start when the server's unix user can write to the command file or to any"
        " directory above it, because that user could then replace the command. A"
        " directory with the sticky bit, such as `/tmp`, does not count.",
    ),
    "args": InheritedOption(
        "list of str",
        "`[]`",
        '["--ServerApp.default_url=/lab"]',
        "Arguments appended to `cmd`, with the same template expansion.",
    ),
    "ip": InheritedOption(
        "str",
        "`'127.0.0.1'`",
        '"127.0.0.1"',
        "Address the server listens on. The hub connects to it, or to 127.0.0.1 when it is empty.",
    ),
    "port": InheritedOption(
        "int",
        "`0`",
        "0",
        "Port the server listens on. With 0, the spawner picks a free port on the hub's"
        " machine for each start. Any other value is used for every start of every"
        " server, so it only suits a hub with one server at a time.",
    ),
    "mem_limit": InheritedOption(
        "int (bytes) or None",
        "`None`",
        '"2G"',
        "Maximum memory of each server in bytes, as an integer or as a string with the"
        " suffix K, M, G or T, which are powers of 1024, so `'1.5G'` is 1610612736"
        " bytes. The daemon sets the unit's `MemoryMax=` and the `MEM_LIMIT`"
        " environment variable to the number of bytes. Values below 1M (1048576"
        " bytes), including 0, are rejected, and `None` sets no limit. The daemon also"
        " rejects a value above `limits.max_mem_limit` when its configuration sets that"
        " cap.\n\n"
        "When the server's processes use more, the kernel kills one of them, typically"
        " a notebook kernel. The server itself keeps running, because every unit has"
        " `OOMPolicy=continue` unless `unit_extra_properties` sets another `OOMPolicy`.",
    ),
    "cpu_limit": InheritedOption(
        "float or None",
        "`None`",
        "1.5",
        "Maximum CPU time of each server, in CPUs: 0.5 is half of one CPU and 2 is two"
        " CPUs. The daemon sets the unit's `CPUQuota=` (50% and 200% for these values),"
        " rounded to 0.001 CPU, which is 1 ms of CPU time a second. It sets the"
        " `CPU_LIMIT` environment variable to the value as Python's `str(float)`"
        ' writes it, such as "0.5" or "2.0". The minimum is 0.01, and `None` sets no'
        " limit. The daemon also rejects a value above `limits.max_cpu_limit` when its"
        " configuration sets that cap.\n\n"
        "Whether or not a limit is set, every unit gets `CPUWeight=100`, so that busy"
        " servers share the CPUs equally per server rather than per process.",
    ),
    "environment": InheritedOption(
        "dict",
        "`{}`",
        '{"TZ": "Europe/Berlin"}',
        "More environment variables of the server. Callables are called with the"
        " spawner, and every value is sent as a string. Names must match"
        " `[A-Za-z_][A-Za-z0-9_]*`, and values must be UTF-8 without control"
        " characters other than tab and newline. The daemon rejects a start that sets,"
        " here or through `env_keep`, a variable on its deny-list. The list holds the"
        " variables that change how the dynamic linker, systemd or socket activation treat"
        " the server, such as `LD_*`, `SYSTEMD_*`, `NOTIFY_SOCKET` and `LISTEN_FDS`, and"
        " the names in `environment.deny` of the daemon's configuration.\n\n"
        "The daemon sets `SHELL` from `default_shell`, and sets `MEM_LIMIT`, `CPU_LIMIT`"
        " and `HOME` when `mem_limit`, `cpu_limit` and `dynamic_users` are set,"
        " replacing values given here. A `PATH` given here becomes the server's `PATH`,"
        " with `extra_paths` in front.",
    ),
    "env_keep": InheritedOption(
        "list of str",
        "`['JUPYTERHUB_SINGLEUSER_APP']` since JupyterHub 5.2. Before 5.2 it also lists"
        " `PATH`, `PYTHONPATH`, `CONDA_ROOT`, `CONDA_DEFAULT_ENV`, `VIRTUAL_ENV`, `LANG`"
        " and `LC_ALL`.",
        '["JUPYTERHUB_SINGLEUSER_APP", "PATH", "LANG"]',
        "Environment variables of the hub process that the server inherits.",
    ),
}

# A copy of DefaultAllowedProperties in internal/policy/properties.go: the properties that
# unit_extra_properties may set unless the daemon's configuration lists others. The names
# are systemd's D-Bus property names. tests/test_docs.py compares the two lists.
DEFAULT_ALLOWED_PROPERTIES = (
    "CPUWeight", "StartupCPUWeight", "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec", "CPUAccounting",
    "MemoryMin", "MemoryLow", "MemoryHigh", "MemoryMax", "MemorySwapMax", "MemoryAccounting",
    "TasksMax", "TasksAccounting", "IOWeight", "StartupIOWeight", "IOAccounting",
    "TimeoutStopUSec", "RuntimeMaxUSec",
    "LimitNOFILE", "LimitNPROC", "LimitCORE", "LimitAS", "LimitDATA", "LimitSTACK", "LimitFSIZE",
    "UMask", "Nice", "OOMScoreAdjust", "OOMPolicy",
    "PrivateTmp", "PrivateDevices", "PrivateNetwork", "PrivateUsers", "PrivateIPC",
    "NoNewPrivileges",
    "ProtectSystem", "ProtectHome", "ProtectKernelTunables", "ProtectKernelModules",
    "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
    "ProtectProc", "ProcSubset",
    "RestrictRealtime", "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute",
    "RemoveIPC",
    "ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths",
    "SyslogIdentifier", "LogLevelMax",
)  # fmt: skip

# A copy of the names in neverAllowed in internal/policy/properties.go: the properties
# that unit_extra_properties may never set, even when properties.allow lists them. A name
# ending in `*` matches every name with that prefix.
NEVER_ALLOWED_PROPERTIES = (
    "AmbientCapabilities", "AppArmorProfile", "BindPaths", "BindReadOnlyPaths",
    "CacheDirectory", "CapabilityBoundingSet", "ConfigurationDirectory",
    "CPUSchedulingPolicy", "CPUSchedulingPriority", "Delegate*", "DeviceAllow",
    "DevicePolicy", "DynamicUser", "Environment", "EnvironmentFile", "EnvironmentFiles", "Exec*",
    "ExtensionDirectories", "ExtensionImages", "Group", "ImportCredential",
    "IPCNamespacePath", "KillMode", "LoadCredential*", "LogExtraFields", "LogsDirectory",
    "MountImages", "NetworkNamespacePath", "PAMName", "PassEnvironment", "Personality",
    "RemainAfterExit", "RootDirectory", "RootImage*", "RuntimeDirectory", "SecureBits",
    "SELinuxContext", "SendSIGKILL", "SetCredential*", "Slice", "SmackProcessLabel",
    "Standard*", "StateDirectory", "SupplementaryGroups", "TTYPath", "Type", "User",
    "WorkingDirectory",
)  # fmt: skip


class OptionDoc(NamedTuple):
    """The documentation of one option, with `help` in Markdown paragraphs."""

    name: str
    type: str
    default: str
    help: str
    example: str


_TYPE_NAMES = {
    "Unicode": "str",
    "Bool": "bool",
    "Float": "float",
    "Int": "int",
    "List": "list",
    "Dict": "dict",
}


def _type_text(trait: TraitType) -> str:
    override = trait.metadata.get("type_doc")
    if override:
        return str(override)
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


def _example_line(name: str, trait: TraitType) -> str:
    example = trait.metadata.get("example")
    if not example:
        raise ValueError(
            f"trait {name} has no example metadata: tag it with example=<Python source of a value>"
        )
    return f"c.SystemdSpawner.{name} = {example}"


def _help_markdown(text: str) -> str:
    """Return help text as Markdown paragraphs, each wrapped at _WRAP_WIDTH."""
    paragraphs = textwrap.dedent(text).strip().split("\n\n")
    wrapped = [
        textwrap.fill(
            " ".join(paragraph.split()),
            width=_WRAP_WIDTH,
            break_long_words=False,
            break_on_hyphens=False,
        )
        for paragraph in paragraphs
    ]
    return "\n\n".join(wrapped)


def own_options(cls: type[SystemdSpawner] = SystemdSpawner) -> list[OptionDoc]:
    """Collect the configurable traits that `cls` defines itself, sorted by name."""
    traits = cls.class_own_traits(config=True)
    return [
        OptionDoc(
            name,
            _type_text(trait),
            _default_text(cls, name, trait),
            _help_markdown(trait.help),
            _example_line(name, trait),
        )
        for name, trait in sorted(traits.items())
    ]


def inherited_options() -> list[OptionDoc]:
    """Collect the inherited Spawner options listed in INHERITED_OPTIONS, in that order."""
    return [
        OptionDoc(
            name,
            option.type,
            option.default,
            _help_markdown(option.help),
            f"c.SystemdSpawner.{name} = {option.example}",
        )
        for name, option in INHERITED_OPTIONS.items()
    ]


def _option_section(option: OptionDoc) -> list[str]:
    return [
        f"### `{option.name}`",
        "",
        option.help,
        "",
        f"- Type: {option.type}",
        f"- Default: {option.default}",
        f"- Example: `{option.example}`",
        "",
    ]


def _name_list(names: tuple[str, ...]) -> list[str]:
    text = ", ".join(f"`{name}`" for name in names)
    return [textwrap.fill(text, width=_WRAP_WIDTH, break_on_hyphens=False), ""]


_INTRO = f"""\
# SystemdSpawner options

<!-- Generated by `python -m sdspawner.docs`. Do not edit: change the help texts in
python/sdspawner and run `{REGENERATE_COMMAND}`. -->

This page is generated from the help texts in `python/sdspawner/spawner.py` and
`python/sdspawner/docs.py`. To change it, change those and regenerate it with

```sh
{REGENERATE_COMMAND}
```

`python/tests/test_docs.py` fails while this file differs from the generator's output.

Set the options in `jupyterhub_config.py` after `c.JupyterHub.spawner_class = "sdspawner"`.
The option names and defaults follow upstream jupyterhub-systemdspawner. The hub sends the
values unexpanded to the `sdspawner serve` daemon, which expands the templates, checks every
value and rejects a start with an error that names the invalid option. JupyterHub shows that
error to the user and returns it as the `message` of the REST API's error response. On
JupyterHub 4, the error page of a start that fails within a second shows a fixed text instead.

The daemon's configuration, `/etc/sdspawner/config.toml`, can also cap the number of servers
that run at once per JupyterHub user (`limits.max_servers_per_user`) and in total
(`limits.max_servers`). A start beyond a cap fails with an error that names the cap.

## Templates

Templates may contain three variables. `{{USERNAME}}` is the JupyterHub user name, `{{USERID}}`
is the user's id in JupyterHub's database (`spawner.user.id`), and `{{SERVERNAME}}` is the name
of a named server, empty for the default server. As in upstream SystemdSpawner, `{{USERID}}` is
not the unix uid. The daemon expands the templates in `username_template`,
`unit_name_template`, `user_workingdir`, `extra_paths`, `readonly_paths`, `readwrite_paths`,
`cmd`, `args` and every value of `unit_extra_properties`. The values are escaped in
`unit_name_template` and inserted unchanged everywhere else.

As in Python's `str.format`, which upstream uses, `{{{{` and `}}}}` stand for a literal `{{` and
`}}`, so `{{{{USERNAME}}}}` gives the text `{{USERNAME}}`. Other text in braces, such as `{{HOME}}`,
is kept as written, where upstream raises an error.
"""

_PROPERTIES_INTRO = """\
## Properties for `unit_extra_properties`

The daemon accepts the following properties unless `properties.allow` in its configuration
lists others. The names are systemd's D-Bus names. A unit-file name such as
`TimeoutStopSec` or `CPUQuota` selects the D-Bus property it stands for
(`TimeoutStopUSec`, `CPUQuotaPerSecUSec`).
"""

_NEVER_ALLOWED_INTRO = """\
The daemon never accepts the following properties, even when `properties.allow` lists
them, because each would let the hub run code as another user, gain privileges, reach files
it should not, or break sdspawner's own bookkeeping. A name ending in `*` matches every name
with that prefix.
"""


def render_markdown() -> str:
    """Render the reference of SystemdSpawner's options as a Markdown document."""
    lines = [_INTRO, "## SystemdSpawner options", ""]
    for option in own_options():
        lines.extend(_option_section(option))
    lines.extend(
        [
            "## Inherited JupyterHub Spawner options",
            "",
            "Set these as `c.Spawner.<option>` or `c.SystemdSpawner.<option>`.",
            "SystemdSpawner uses them as follows.",
            "",
        ]
    )
    for option in inherited_options():
        lines.extend(_option_section(option))
    lines.append(_PROPERTIES_INTRO)
    lines.extend(_name_list(DEFAULT_ALLOWED_PROPERTIES))
    lines.append(_NEVER_ALLOWED_INTRO)
    lines.extend(_name_list(NEVER_ALLOWED_PROPERTIES))
    return "\n".join(lines).rstrip("\n") + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Replace the file at `path` with `text`, so that a failed run leaves the old file."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> None:
    """Write the Markdown reference to --output, or to `out` without it."""
    parser = argparse.ArgumentParser(
        prog="python -m sdspawner.docs",
        description="Generate the Markdown reference of SystemdSpawner's options.",
    )
    parser.add_argument(
        "--output", type=Path, help="file to write, such as ../docs/options.md (default: stdout)"
    )
    args = parser.parse_args(argv)

    text = render_markdown()
    if args.output is None:
        out.write(text)
    else:
        write_atomically(args.output, text)


if __name__ == "__main__":
    main()

"""The ready protocols that ship with tesctl (tesctl.paths.PROTOCOLS): list them, name them
on the command line, copy one out to edit.

`run`, `validate` and `preview` take a PROTOCOL that is a path or a ready protocol's name
(its file name without .toml, as `tesctl protocols` lists it). A path that exists wins, so a
user's own file is never shadowed; a bare name that is neither a file nor a ready protocol is
refused in one line.
"""
import shutil
import sys
from pathlib import Path

import click

from tesctl import paths
from tesctl.errors import InputError  # exit 2, one line (tesctl.cli's entry prints it)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def ready():
    """{name: path} of the ready protocols, sorted by name."""
    return {p.stem: p for p in sorted(paths.PROTOCOLS.glob("*.toml"))}


def title(path):
    """The protocol's own name field (one line), or '' if the file does not parse."""
    try:
        return str(tomllib.loads(Path(path).read_text(encoding="utf-8")).get("name", ""))
    except (OSError, ValueError):
        return ""


def ready_path(name):
    """The file of the ready protocol NAME; InputError if there is none."""
    found = ready().get(name)
    if found is None:
        raise InputError("no ready protocol %r (tesctl protocols lists them)" % name)
    return found


def resolve(value):
    """A PROTOCOL argument -> the path to load: the path itself if it exists, else the ready
    protocol of that name; a bare name (no folder, no suffix) that is neither is refused.
    Anything else is returned as given, for the loader to report."""
    text = str(value)
    if Path(text).exists():
        return text
    found = ready().get(text)
    if found is not None:
        return str(found)
    if Path(text).name == text and not Path(text).suffix:
        raise InputError("%s: no such file, and no ready protocol of that name (tesctl protocols lists them)"
                         % text)
    return text


class ProtocolArg(click.ParamType):
    """click type of a PROTOCOL argument: a path or a ready protocol's name."""
    name = "protocol"

    def convert(self, value, param, ctx):
        return resolve(value)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem
        names = [CompletionItem(n) for n in ready() if n.startswith(incomplete)]
        return names + [CompletionItem(incomplete, type="file")]


PROTOCOL = ProtocolArg()


def copy(name, dest_dir):
    """Write the ready protocol NAME to DEST_DIR/NAME.toml, with the JSON Schema its
    `#:schema ./schema.json` line names beside it. Never overwrites a protocol file; the
    schema is written when missing or different (it is this tesctl's). -> list of paths written."""
    src = ready_path(name)
    dest_dir = Path(dest_dir)
    if dest_dir.exists() and not dest_dir.is_dir():
        raise InputError("%s: not a folder" % dest_dir)
    target = dest_dir / src.name
    if target.exists():
        raise InputError("%s: already exists (not overwritten)" % target)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        written = [target]
        schema = dest_dir / paths.SCHEMA.name
        if not schema.exists() or schema.read_bytes() != paths.SCHEMA.read_bytes():
            shutil.copyfile(paths.SCHEMA, schema)
            written.append(schema)
    except OSError as e:
        raise InputError("cannot write to %s: %s" % (dest_dir, e.strerror or e)) from None
    return written


@click.command("protocols")
@click.option("--copy", "copy_args", nargs=2, metavar="NAME DIR", default=None,
              help="Write the ready protocol NAME to DIR/NAME.toml (with schema.json) to edit.")
def protocols_command(copy_args):
    """List the ready protocols (run/validate/preview take their names), or copy one out."""
    if copy_args:
        name, dest = copy_args
        for p in copy(name, dest):
            click.echo("wrote %s" % p)
        return
    table = ready()
    width = max((len(n) for n in table), default=0)
    for name, path in table.items():
        click.echo("%-*s  %s" % (width, name, title(path)))

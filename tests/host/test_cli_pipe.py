"""The CLI entry when its reader goes away (`tesctl ... | head -1`): a quiet exit 0, not an
'internal error' line (a real pipe, through a real process)."""
import os
import subprocess
import sys

SCRIPT = r"""
import click, sys
from tesctl.cli import TesctlGroup

@click.group(cls=TesctlGroup)
def main():
    pass

@main.command()
def flood():
    for i in range(200000):
        click.echo("line %d of many" % i)

main()
"""


def test_a_closed_pipe_is_a_quiet_exit():
    p = subprocess.Popen([sys.executable, "-c", SCRIPT, "flood"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=dict(os.environ))
    first = p.stdout.readline()
    p.stdout.close()                      # the reader goes away, as head does
    err = p.stderr.read()
    rc = p.wait(timeout=60)
    assert first.startswith(b"line 0")
    assert b"internal error" not in err and b"Traceback" not in err, err
    assert rc == 0

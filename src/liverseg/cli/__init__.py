"""`liverseg <step>`: the entry points that the Snakemake rules call, usable on their own, and the commands users call.

One module per rule file of `workflow/rules/` (data, train, evaluate, report), and `user` for segment, export,
evaluate, ui, shifted and ablation; the handlers parse their arguments and call the package.
"""

from __future__ import annotations

import argparse
import sys
import time

from liverseg.cli import data, evaluate, report, train, user

COMMAND_MODULES = (data, train, evaluate, report, user)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="liverseg", description=__doc__)
    steps = p.add_subparsers(dest="step", required=True)
    for module in COMMAND_MODULES:
        module.add_commands(steps)
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    started = time.perf_counter()
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, NotImplementedError, RuntimeError) as error:
        print(f"liverseg {args.step}: error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"liverseg {args.step}: done in {time.perf_counter() - started:.1f} s", file=sys.stderr)

"""The program invoke.sh runs: pyinvoke's own, except that a command line it cannot parse (an
unknown task or flag, a missing option value or positional argument) is a usage error: one line
on stderr and exit code 2, as for invoke.sh's own usage errors."""

from __future__ import annotations

import re
import sys

from invoke import Exit, ParseError, Program, __version__


class Front(Program):
    """pyinvoke's Program with usage errors exiting 2."""

    def _usage(self, error: ParseError) -> Exit:
        # "Flag <Argument: to (t)> needed value ..." -> "Flag --to needed value ..."
        text = re.sub(r"<Argument: ([\w-]+)[^>]*>", lambda m: "--" + m.group(1).replace("_", "-"), str(error))
        return Exit(f"error: {text} (see: bash invoke.sh --help, or --list and --help TASK after the name)", code=2)

    def parse_core(self, argv: list[str] | None) -> None:
        try:
            super().parse_core(argv)
        except ParseError as error:
            raise self._usage(error) from None

    def parse_collection(self) -> None:
        try:
            super().parse_collection()
        except ParseError as error:
            raise self._usage(error) from None

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as error:
            raise self._usage(error) from None


if __name__ == "__main__":
    Front(name="hgi-spark", binary="bash invoke.sh KIND NAME", version=__version__).run(sys.argv)

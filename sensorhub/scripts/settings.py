"""``sensorhub-admin settings <ini>``: every effective setting, its value and where it came from."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ..settings import SettingsTable, settings_table
from ..text import printable, to_json


class SettingsCommand:
    help = "show every effective setting (secrets masked) and its source: env, ini or default"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args: argparse.Namespace, env: dict[str, Any]) -> None:
        rows = [
            {
                "key": r.setting.key,
                "value": SettingsTable.display_value(r),
                "source": r.source,
                "env": r.setting.env_name,
                "owner": r.owner,
            }
            for r in settings_table(env["registry"])
        ]
        if args.json:
            sys.stdout.write(to_json(rows))
        else:
            sys.stdout.write(format_table(rows, ["key", "value", "source", "env", "owner"]))


def format_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """Aligned columns for a terminal; every cell escaped (:func:`sensorhub.text.printable`),
    as cells may hold stored data."""
    cells = [{c: printable(str(row[c])) for c in columns} for row in rows]
    widths = {c: max([len(c)] + [len(row[c]) for row in cells]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(row[c].ljust(widths[c]) for c in columns) for row in cells]
    return "\n".join(line.rstrip() for line in lines) + "\n"


command = SettingsCommand()

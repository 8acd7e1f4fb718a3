"""``sensorhub-admin settings <ini>``: every effective setting, its value and where it came from."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ..settings import SettingsTable, settings_table
from .admin import add_config_uri


class SettingsCommand:
    help = "show every effective setting (secrets masked) and its source: env, ini or default"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        add_config_uri(parser)

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
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        else:
            sys.stdout.write(format_table(rows, ["key", "value", "source", "env", "owner"]))


def format_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    widths = {c: max([len(c)] + [len(str(row[c])) for row in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(row[c]).ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"


command = SettingsCommand()

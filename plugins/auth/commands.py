"""``sensorhub-admin sensor create|list|show|rotate|revoke|disable <ini> …``.

Same settings, plugins and database as the app (through ``bootstrap``); every action runs in
one transaction (``with request.tm``) and prints only after it committed, so a token printed
is a token that exists. ``--json`` prints JSON (for scripts), otherwise a table. A new token
is printed once, to stdout; the reminder that it will not be shown again goes to stderr.
Names, metadata and hints are printed escaped (:mod:`sensorhub.text`): one stored before names
were validated may hold terminal escapes.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

import orjson

from sensorhub.db import begin_writing
from sensorhub.errors import FieldError
from sensorhub.scripts.admin import CommandError, duration_option
from sensorhub.scripts.settings import format_table
from sensorhub.text import to_json
from sensorhub.timestamps import utcnow

from . import service

WRITING_ACTIONS = frozenset({"create", "rotate", "revoke", "disable"})
SENSOR_COLUMNS = ["sensorId", "name", "disabled", "activeTokens", "createdAt", "lastSeenAt"]
TOKEN_COLUMNS = ["tokenId", "hint", "state", "createdAt", "lastUsedAt", "expiresAt", "revokedAt"]


class SensorCommand:
    help = "manage sensors and their tokens: create, list, show, rotate, revoke, disable"

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

        def action(name, help):
            sub = actions.add_parser(name, help=help, description=help)
            sub.add_argument("--json", action="store_true", help="print JSON, not a table")
            return sub

        create = action("create", "enrol a sensor and print its first token (shown once)")
        create.add_argument("--name", required=True)
        create.add_argument("--metadata", help='a JSON object, e.g. \'{"site": "north"}\'')
        create.add_argument("--expires-in", type=duration_option, help="token lifetime, e.g. 90d")

        listing = action("list", "list sensors with their count of active tokens")
        listing.add_argument("--limit", type=int, default=1000)
        listing.add_argument("--after", help="list sensors whose id sorts after this one")

        show = action("show", "show a sensor's tokens (hints and states, never secrets)")
        show.add_argument("sensor_id")

        rotate = action("rotate", "issue an extra token; old tokens keep working until revoked")
        rotate.add_argument("sensor_id")
        rotate.add_argument("--expires-in", type=duration_option, help="token lifetime, e.g. 90d")
        rotate.add_argument(
            "--revoke-others",
            action="store_true",
            help="revoke every other token at once (no overlap)",
        )

        revoke = action("revoke", "revoke one token, or all of a sensor's tokens")
        revoke.add_argument("sensor_id")
        which = revoke.add_mutually_exclusive_group(required=True)
        which.add_argument("--token", dest="token_id", help="the token id (see: show)")
        which.add_argument("--all", action="store_true", help="revoke every token")

        disable = action("disable", "disable a sensor (its tokens stop working) or --enable it")
        disable.add_argument("sensor_id")
        disable.add_argument("--enable", action="store_true", help="enable it again")

    def run(self, args, env) -> int:
        request = env["request"]
        try:
            with request.tm:
                if args.action in WRITING_ACTIONS:
                    # The script's request is a GET, so its session reads; on SQLite a reader
                    # that then writes fails at once ("database is locked") when a busy server
                    # committed since it began: take the write lock first, waiting for it.
                    begin_writing(request.dbsession)
                rows, columns, changed = getattr(self, "_" + args.action)(args, request.dbsession)
        except FieldError as error:  # the service's check of a name or metadata
            raise CommandError(str(error)) from None
        if args.json:
            sys.stdout.write(to_json(rows))
        else:
            sys.stdout.write(format_table([_cells(row) for row in rows], columns))
        if args.action in ("create", "rotate"):
            sys.stderr.write("store the token now: it is not shown again\n")
        return changed

    # --- actions: each returns (rows, table columns, rows changed)

    def _create(self, args, dbsession):
        metadata = None
        if args.metadata:
            try:
                metadata = orjson.loads(args.metadata)
            except orjson.JSONDecodeError:
                raise CommandError("--metadata is not valid JSON") from None
        sensor, issued = service.create_sensor(
            dbsession, args.name, metadata, issued_by="cli", expires_at=_expires_at(args.expires_in)
        )
        row = {
            "sensorId": sensor.id,
            "name": sensor.name,
            "tokenId": issued.row.id,
            "token": issued.token,
            "expiresAt": issued.row.expires_at,
        }
        return [row], ["sensorId", "name", "tokenId", "token", "expiresAt"], 1

    def _list(self, args, dbsession):
        sensors = service.list_sensors(dbsession, args.limit, args.after)
        active = service.count_active_tokens(dbsession, [s.id for s in sensors])
        rows = [{**service.sensor_json(s), "activeTokens": active.get(s.id, 0)} for s in sensors]
        return rows, SENSOR_COLUMNS, 0

    def _show(self, args, dbsession):
        sensor = _sensor(dbsession, args)
        rows = [service.token_json(t) for t in service.sensor_tokens(dbsession, sensor.id)]
        return rows, TOKEN_COLUMNS, 0

    def _rotate(self, args, dbsession):
        sensor = _sensor(dbsession, args)
        revoked = 0
        if args.revoke_others:
            revoked = sum(service.revoke(t) for t in service.sensor_tokens(dbsession, sensor.id))
        issued = service.issue_token(
            dbsession, sensor, issued_by="cli", expires_at=_expires_at(args.expires_in)
        )
        row = {
            "sensorId": sensor.id,
            "tokenId": issued.row.id,
            "token": issued.token,
            "expiresAt": issued.row.expires_at,
            "revokedOthers": revoked,
        }
        return [row], ["sensorId", "tokenId", "token", "expiresAt", "revokedOthers"], 1 + revoked

    def _revoke(self, args, dbsession):
        sensor = _sensor(dbsession, args)
        if args.all:
            targets = service.sensor_tokens(dbsession, sensor.id)
        else:
            token = service.get_token(dbsession, sensor.id, args.token_id)
            if token is None:
                raise CommandError(
                    f"sensor {sensor.id} has no token {args.token_id}; see its tokens: "
                    f"sensorhub-admin sensor show {args.config_uri} {sensor.id}"
                )
            targets = [token]
        changed = sum(service.revoke(t) for t in targets)
        dbsession.flush()
        return [service.token_json(t) for t in targets], TOKEN_COLUMNS, changed

    def _disable(self, args, dbsession):
        sensor = _sensor(dbsession, args)
        wanted = not args.enable
        changed = int(sensor.disabled != wanted)
        sensor.disabled = wanted
        dbsession.flush()
        return [service.sensor_json(sensor)], SENSOR_COLUMNS[:3], changed


def _sensor(dbsession, args):
    sensor = service.get_sensor(dbsession, args.sensor_id)
    if sensor is None:
        raise CommandError(
            f"no sensor {args.sensor_id}; see the sensors there are: "
            f"sensorhub-admin sensor list {args.config_uri}"
        )
    return sensor


def _expires_at(lifetime: float | None) -> datetime | None:
    return utcnow() + timedelta(seconds=lifetime) if lifetime else None


def _cells(row: dict) -> dict:
    return {
        key: ""
        if value is None
        else value.isoformat(timespec="seconds")
        if isinstance(value, datetime)
        else value
        for key, value in row.items()
    }


command = SensorCommand()

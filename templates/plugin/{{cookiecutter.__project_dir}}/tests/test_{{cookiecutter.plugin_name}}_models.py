"""The plugin's table: built by its migration, exactly as its model describes."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, insert, select

from sensorhub.models import Base, Sensor

NAME = "{{ cookiecutter.plugin_name }}"
TABLE = f"{NAME}_notes"


def reflect_only_this_plugins_table(name, type_, parent_names):
    if type_ == "schema":
        return True
    return name == TABLE if type_ == "table" else parent_names.get("table_name") == TABLE


def compare_only_this_plugins_table(obj, name, type_, reflected, compare_to):
    return (obj if type_ == "table" else obj.table).name == TABLE


def test_the_migration_builds_the_table_the_model_describes(app):
    # Loading the plugin imported its model, so the table is on SensorHub's shared metadata.
    assert TABLE in Base.metadata.tables
    with app.registry["dbengine"].connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_name": reflect_only_this_plugins_table,
            "include_object": compare_only_this_plugins_table,
        })
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_a_note_keeps_its_time_in_utc_and_goes_when_its_sensor_goes(app):
    notes = Base.metadata.tables[TABLE]
    written = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with app.registry["dbengine"].begin() as connection:
        sensor_id = connection.execute(
            insert(Sensor).values(name="probe").returning(Sensor.id)).scalar_one()
        connection.execute(insert(notes).values(sensor_id=sensor_id, text="calibrated",
                                                created_at=written))
        stored = connection.execute(
            select(notes.c.created_at).where(notes.c.sensor_id == sensor_id)).scalar_one()
        assert stored == written and stored.tzinfo is not None
        connection.execute(delete(Sensor).where(Sensor.id == sensor_id))
        assert connection.execute(select(notes)).all() == []

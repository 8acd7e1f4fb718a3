"""The ingest writer's turns: on a SQLite file, the writers of several server processes take
turns through a file lock next to the database; elsewhere the turns are nothing."""

from __future__ import annotations

import os
import time

from sqlalchemy import create_engine

from plugins.ingest.turns import writer_turns


def test_writers_of_two_processes_take_turns(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'turns.sqlite'}")
    turns = writer_turns(engine)
    read_end, write_end = os.pipe()
    with turns:
        pid = os.fork()
        if pid == 0:  # a second process: must wait until the parent's turn is over
            with turns:
                os.write(write_end, str(time.monotonic()).encode())
            os._exit(0)
        time.sleep(0.3)
        released_at = time.monotonic()
    child_entered_at = float(os.read(read_end, 64))
    os.waitpid(pid, 0)
    assert child_entered_at >= released_at
    engine.dispose()


def test_writer_turns_are_nothing_on_other_databases():
    engine = create_engine("sqlite://")
    with writer_turns(engine), writer_turns(engine):  # no lock file, nothing to wait for
        pass

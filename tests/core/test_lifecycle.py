"""A plugin ties what it starts to its app: closing the app runs the plugin's closers."""

from __future__ import annotations

from sensorhub.lifecycle import close_app


def test_closing_an_app_runs_its_closers_newest_first_and_only_once(app_factory):
    app = app_factory()
    calls = []
    app.registry["sensorhub.closers"].extend(
        [lambda: calls.append("first"), lambda: calls.append("second")]
    )
    close_app(app.registry)
    close_app(app.registry)
    assert calls == ["second", "first"]


def test_a_failing_closer_is_logged_and_the_others_still_run(app_factory, capsys):
    app = app_factory()
    calls = []

    def broken():
        raise RuntimeError("cannot stop")

    app.registry["sensorhub.closers"].extend([lambda: calls.append("ran"), broken])
    close_app(app.registry)
    assert calls == ["ran"]
    assert "app_closer_failed" in capsys.readouterr().out

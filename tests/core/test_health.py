"""Liveness and readiness: what an orchestrator or load balancer sees."""


def test_healthz_answers_ok_with_zero_plugins(testapp):
    response = testapp.get("/healthz")
    assert response.json == {"status": "ok"}


def test_readyz_reports_the_database_check(testapp):
    response = testapp.get("/readyz")
    assert response.json == {"status": "ok", "checks": {"database": "ok"}}


def test_readyz_is_503_with_a_reason_when_the_database_is_unreachable(app_factory, tmp_path):
    unreachable = tmp_path / "missing-dir" / "x"
    app = app_factory(
        settings={
            "dbengine": None,
            "sensorhub.database.url": "postgresql+psycopg://nobody@127.0.0.1:1/none",
            "sensorhub.database.connect_timeout": "1s",
        }
    )
    import webtest

    response = webtest.TestApp(app).get("/readyz", status=503)
    assert response.headers["Retry-After"] == "5"
    assert response.content_type == "application/problem+json"
    assert response.json["errors"][0]["path"] == "database"
    assert "OperationalError" in response.json["detail"]
    assert str(unreachable) not in response.text

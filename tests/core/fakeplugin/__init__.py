"""A plugin the core has never heard of, loaded by dotted name: proof that the core knows no
plugin and that every contract (settings, routes, errors, security, health) is open to one."""

from sqlalchemy import func, select

from sensorhub.db import begin_writing
from sensorhub.identity import ADMIN, SENSOR, AdminIdentity
from sensorhub.models import Sensor
from sensorhub.settings import Setting, as_int
from tests.failing_commit import FailingCommit


class HeaderSecurityPolicy:
    """Test-only policy: ``X-Fake-Admin: yes`` is an admin, anything else anonymous."""

    def identity(self, request):
        return AdminIdentity() if request.headers.get("X-Fake-Admin") == "yes" else None

    def authenticated_userid(self, request):
        identity = self.identity(request)
        return identity.name if identity else None

    def permits(self, request, context, permission):
        return permission == ADMIN and self.identity(request) is not None

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []

    def challenge_headers(self, request):
        return {"WWW-Authenticate": 'FakeHeader realm="tests"'}


def echo_setting(request):
    return {
        "answer": request.registry.settings["sensorhub.fake.answer"],
        "query": dict(request.GET),
    }


def explode(request):
    secret_in_a_local = "shs_notarealtoken"  # noqa: F841  (must never reach the response)
    raise RuntimeError("boom: internal detail /etc/secret-path")


def admin_only(request):
    return {"ok": True}


def create_sensor(request):
    name = request.json_body["name"]
    request.dbsession.add(Sensor(name=name))
    request.dbsession.flush()
    if request.json_body.get("fail_after_write"):
        raise RuntimeError("fails after the write: the transaction must roll back")
    if request.json_body.get("fail_at_commit"):
        request.tm.get().join(FailingCommit(request.tm))
    return {"created": name}


def transaction_kind(request):
    """How the request's transaction began (SQLite's BEGIN mode; PostgreSQL ignores it) and
    what it sees."""
    if request.params.get("write") == "yes":
        begin_writing(request.dbsession)
    connection = request.dbsession.connection()
    return {
        "begin": connection.get_execution_options().get("sqlite_begin", "IMMEDIATE"),
        "sensors": connection.execute(select(func.count()).select_from(Sensor)).scalar(),
    }


def includeme(config):
    config.declare_settings(Setting("sensorhub.fake.answer", as_int(0, 100), 42, "the answer"))
    config.set_security_policy(HeaderSecurityPolicy())
    config.add_api_capability("fake", description="a test plugin", url="/fake/answer")
    config.add_route("fake_answer", "/fake/answer")
    config.add_view(echo_setting, route_name="fake_answer", request_method="GET", renderer="json")
    config.add_route("fake_explode", "/fake/explode")
    config.add_view(explode, route_name="fake_explode", renderer="json")
    config.add_route("fake_admin", "/fake/admin")
    config.add_view(admin_only, route_name="fake_admin", permission=ADMIN, renderer="json")
    config.add_route("fake_sensor_only", "/fake/sensor-only")
    config.add_view(admin_only, route_name="fake_sensor_only", permission=SENSOR, renderer="json")
    config.add_route("fake_transaction", "/fake/transaction")
    config.add_view(transaction_kind, route_name="fake_transaction", renderer="json")
    config.add_route("fake_reader_post", "/fake/reader-post")
    config.add_view(transaction_kind, route_name="fake_reader_post", renderer="json")
    config.add_reader_route("fake_reader_post")
    config.add_route("fake_sensors", "/fake/sensors")
    config.add_view(
        create_sensor, route_name="fake_sensors", request_method="POST", renderer="json"
    )

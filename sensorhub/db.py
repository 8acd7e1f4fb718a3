"""Storage wiring: engine, session factory, the request's transaction-bound session.

The shape is the Pyramid starter's: ``get_engine``, ``get_session_factory``, ``get_tm_session``
and a reified ``request.dbsession`` joined to ``request.tm`` (pyramid_tm with the explicit
manager, pyramid_retry around it). Because pyramid_tm commits before the response leaves, a 2xx
means committed, and a failed commit becomes an error response.

SQLite (the embedded default) is opened for safe concurrent use: WAL, ``busy_timeout``, foreign
keys on, and transactions started with ``BEGIN IMMEDIATE`` unless they are known to only read.
A deferred transaction that reads and then writes fails at once with "database is locked" when
another writer committed in between, whatever the busy timeout; taking the write lock up front
makes writers queue instead. But a writer's lock is held until its commit, and SQLite's busy
handler waits for it by sleeping (1, 2, 5, 10 … ms), so readers must not take it: under load that
turns every request into a queue with a sleeping tail.

So ``request.dbsession`` is a *reader* for GET, HEAD and OPTIONS and for routes declared with
``config.add_reader_route(name)`` (requests whose writes go elsewhere, e.g. ingestion's
group-commit writer), and a *writer* (``BEGIN IMMEDIATE``) otherwise. On SQLite a reader's
statements run in autocommit (``sqlite_begin="AUTOCOMMIT"``: no BEGIN, no COMMIT), each a read
transaction of its own that in WAL mode neither waits nor blocks; they do not share one snapshot,
which no reader needs (a page of events is one statement). BEGIN and COMMIT would be two more
driver calls, and each gives up the GIL: under load, more hand-offs between the server's threads
(docs/benchmarks.md). Code that is about to write in a reader calls :func:`begin_writing` before
its first statement (its transaction then begins IMMEDIATE). Scripts and other connections: the
engine begins IMMEDIATE; a caller that only reads may opt out per connection with the execution
option ``sqlite_begin="DEFERRED"`` (one snapshot for all its reads: the readiness check does) or
``"AUTOCOMMIT"``. None of this changes anything on PostgreSQL, whose row locks and MVCC need no
such care.

A process's busy writer on SQLite (ingest's group commit) is the writing plugin's business: with
several server processes (``sensorhub.workers``) it takes its own turns between them (the ingest
plugin's ``turns.py``), since the busy handler's sleeping makes writers that merely queue slow.

``sensorhub.database.sqlite_synchronous`` picks what an acknowledged write survives on SQLite:
FULL (default) survives process crash and power loss; NORMAL survives a process crash but may
lose the last transactions on power loss. PostgreSQL: with ``synchronous_commit=on`` (its
default) an acknowledged commit survives both.

Test hooks: a ``dbengine`` key in the settings replaces the engine (share one across apps), and
an environ key ``sensorhub.dbsession`` replaces ``request.dbsession`` (a test's own session bound
to a doomed transaction manager, so every test rolls back).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import transaction
import zope.sqlalchemy
from sqlalchemy import engine_from_config, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from .settings import Setting, StartupError, as_choice, as_database_url, as_duration, as_int

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request

DBSESSION_ENVIRON_KEY = "sensorhub.dbsession"
READS_IN_AUTOCOMMIT = "AUTOCOMMIT"  # sqlite_begin for readers: no BEGIN (module docstring)
READER_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_READER_ROUTES = "sensorhub.db.reader_routes"

SETTINGS = (
    Setting(
        "sensorhub.database.url",
        as_database_url,
        "sqlite:///var/sensorhub.sqlite",
        "SQLAlchemy database URL: sqlite:///path (embedded) or postgresql+psycopg://…",
        secret=True,
    ),
    Setting(
        "sensorhub.database.pool_size", as_int(1, 200), 10, "connections kept open per process"
    ),
    Setting(
        "sensorhub.database.max_overflow",
        as_int(0, 200),
        10,
        "extra connections allowed above pool_size under load",
    ),
    Setting(
        "sensorhub.database.connect_timeout",
        as_duration,
        5.0,
        "how long to wait for the database server to accept a connection",
    ),
    Setting(
        "sensorhub.database.sqlite_synchronous",
        as_choice("full", "normal"),
        "full",
        "SQLite durability: full survives power loss, normal only a process crash",
    ),
    Setting(
        "sensorhub.database.retry_attempts",
        as_int(1, 10),
        3,
        "attempts per request on a transient database conflict (pyramid_retry)",
    ),
)


def waits(settings: Mapping[str, Any]) -> dict[str, float]:
    """The database waits, in seconds, derived from the request deadline
    (``sensorhub.request_timeout``) so that a stall is answered within it: a request may wait
    a quarter of it for a pooled connection, half of it for a lock or one statement."""
    deadline: float = settings["sensorhub.request_timeout"]
    return {"pool": deadline / 4, "lock": deadline / 2, "statement": deadline / 2}


def get_engine(settings: Mapping[str, Any]) -> Engine:
    """Build the engine from the typed ``sensorhub.database.*`` settings and the deadline."""
    url = make_url(settings["sensorhub.database.url"])
    wait = waits(settings)
    options: dict[str, Any] = {"sqlalchemy.url": url, "sqlalchemy.hide_parameters": True}
    if url.database not in (None, "", ":memory:"):  # in-memory SQLite: a connection per thread
        # Sized for waitress's threads plus background writers: a checkout beyond the pool
        # opens a new connection, which on SQLite means reopening the file and its WAL index.
        options.update(
            {
                "sqlalchemy.pool_size": settings["sensorhub.database.pool_size"],
                "sqlalchemy.max_overflow": settings["sensorhub.database.max_overflow"],
                "sqlalchemy.pool_timeout": wait["pool"],
            }
        )
    if url.get_backend_name() == "sqlite":
        _ensure_sqlite_directory(url)
        options["sqlalchemy.connect_args"] = {
            "timeout": wait["lock"],
            "check_same_thread": False,
        }
    else:
        # A server may have restarted or cut idle connections since the last checkout; a file
        # cannot, so SQLite skips the round trip.
        options["sqlalchemy.pool_pre_ping"] = True
        if url.get_backend_name() == "postgresql":
            statement_ms = int(wait["statement"] * 1000)
            lock_ms = int(wait["lock"] * 1000)
            options["sqlalchemy.connect_args"] = {
                "connect_timeout": max(1, int(settings["sensorhub.database.connect_timeout"])),
                "options": f"-c statement_timeout={statement_ms} -c lock_timeout={lock_ms}",
                "application_name": "sensorhub",
            }
    engine = engine_from_config(options, prefix="sqlalchemy.")
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, settings)
    return engine


def _ensure_sqlite_directory(url: URL) -> None:
    if url.database and url.database != ":memory:":
        directory = Path(url.database).parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StartupError(
                f"cannot create the directory {directory} for the SQLite database named by "
                f"sensorhub.database.url (env SENSORHUB_DATABASE_URL): {error.strerror}; "
                "point it at a writable path"
            ) from None


def _configure_sqlite(engine: Engine, settings: Mapping[str, Any]) -> None:
    busy_ms = int(waits(settings)["lock"] * 1000)
    synchronous = settings["sensorhub.database.sqlite_synchronous"].upper()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:  # the driver's connection
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode != READS_IN_AUTOCOMMIT:  # else each statement is a transaction of its own
            connection.exec_driver_sql(f"BEGIN {mode}")


def get_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for :func:`get_tm_session`, zope.sqlalchemy's listeners registered once here."""
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    for name in _ZOPE_EVENTS:
        event.listen(factory, name, _join_own_transaction_manager(name))
    return factory


# zope.sqlalchemy's listeners (those its ``register`` attaches), registered once on a session
# factory; each event goes to the ZopeTransactionEvents that get_tm_session made for the
# session's transaction manager (``session.info[_ZOPE]``; a session without one stays a plain
# SQLAlchemy session). The Pyramid starter's ``zope.sqlalchemy.register(session,
# transaction_manager=tm)`` for every session attaches seven SQLAlchemy listeners per request and
# detaches them when the session is collected: about 120 µs, a fifth of a GET /api/v1/sensor.
_ZOPE_EVENTS = (
    "after_begin",
    "after_attach",
    "after_flush",
    "after_bulk_update",
    "after_bulk_delete",
    "before_commit",
    "do_orm_execute",
)


_ZOPE = "zope.sqlalchemy"  # session.info key: the session's ZopeTransactionEvents


def _join_own_transaction_manager(name: str) -> Any:
    """The listener for ``name``: zope.sqlalchemy's own, for the session's manager."""

    def listener(*args: Any) -> None:
        first = args[0]  # the session, or the ORM execute / bulk context that holds it
        session = first if isinstance(first, Session) else first.session
        events = session.info.get(_ZOPE)
        if events is not None:
            getattr(events, name)(*args)

    return listener


def get_tm_session(
    session_factory: sessionmaker[Session],
    transaction_manager: Any,  # a transaction.TransactionManager (the package has no types)
    request: Request | None = None,
) -> Session:
    """A session joined to ``transaction_manager``: it commits or aborts with the transaction.

    In a request, use ``request.dbsession`` (this, bound to ``request.tm``). In a script::

        with transaction.manager as tm:
            dbsession = get_tm_session(session_factory, tm)
            dbsession.add(...)

    or, through ``bootstrap``, ``with env["request"].tm: env["request"].dbsession...``.
    ``session.info["request"]`` is the request when there is one.
    """
    events = zope.sqlalchemy.ZopeTransactionEvents(transaction_manager=transaction_manager)
    return session_factory(info={"request": request, _ZOPE: events})


def begin_writing(dbsession: Session) -> None:
    """Start ``dbsession``'s transaction as a writer (SQLite: ``BEGIN IMMEDIATE``) if it has not
    started yet. Call it before the first statement of a transaction that may write in a reader
    session; once the transaction has started it changes nothing (and on PostgreSQL, never)."""
    if not dbsession.in_transaction():
        dbsession.connection(execution_options={"sqlite_begin": "IMMEDIATE"})


def add_reader_route(config: Configurator, route_name: str) -> None:
    """Declare that requests to ``route_name`` only read in ``request.dbsession``, whatever
    their method (their writes go through another connection and may wait there): on SQLite
    they then never hold the write lock while they authenticate, parse or wait, and for a
    writing method whatever authentication did in the request's transaction (its reads, now
    and then a last-used touch) is committed before the view runs, so the view holds neither a
    lock nor a pooled connection while it reads the body or waits for its own commit."""
    config.registry[_READER_ROUTES].add(route_name)


def _ends_request_transaction_first(view: Any, info: Any) -> Any:
    """The view deriver behind :func:`add_reader_route`'s second promise (placed inside the
    security check, so authentication has run)."""
    if info.options.get("route_name") is None:
        return view

    def view_after_commit(context: Any, request: Request) -> Any:
        if request.method not in READER_METHODS and _is_reader(request):
            session = request.__dict__.get("dbsession")  # reified: present only once used
            if session is not None and session.in_transaction():
                request.tm.commit()
                request.tm.begin()
        return view(context, request)

    return view_after_commit


def _is_reader(request: Request) -> bool:
    if request.method in READER_METHODS:
        return True
    route = request.matched_route
    return route is not None and route.name in request.registry[_READER_ROUTES]


def session_in_transaction(request: Request) -> Session | None:
    """``request.dbsession`` if it is already in a transaction, without making one: for a
    read that may go elsewhere when the request has not begun one (that costs more than it)."""
    dbsession = request.__dict__.get("dbsession") or request.environ.get(DBSESSION_ENVIRON_KEY)
    return dbsession if dbsession is not None and dbsession.in_transaction() else None


# A DriverRead compiled for one engine: its SQL, its arguments from named parameters, and the
# (column index, result processor) of the columns that have one.
_CompiledRead = tuple[str, Callable[[dict[str, Any]], Any], tuple[Any, ...]]


class DriverRead:
    """A Core SELECT that runs on the database driver's own cursor: for reads on a hot request
    path (authentication's credential generation, ``GET /api/v1/sensor``'s profile and
    counters, a page of events on SQLite).

    Through SQLAlchemy a one-row statement costs several times what it costs on the driver, in
    process and more so under load, where the request's session costs little beside it (what
    this bought: docs/benchmarks.md, "reads on the driver"). Kept from SQLAlchemy: the
    statement, compiled once per engine with its parameters' order, and its columns' result
    processing, so a timestamp is a ``datetime`` and a JSON column a value on every dialect.
    Not kept: bind processing and expanding ``IN`` parameters (pass values a driver takes as
    they are: str, int, float, bytes, None). Driver errors are raised as SQLAlchemy's, with the
    engine's ``hide_parameters``, so a database that is down is answered 503 like anywhere
    else and no value is logged.

    Where it runs: in the request's session when that is already in a transaction (the read
    then sees what the request wrote, and on SQLite does not wait for the write lock the
    request holds); otherwise on a pooled connection of its own, returned at once (SQLite:
    autocommit, a read that takes no lock; PostgreSQL: the pool's return rolls back). Beginning
    the request's session for a read costs more than the read (``make bench-breakdown``).
    """

    def __init__(self, statement: Any) -> None:  # a Select; its bound parameters by name
        self.statement = statement
        self._compiled: dict[Engine, _CompiledRead] = {}

    def all(self, request: Request, **parameters: Any) -> list[tuple[Any, ...]]:
        """The rows, each a tuple in the statement's column order."""
        engine = request.registry["dbengine"]
        compiled = self._compiled.get(engine) or self._compile(engine)
        sql, arguments_of, processors = compiled
        arguments = arguments_of(parameters)
        dbsession = session_in_transaction(request)
        if dbsession is not None:  # already paid for: one more statement in it
            rows: Sequence[Any] = dbsession.connection().exec_driver_sql(sql, arguments).all()
        else:
            rows = _fetch_pooled(engine, sql, arguments)
        if not processors:
            return [tuple(row) for row in rows]
        processed: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(row)
            for index, process in processors:
                values[index] = process(values[index])
            processed.append(tuple(values))
        return processed

    def first(self, request: Request, **parameters: Any) -> tuple[Any, ...] | None:
        """The first row, or None."""
        rows = self.all(request, **parameters)
        return rows[0] if rows else None

    def _compile(self, engine: Engine) -> _CompiledRead:
        dialect = engine.dialect
        compiled = self.statement.compile(dialect=dialect)
        if any(bind.expanding for bind in compiled.binds.values()):
            raise ValueError("DriverRead: expanding IN parameters need SQLAlchemy's execution")
        # What SQLAlchemy's construct_params does per call, worked out once: the values of the
        # literals the statement binds, which the caller's parameters complete (a parameter
        # left out is a KeyError naming it, not a NULL).
        every = compiled.construct_params(_check=False)
        bound = {name: value for name, value in every.items() if not compiled.binds[name].required}
        positions = compiled.positiontup
        names = list(every) if positions is None else positions

        def arguments_of(parameters: dict[str, Any]) -> Any:
            values = {**bound, **parameters}
            ordered = [values[name] for name in names]
            return dict(zip(names, ordered, strict=True)) if positions is None else tuple(ordered)

        processors = tuple(
            (index, process)
            for index, column in enumerate(self.statement.selected_columns)
            if (process := column.type.dialect_impl(dialect).result_processor(dialect, None))
            is not None
        )
        self._compiled[engine] = compiled_read = (compiled.string, arguments_of, processors)
        return compiled_read


def _fetch_pooled(engine: Engine, sql: str, arguments: Any) -> Sequence[Any]:
    """``sql``'s rows on a pooled driver connection of its own; a driver error raised as
    SQLAlchemy's, with the engine's ``hide_parameters``, and the connection it broke dropped."""
    driver_error = engine.dialect.loaded_dbapi.Error
    try:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, arguments)
            rows: Sequence[Any] = cursor.fetchall()  # to the end: SQLite ends the read only then
            cursor.close()
        except driver_error:
            connection.invalidate()  # whatever broke it is not handed to the next request
            raise
        finally:
            connection.close()  # back to the pool, which rolls back what PostgreSQL began
    except driver_error as error:
        raise DBAPIError.instance(
            sql,
            arguments,
            error,
            driver_error,
            hide_parameters=engine.hide_parameters,  # as the engine's own errors
            dialect=engine.dialect,
        ) from error
    return rows


def _request_dbsession(request: Request) -> Session:
    dbsession: Session | None = request.environ.get(DBSESSION_ENVIRON_KEY)  # test hook
    if dbsession is None:
        name = "dbsession_factory.reader" if _is_reader(request) else "dbsession_factory"
        dbsession = get_tm_session(request.registry[name], request.tm, request=request)
    return dbsession


def _each_threads_manager() -> Callable[[Request], transaction.TransactionManager]:
    """pyramid_tm's ``tm.manager_hook``: an explicit transaction manager per thread, made once.

    pyramid_tm's own ``explicit_manager`` makes a new one for every request (a few percent of
    a light request). A thread serves one request at a time and pyramid_tm ends every
    request's transaction, except that a commit that failed is left for its manager's owner to
    abort: that is done here, before the thread's next request begins. The manager stays
    explicit (a stray access with no transaction begun is an error, never an implicit one).
    One set of managers per app: apps built in one process (tests) never share one."""
    managers = threading.local()

    def thread_manager(_request: Request) -> transaction.TransactionManager:
        manager = getattr(managers, "manager", None)
        if manager is None:
            manager = managers.manager = transaction.TransactionManager(explicit=True)
            return manager
        try:
            left_over = manager.get()
        except transaction.interfaces.NoTransaction:
            return manager
        left_over.abort()
        return manager

    return thread_manager


def _retry_attempts(request: Request) -> int | None:
    """pyramid_retry copies every body before the first attempt, so that a retry can read it
    again. A body over the server's limit (refused with 413 by the admission tween) or of
    unknown length (chunked: read only as far as a view's own limit) is not copied, and such a
    request gets one attempt; any other keeps the configured number (None)."""
    length = request.content_length
    if length is None:
        return 1 if request.headers.get("Transfer-Encoding") else None
    return 1 if length > request.registry.settings["sensorhub.max_request_body_size"] else None


def includeme(config: Configurator) -> None:
    config.declare_settings(*SETTINGS)
    settings = config.get_settings()
    # pyramid_tm: one transaction per request, committed before the response leaves; the
    # explicit manager makes a stray access outside a request an error instead of a leak.
    settings["tm.manager_hook"] = _each_threads_manager()
    settings["retry.attempts"] = settings["sensorhub.database.retry_attempts"]
    settings["retry.activate_hook"] = _retry_attempts
    # pyramid_tm would ask the security policy for the user on every request just to annotate
    # the transaction: an authentication (and a failure count) for requests that never needed
    # one, such as a scrape of /metrics.
    settings["tm.annotate_user"] = False
    config.include("pyramid_tm")
    config.include("pyramid_retry")

    engine = settings.get("dbengine") or get_engine(settings)  # "dbengine": test hook
    config.registry["dbengine"] = engine
    config.registry["dbsession_factory"] = get_session_factory(engine)
    config.registry["dbsession_factory.reader"] = get_session_factory(
        engine.execution_options(sqlite_begin=READS_IN_AUTOCOMMIT)
    )
    config.registry[_READER_ROUTES] = set()
    config.add_directive("add_reader_route", add_reader_route)
    config.add_view_deriver(_ends_request_transaction_first)
    config.add_request_method(_request_dbsession, "dbsession", reify=True)

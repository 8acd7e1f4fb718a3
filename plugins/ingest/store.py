"""The one way views store events: ``EventStore.write(request, job)``, chosen in ``includeme``.

"A 2xx means committed" has one guarantee, pyramid_tm's: the response leaves only after the
request's transaction committed. A store's part of the contract is that, by then, the job's rows
are committed too, and its outcomes (``job.accepted_flags``) are final when ``write`` returns.
A store that cannot promise that raises :class:`StoreUnavailable` (the view answers 503 with
``Retry-After``; with ``eventId``s a resend is safe). Views never touch a transaction.

- :class:`RequestTransactionStore` (``sensorhub.ingest.group_commit = false``): the rows go in
  the request's own transaction and commit with it.
- :class:`~.writer.GroupCommitWriter` (the default): a writer thread commits the jobs of many
  requests in one transaction before ``write`` returns; the route is a reader route
  (``config.add_reader_route``), so the core ends the request's own transaction before the view
  runs and it holds no lock while the view reads the body and waits.
"""

from __future__ import annotations

from typing import Protocol

from zope.sqlalchemy import mark_changed

from .storage import WriteJob, write_jobs


class StoreUnavailable(Exception):
    """The job is not known to be committed (a full queue, a timeout, a database error)."""


class EventStore(Protocol):
    writes_elsewhere: bool  # True: the job is committed outside the request's transaction

    def write(self, request, job: WriteJob) -> None: ...

    def close(self) -> None: ...


class RequestTransactionStore:
    writes_elsewhere = False

    def write(self, request, job: WriteJob) -> None:
        session = request.dbsession
        write_jobs(session.connection(), [job])
        # Core statements bypass the ORM: without this, zope.sqlalchemy rolls the session back.
        mark_changed(session)

    def close(self) -> None:
        pass

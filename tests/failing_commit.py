"""A resource manager for tests whose commit fails: shared by the test apps' plugins, which
may not import one another."""


class FailingCommit:
    """A resource manager whose vote fails: the transaction aborts at commit time."""

    def __init__(self, manager):
        self.transaction_manager = manager

    def tpc_vote(self, transaction):
        raise RuntimeError("disk full")

    def abort(self, transaction):
        pass

    def tpc_begin(self, transaction):
        pass

    def commit(self, transaction):
        pass

    def tpc_finish(self, transaction):
        pass

    def tpc_abort(self, transaction):
        pass

    def sortKey(self):
        return "~failing-commit"

"""Every unit test gets its own empty RECSUITE_HOME: caches, choices and results never touch the checkout."""

import numpy as np
import pytest
import scipy.sparse as sp


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("recsuite-home")
    monkeypatch.setenv("RECSUITE_HOME", str(home))
    monkeypatch.delenv("RECSUITE_RESULTS", raising=False)
    monkeypatch.delenv("RECSUITE_EXPECT", raising=False)
    monkeypatch.delenv("RECSUITE_EXPECT_LOG", raising=False)
    return home


@pytest.fixture
def csr():
    """Build a 0/1 CSR matrix from per-user item lists: ``csr([[1, 3], [], [0]], n_items)``."""

    def build(rows, n_items):
        pairs = [(u, i) for u, items in enumerate(rows) for i in items]
        r, c = zip(*pairs) if pairs else ((), ())
        return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))

    return build

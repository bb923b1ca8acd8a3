"""Every unit test gets its own empty RECSUITE_HOME: caches, choices and results never touch the checkout."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("recsuite-home")
    monkeypatch.setenv("RECSUITE_HOME", str(home))
    monkeypatch.delenv("RECSUITE_RESULTS", raising=False)
    monkeypatch.delenv("RECSUITE_EXPECT", raising=False)
    monkeypatch.delenv("RECSUITE_EXPECT_LOG", raising=False)
    return home

"""recsuite.core.progress.tqdm: TQDM_DISABLE switches every bar off, the widget one included."""

from recsuite.core import progress


def test_tqdm_disable_env(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress.disabled_by_env()
    bar = progress.tqdm(range(3), disable=False)
    assert bar.disable and list(bar) == [0, 1, 2]
    for value in ("", "0", "false", "No"):
        monkeypatch.setenv("TQDM_DISABLE", value)
        assert not progress.disabled_by_env()
    monkeypatch.delenv("TQDM_DISABLE")
    assert progress.tqdm(range(2), disable=True).disable
    # (tqdm reads TQDM_DISABLE once, at import, into its own default: pass disable=False explicitly here)
    with open("/dev/null", "w") as sink:
        assert not progress.tqdm(range(2), disable=False, file=sink).disable

"""Checks of a lesson's numbers against the values measured on other machines and seeds, with tolerances.

A metric of a trained model moves in its last digits from one machine to the next (BLAS and torch kernels,
thread counts) and with the seed, so a lesson never compares such a number as text. It prints it and
checks it against the expected value with a tolerance taken from the measured spread
(``benchmarks/noise_floor.py``, summarised in the README), in the same cell::

    expect = noise.Expect(NOTEBOOK, defaults=dict(TOP_K=10, EPOCHS=30), knobs=globals())
    expect("ALS test NDCG@10", row["ndcg@10"], 0.126, tol=0.004)
    # prints  ALS test NDCG@10: 0.1261 (expected 0.126 ± 0.004)

A value outside its tolerance raises ``ExpectationError`` naming the check, the value and the expectation.
The expectations hold for the defaults of a lesson's parameters cell (any ``SEED``); ``defaults`` names the
knobs they were measured with and ``knobs`` holds the lesson's values (its ``globals()``): when a learner has
changed one of them, a miss is reported, naming the knob, not raised.
``RECSUITE_EXPECT=record`` never raises, and ``RECSUITE_EXPECT_LOG=<file>`` appends every check as one
JSON line: that is how the noise-floor script collects what each check saw under each variant.

Introduced in notebooks/01_data_preprocessing.ipynb
"""

from __future__ import annotations

import json
import math
import os
from decimal import Decimal

import numpy as np

from recsuite.course.choices import as_json

__all__ = ["Expect", "ExpectationError"]


class ExpectationError(AssertionError):
    """A lesson's result is outside the tolerance measured for it."""


def _decimals(x: float) -> int:
    exp = Decimal(repr(float(x))).normalize().as_tuple().exponent
    return max(0, -int(exp))


def _log(record: dict) -> None:
    path = os.environ.get("RECSUITE_EXPECT_LOG")
    if not path:
        return
    line = json.dumps(record, sort_keys=True) + "\n"
    # one write of one short line with O_APPEND: concurrent writers interleave whole lines
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _number(name: str, value, what: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} of check {name!r} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} of check {name!r} must be finite, got {value!r}")
    return value


class Expect:
    """The checks of one lesson: ``expect(name, value, expected, tol)`` and ``expect.choice(name, chosen, expected)``.

    ``enforce=False`` turns a miss into a printed note (use it when the lesson runs with non-default knobs,
    for which the expectations were not measured). Introduced in notebooks/01_data_preprocessing.ipynb
    """

    def __init__(self, notebook: str, enforce: bool = True, defaults: dict | None = None, knobs=None):
        if not isinstance(notebook, str) or not notebook:
            raise TypeError(f"notebook must be a non-empty str, got {notebook!r}")
        if not isinstance(enforce, (bool, np.bool_)):
            raise TypeError(f"enforce must be True or False, got {enforce!r}")
        if (defaults is None) != (knobs is None):
            raise ValueError("give defaults= (the knobs' default values) and knobs= (the lesson's globals()) together")
        self.notebook = notebook
        self.changed: dict = {}
        if defaults is not None:
            if not isinstance(defaults, dict) or not all(isinstance(k, str) for k in defaults):
                raise TypeError(f"defaults must be a dict of knob names to values, got {defaults!r}")
            if not hasattr(knobs, "get"):
                raise TypeError(f"knobs must be a mapping such as globals(), got {type(knobs).__name__}")
            missing = sorted(set(defaults) - set(knobs))
            if missing:
                raise ValueError(f"knobs has no value for {missing}: run the parameters cell first")
            self.changed = {k: knobs[k] for k, v in defaults.items() if as_json(knobs[k]) != as_json(v)}
        self.enforce = bool(enforce) and not self.changed

    @property
    def _why_not(self) -> str:
        if self.changed:
            return "not enforced: " + ", ".join(f"{k} = {v!r}" for k, v in self.changed.items()) + " is not its default"
        return "not enforced: a knob differs from the defaults it was measured with"

    @property
    def _raising(self) -> bool:
        mode = os.environ.get("RECSUITE_EXPECT", "enforce")
        if mode not in ("enforce", "record"):
            raise ValueError(f"RECSUITE_EXPECT must be 'enforce' or 'record', got {mode!r}")
        return self.enforce and mode == "enforce"

    def __call__(self, name: str, value, expected, tol) -> None:
        """Print ``name: value (expected e ± tol)``; raise ``ExpectationError`` when |value − e| > tol."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        v = _number(name, value, "value")
        e = _number(name, expected, "expected")
        t = _number(name, tol, "tol")
        if t < 0:
            raise ValueError(f"tol of check {name!r} must be >= 0, got {tol!r}")
        ok = abs(v - e) <= t + 1e-12 * max(1.0, abs(e))
        digits = max(_decimals(e), _decimals(t)) + 1
        line = f"{name}: {v:.{digits}f} (expected {e:g} ± {t:g})"
        _log({"notebook": self.notebook, "name": name, "value": v, "expected": e, "tol": t, "ok": ok})
        if not ok:
            message = (f"{self.notebook}: {name} is {v:.{digits}f}, outside the expected {e:g} ± {t:g} "
                       f"(off by {v - e:+.{digits}f})")
            if self._raising:
                raise ExpectationError(message + "; the tolerance is the measured noise floor, so this is a "
                                       "real change: find its cause before widening it")
            line += "  <- outside the tolerance" + ("" if self.enforce else f" ({self._why_not})")
        print(line)

    def choice(self, name: str, chosen, expected) -> None:
        """Print the setting a rule chose; raise ``ExpectationError`` when it is not ``expected``."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        for what, v in (("chosen", chosen), ("expected", expected)):
            try:
                as_json(v)
            except (TypeError, ValueError) as err:
                raise type(err)(f"{what} of check {name!r}: {err}") from None
        ok = as_json(chosen) == as_json(expected)
        _log({"notebook": self.notebook, "name": name, "value": as_json(chosen), "expected": as_json(expected),
              "ok": ok})
        line = f"{name}: {as_json(chosen)!r}" + ("" if ok else f" (expected {as_json(expected)!r})")
        if not ok:
            if self._raising:
                raise ExpectationError(f"{self.notebook}: {name} chose {chosen!r}, expected {expected!r}; the text "
                                       "that follows describes the expected choice")
            line += "  <- differs" + ("" if self.enforce else f" ({self._why_not})")
        print(line)

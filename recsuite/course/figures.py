"""The one figure for comparing models: paired differences against a reference, with their intervals and the floor.

Two models' means with separate error bars overlap even when one is better for almost every user; what the
verdict rests on is the *paired* difference. So every comparison figure of the course draws, per comparison,
the difference with its paired 95 % bootstrap interval, a line at 0 and the band of ±``NOISE_FLOOR`` inside
which no difference is called real, coloured by the verdict.

Introduced in notebooks/01_data_preprocessing.ipynb
"""

from __future__ import annotations

from recsuite.core import checks
from recsuite.core.optional import require
from recsuite.evaluation.bootstrap import PairedDifference

__all__ = ["paired_differences", "VERDICT_COLOURS"]

VERDICT_COLOURS = {"higher": "tab:green", "lower": "tab:red", "indistinguishable": "tab:grey"}


def paired_differences(comparisons, ax=None, title: str | None = None, xlabel: str | None = None):
    """Draw each comparison's difference and paired interval as a horizontal bar, top to bottom; return the axes.

    ``comparisons`` maps a name (``"EASE − ALS"``) to a ``PairedDifference``, all absolute or all relative. The
    grey band is ±floor (``PairedDifference.floor``) around 0: a difference inside it, or an interval across 0,
    is "indistinguishable".

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    plt = require("matplotlib.pyplot", "course")
    if not hasattr(comparisons, "items"):
        raise TypeError(f"comparisons must map names to PairedDifference, got {checks.describe(comparisons)}")
    items = list(comparisons.items())
    if not items:
        raise ValueError("comparisons must hold at least one comparison, got none")
    for name, r in items:
        if not isinstance(r, PairedDifference):
            raise TypeError(f"comparisons[{name!r}] must be a PairedDifference, got {checks.describe(r)}")
    kinds = {r.relative for _, r in items}
    if len(kinds) > 1:
        raise ValueError("comparisons mixes relative and absolute differences; draw them on two axes")
    relative = kinds.pop()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.45 * len(items) + 1.2))
    for y, (name, r) in enumerate(items):
        ax.fill_betweenx([y - 0.4, y + 0.4], -r.floor, r.floor, color="0.88", lw=0, zorder=0)
        colour = VERDICT_COLOURS[r.verdict()]
        ax.errorbar(r.diff, y, xerr=[[r.diff - r.lo], [r.hi - r.diff]], fmt="o", color=colour, capsize=3, zorder=2)
    ax.axvline(0, color="black", lw=0.8, zorder=1)
    ax.set_yticks(range(len(items)), [str(name) for name, _ in items])
    ax.set_ylim(len(items) - 0.5, -0.5)
    if relative:
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:+.0%}"))
    ax.set_xlabel(xlabel or ("relative difference" if relative else "difference") + " (paired 95 % interval)")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in VERDICT_COLOURS.items()]
    handles.append(plt.Rectangle((0, 0), 1, 1, color="0.88", label="± noise floor"))
    ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.9)
    if title:
        ax.set_title(title)
    return ax

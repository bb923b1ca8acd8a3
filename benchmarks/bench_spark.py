"""Split + ALS + top-10 + evaluation on Spark (local mode) against implicit, each in a fresh process.

Prints, per log size (multiples of MovieLens-100K), both engines' wall time and peak resident memory and
the ratios Spark / implicit. Usage: ``python benchmarks/bench_spark.py [scale ...]`` (default 1 4 16).
The same measurement, plotted, is section 6 of notebooks/12_spark_scaling.ipynb.
"""

import sys

from recsuite.scale.cost import cost_run


def main(scales=(1, 4, 16)):
    print(f"{'scale':>5} {'interactions':>12} {'implicit s':>10} {'spark s':>8} {'time ratio':>10} "
          f"{'implicit MB':>11} {'spark MB':>9} {'memory ratio':>12}")
    for scale in scales:
        a, b = cost_run("implicit", scale), cost_run("spark", scale)
        print(f"{scale:>5} {a['interactions']:>12,} {a['wall_s']:>10.1f} {b['wall_s']:>8.1f} "
              f"{b['wall_s'] / a['wall_s']:>9.1f}x {a['peak_mb']:>11.0f} {b['peak_mb']:>9.0f} "
              f"{b['peak_mb'] / a['peak_mb']:>11.1f}x")


if __name__ == "__main__":
    main(tuple(int(s) for s in sys.argv[1:]) or (1, 4, 16))

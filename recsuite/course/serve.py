"""The course's served recommender: lesson 05's fused model loaded from the lessons' artefacts on disk, and
``python -m recsuite.course.serve`` (``make serve``), which serves it with ``recsuite.serving.service``.

Introduced in notebooks/11_serving.ipynb
"""

from __future__ import annotations

import argparse
import sys

from recsuite.core import checks
from recsuite.core.optional import require
from recsuite.core.paths import data_home
from recsuite.course import artifacts, choices
from recsuite.data import lists
from recsuite.data.movielens import load_movielens_100k
from recsuite.data.split import load_protocol
from recsuite.models import semantic
from recsuite.serving.service import Service, create_app

_LESSON = {
    "02": "notebooks/02_llm_semantic_features.ipynb",
    "03": "notebooks/03_cf_baselines.ipynb",
    "05": "notebooks/05_fusion.ipynb",
}


class MissingArtefacts(FileNotFoundError):
    """What ``load_service`` needs and did not find, each with the lesson that builds it (``make run`` builds all)."""


# ----------------------------------------------------------------------------------------------- loading


def load_service(seed: int = 0) -> Service:
    """The ``Service`` of lesson 05's fused model on the protocol's test history, from artefacts on disk.

    Reads ``split.load_protocol()``, the choices of notebooks 02 (content setting), 03 (best CF model and
    its parameters) and 05 (blend) for ``seed``, the fused test scores (``artifacts.fused_scores("test")``)
    and the cached item vectors of the chosen template, and computes none of them: when any is missing it
    raises ``MissingArtefacts`` listing every missing one with the lesson that builds it (``make run``
    builds them all). Paths follow ``RECSUITE_HOME`` like every artefact. The text encoder (the packaged
    MiniLM) is loaded on the first free-text request, in about two seconds.

    Introduced in notebooks/11_serving.ipynb
    """
    seed = checks.seed("seed", seed)
    proto = load_protocol()  # rebuilt deterministically from the packaged data in seconds when absent
    missing = []

    def choice(name, what, lesson):
        try:
            return choices.load(name, proto, seed)
        except FileNotFoundError:
            missing.append(f"{what} (choice {name!r}, {choices.path(name, proto, seed)}), built by {_LESSON[lesson]}")
            return None

    content = choice("semantic.content", "the content setting", "02")
    best = choice("cf.best-fast-model", "the best fast CF model", "03")
    params = None if best is None else choice(f"cf.{str(best).lower()}", f"the tuned {best} parameters", "03")
    blend = choice("fusion.blend", "the blend weights", "05")
    items = load_movielens_100k().items
    vectors = scores = None
    if content is not None:  # read by content, never recomputed: a damaged file is reported like a missing one
        try:
            vectors = semantic.item_vectors(content["template"], index=proto.index, items=items, progress=False,
                                            compute=False)
        except FileNotFoundError as err:
            missing.append(f"the item vectors of template {content['template']!r} ({err}), built by {_LESSON['02']}")
    if None in (content, best, params, blend):  # the fused file's name hashes these choices
        missing.append(f"the fused test scores (under {data_home() / 'scores'}; the name depends on the "
                       f"choices above), built by {_LESSON['05']}")
    else:
        try:
            scores = artifacts.fused_scores("test", protocol=proto, seed=seed, compute=False)
        except FileNotFoundError as err:
            missing.append(f"the fused test scores ({err}), built by {_LESSON['05']}")
    if missing:
        raise MissingArtefacts(
            f"the served model needs artefacts that are not built yet for seed {seed} (data home {data_home()}):\n"
            + "\n".join(f"  - {m}" for m in missing)
            + "\nRun `make run` to build them all (every lesson), or run the lessons named above.")

    def encoder(texts):
        return semantic.encode_texts(texts, cache=False, progress=False)

    w = blend["weights"]
    model = (f"notebook 05 fusion, seed {seed}: {w['cf']:g}·{blend['method']}({best}) + "
             f"{w['sem']:g}·{blend['method']}(content: {content['template']}"
             f"{', centred' if content['center'] else ''}, MiniLM), fit on train+valid")
    return Service(proto.index.user_ids, proto.index.item_ids, lists.item_titles(items, proto.index), scores,
                   proto.history("test"), vectors, center=bool(content["center"]), catalogue=proto.catalogue("test"),
                   encoder=encoder, model=model, protocol=proto)


def main(argv=None) -> int:
    """``python -m recsuite.course.serve [--host H] [--port P] [--seed S]``: load the service, then serve it with uvicorn.

    The artefacts are loaded before the port is bound, so a missing one stops the command at once with
    ``MissingArtefacts``' message (which lesson builds it; ``make run`` builds all) and exit status 1.

    Introduced in notebooks/11_serving.ipynb
    """
    parser = argparse.ArgumentParser(prog="python -m recsuite.course.serve",
                                     description="Serve lesson 05's fused recommender over HTTP (FastAPI + uvicorn).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    parser.add_argument("--seed", type=int, default=0, help="the lessons' SEED whose artefacts to serve (default: 0)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {args.port}")
    if args.seed < 0:
        parser.error(f"--seed must be a non-negative int, got {args.seed}")
    try:
        service = load_service(seed=args.seed)
    except MissingArtefacts as e:
        print(f"recsuite.course.serve: {e}", file=sys.stderr)
        return 1
    uvicorn = require("uvicorn", "serve")

    print(f"recsuite.course.serve: {service.model}; {service.n_users} users, {service.n_items} items", file=sys.stderr)
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scale-out with Ray: the same strategies, storage and run folder as a local search; measurements in Ray tasks.

The driver owns the study and its sampler, exactly as a local search does (asks and tells
happen here, through Optuna's public ``ask``/``tell``); Ray runs the measurements, on this
machine or a cluster (``config.address``), with ``cpus_per_trial``/``gpus_per_trial`` each:

- **instant evaluators** (surrogates, tables: :func:`mnas.search.runner.is_instant`): the local
  fast path's rounds (journal storage, one write per round), each round's architectures split
  into one task per worker, *many architectures per task*. A Ray task costs milliseconds, so
  rounds are at least :data:`MIN_RAY_ROUND` architectures (``--batch`` to change); for evolution
  and TPE that means parents drawn from a population refreshed once per round, as with parallel
  workers in Real et al.
- **expensive evaluators** (training, supernet scoring): *one trial per task*, as many in flight
  as the cluster has workers, each trial RUNNING in the SQLite/RDB storage while it is measured.

Each worker builds the space, latency predictor and evaluator from the saved settings once per
process (or receives the objects a caller injected). Resume: the driver is the only writer of its
study, so trials a dead driver left RUNNING are failed and re-queued with the same choices
(``study.tell(number, state=FAIL)`` and ``study.enqueue_trial``).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from mnas.errors import MnasError
from mnas.search.config import SearchConfig
from mnas.search.runner import (
    METRICS,
    Components,
    build_components,
    make_sampler,
    measure_many,
    open_storage,
    resolve_storage,
    round_size,
    run_rounds,
    storage_url,
)
from mnas.search.strategies.base import distributions, sample_from_params

MIN_RAY_ROUND = 64  # architectures per round on Ray with an instant evaluator (unless --batch says otherwise)


@functools.lru_cache(maxsize=4)
def _worker_components(settings: str, run_dir: str) -> Components:
    return build_components(SearchConfig.from_dict(json.loads(settings)), Path(run_dir))


def _measure_task(samples: list[dict], components: Components | None, settings: str, run_dir: str) -> list[dict]:
    """One Ray task: measure ``samples`` (one or many) with the injected or the worker's own components."""
    comp = components if components is not None else _worker_components(settings, run_dir)
    return measure_many(comp, samples)


def _requeue_orphans(study) -> int:
    from optuna.trial import TrialState

    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in orphans:
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
    return len(orphans)


def workers(config: SearchConfig) -> int:
    """How many measurements the cluster runs at once with ``cpus_per_trial``/``gpus_per_trial`` each."""
    import ray

    res = ray.cluster_resources()
    n = int(res.get("CPU", 1) // max(config.cpus_per_trial, 1e-9)) if config.cpus_per_trial > 0 else 1 << 10
    if config.gpus_per_trial > 0:
        n = min(n, int(res.get("GPU", 0) // config.gpus_per_trial))
        if n < 1:
            raise MnasError(f"--gpus-per-trial {config.gpus_per_trial:g}: the Ray cluster has {res.get('GPU', 0):g} GPU(s)")
    return max(1, n)


def run_ray(config: SearchConfig, comp: Components, run_dir: Path, *, space=None, predictor=None,
            evaluator=None, progress: bool = True, log=print, resume: bool = False):
    """Run the remaining trials of ``config`` with measurements on Ray (a local runtime or ``config.address``)."""
    try:
        import ray
    except ImportError:
        raise MnasError("--backend ray needs Ray: pip install 'ray[default]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=config.address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise MnasError(f"cannot reach a Ray cluster at {config.address!r}: {str(e).splitlines()[0]}") from None
    injected = any(x is not None for x in (space, predictor, evaluator))
    comp_ref = ray.put(comp) if injected else None
    settings = json.dumps(config.to_dict(), sort_keys=True)
    task = ray.remote(_measure_task).options(num_cpus=config.cpus_per_trial, num_gpus=config.gpus_per_trial)
    n_workers = workers(config)
    kind, where = resolve_storage(config, run_dir, comp, resume)

    if kind != "rdb":  # instant evaluator: rounds, many architectures per task
        def ray_measure(_comp, samples: list[dict]) -> list[dict]:
            per = -(-len(samples) // n_workers)
            refs = [task.remote(samples[i:i + per], comp_ref, settings, str(run_dir.resolve()))
                    for i in range(0, len(samples), per)]
            return [row for part in ray.get(refs) for row in part]

        k = config.batch or max(round_size(config), MIN_RAY_ROUND)
        return run_rounds(config, comp, kind, where, resume, progress, log, measure=ray_measure, k=k)
    return _run_tasks(config, comp, run_dir, progress, log, task, comp_ref, settings, n_workers)


def _run_tasks(config, comp, run_dir, progress, log, task, comp_ref, settings, n_workers):
    """Expensive evaluators: one trial per Ray task, ``n_workers`` in flight, each RUNNING in storage meanwhile."""
    import optuna
    import ray
    from optuna.trial import TrialState
    from tqdm import tqdm

    storage = open_storage(config, run_dir, heartbeat=False)
    study = optuna.create_study(storage=storage, study_name=config.study_name, directions=comp.reward.directions,
                                load_if_exists=True)
    requeued = _requeue_orphans(study)
    if requeued:
        log(f"re-queued {requeued} trial(s) left running by the previous driver")
    study.sampler = make_sampler(config, comp, existing=len(study.get_trials(deepcopy=False)))
    choices = comp.space.choices()
    dists = distributions(choices)
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    bar = tqdm(total=config.trials, initial=min(done, config.trials), desc="search (ray)", unit="trial",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    pending: dict = {}
    errors: list[str] = []
    run = str(Path(run_dir).resolve())
    try:
        while True:
            while len(pending) < n_workers and done + len(pending) < config.trials and not errors:
                t = study.ask(dists)
                pending[task.remote([sample_from_params(choices, t.params)], comp_ref, settings, run)] = t
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                t = pending.pop(ref)
                try:
                    row = ray.get(ref)[0]
                except Exception as e:  # the measurement failed on the worker
                    study.tell(t, state=TrialState.FAIL)
                    errors.append(str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__)
                    continue
                t.set_user_attr(METRICS, row)
                study.tell(t, comp.reward.objectives(row["accuracy"], row["latency_ms"]))
                done += 1
                bar.update(1)
    except BaseException:
        for ref, t in pending.items():  # interrupted: the trials in flight are failed, never left RUNNING
            ray.cancel(ref, force=True)
            study.tell(t, state=TrialState.FAIL)
        raise
    finally:
        bar.close()
    if errors:
        raise MnasError(f"{len(errors)} Ray trial(s) failed (first: {errors[0]}); finished trials are stored: fix the "
                        f"cause and continue with `mnas search --resume {run_dir}`")
    return optuna.load_study(study_name=config.study_name, storage=storage_url(config, run_dir))

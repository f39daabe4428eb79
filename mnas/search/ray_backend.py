"""Scale-out: the same search through Ray Tune, the same sampler, the same trial storage.

``ray.tune.search.optuna.OptunaSearch`` wraps the strategy's sampler and writes
every trial to the run's Optuna storage (so ``trials.csv``, ``--resume`` and the
plots work as for a local run); Ray schedules the trials over the cluster with
``cpus_per_trial``/``gpus_per_trial`` resources. Each worker builds the space,
latency predictor and evaluator from the saved settings once per process.

Resume: the Ray driver is the only writer of its study, so trials it left
RUNNING when it died are marked failed and re-queued with the same choices.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from mnas.errors import MnasError
from mnas.search.config import SearchConfig
from mnas.search.runner import (
    METRICS,
    Components,
    build_components,
    make_sampler,
    measure,
    open_storage,
    storage_url,
)
from mnas.search.strategies.base import distributions, sample_from_params

ROW_KEYS = ("accuracy", "latency_ms", "madds", "params", "reward", "loss", "eval_cost_s", "code", "arch")


@functools.lru_cache(maxsize=4)
def _worker_components(settings: str, run_dir: str) -> Components:
    return build_components(SearchConfig.from_dict(json.loads(settings)), Path(run_dir))


def _trial(params: dict, components: Components | None = None, settings: str = "{}", run_dir: str = "") -> None:
    """One Ray trial: decode the sampled choices, measure, report."""
    from ray import tune

    comp = components if components is not None else _worker_components(settings, run_dir)
    sample = sample_from_params(comp.space.choices(), params)
    tune.report(measure(comp, sample))


def _requeue_orphans(study) -> int:
    from optuna.trial import TrialState

    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in orphans:
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
    return len(orphans)


def run_ray(config: SearchConfig, comp: Components, run_dir: Path, *, space=None, predictor=None,
            evaluator=None, progress: bool = True, log=print):
    """Run the remaining trials of ``config`` on Ray (a local runtime or ``config.address``)."""
    try:
        import ray
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise MnasError("--backend ray needs Ray Tune: pip install 'ray[tune]'") from None
    import optuna
    from optuna.trial import TrialState
    from tqdm import tqdm

    if not ray.is_initialized():
        try:
            ray.init(address=config.address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise MnasError(f"cannot reach a Ray cluster at {config.address!r}: {str(e).splitlines()[0]}") from None
    storage = open_storage(config, run_dir, heartbeat=False)
    directions = comp.reward.directions
    study = optuna.create_study(storage=storage, study_name=config.study_name, directions=directions,
                                load_if_exists=True)
    requeued = _requeue_orphans(study)
    sampler = make_sampler(config, comp, existing=len(study.get_trials(deepcopy=False)))
    if requeued:
        log(f"re-queued {requeued} trial(s) left running by the previous driver")
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    remaining = config.trials - done
    if remaining <= 0:
        return study

    multi = comp.reward.multi_objective
    metric = ["accuracy", "latency_ms"] if multi else "reward"
    mode = ["max", "min"] if multi else "max"

    class RecordingOptunaSearch(OptunaSearch):
        """OptunaSearch that also stores each trial's measured row (accuracy, latency, …)."""

        def on_trial_complete(self, trial_id, result=None, error=False):
            if result and trial_id in self._ot_trials:
                row = {k: result[k] for k in ROW_KEYS if k in result}
                self._ot_trials[trial_id].set_user_attr(METRICS, row)
            super().on_trial_complete(trial_id, result, error)

    searcher = RecordingOptunaSearch(space=distributions(comp.space.choices()), metric=metric, mode=mode,
                                     sampler=sampler, study_name=config.study_name, storage=storage)
    injected = any(x is not None for x in (space, predictor, evaluator))
    trainable = tune.with_parameters(
        _trial,
        components=comp if injected else None,
        settings=json.dumps(config.to_dict(), sort_keys=True),
        run_dir=str(Path(run_dir).resolve()),
    )
    trainable = tune.with_resources(trainable, {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial})
    bar = tqdm(total=config.trials, initial=done, desc="search (ray)", unit="trial", disable=not progress)

    class Progress(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            bar.update(1)

    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining),
        run_config=tune.RunConfig(name="ray", storage_path=str((run_dir / "ray").resolve()), verbose=0,
                                  callbacks=[Progress()]),
    )
    try:
        results = tuner.fit()
    finally:
        bar.close()
    if results.errors:
        first = str(results.errors[0]).strip().splitlines()[-1]
        raise MnasError(f"{len(results.errors)} of {remaining} Ray trials failed (first: {first}); finished trials "
                        f"are stored: fix the cause and continue with `mnas search --resume {run_dir}`")
    return optuna.load_study(study_name=config.study_name, storage=storage_url(config, run_dir), sampler=sampler)


"""The ``search:`` block of a suite: what to search (training fields and method fields), for how long, how.

A key of ``space`` is a training field (``lr``, ``epochs``, ``warmup_ratio`` …) or ``method.<field>`` for a
field of the method's own parameters (``method.r`` for LoRA). Trials suggest a value per key; the best
trial's values are then trained for every seed of the suite.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import optuna
from pydantic import Field, model_validator

from harness.core.config import Strict, tagged_union

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
METHOD_PREFIX = "method."


class _Range(Strict):
    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class FloatParam(_Range):
    type: Literal["float"]
    low: float
    high: float
    step: PositiveFloat | None = None

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step)


class LogFloatParam(_Range):
    type: Literal["log_float"]
    low: PositiveFloat
    high: PositiveFloat

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=True)


class IntParam(_Range):
    type: Literal["int"]
    low: int
    high: int
    step: PositiveInt = 1
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)


class CategoricalParam(Strict):
    type: Literal["categorical"]
    choices: Annotated[list[str | int | float | bool], Field(min_length=2)]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, self.choices)


Param = tagged_union([FloatParam, LogFloatParam, IntParam, CategoricalParam], "type")


def extremes(param: Any) -> list[Any]:
    """The values a parameter can take at its edges: each must be a valid setting of its field."""
    return list(param.choices) if isinstance(param, CategoricalParam) else [param.low, param.high]


class Search(Strict):
    """How to search one cell's hyperparameters (one Optuna study per cell without its seed)."""

    space: Annotated[dict[str, Param], Field(min_length=1)]
    trials: PositiveInt | None = None  # finished (complete or pruned) trials per study
    timeout_minutes: PositiveFloat | None = None  # or a time budget per study, summed over resumed runs
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = 0  # seeds the sampler and every trial's training (the suite's seeds are for the final runs)
    pruner: Literal["median", "hyperband", "none"] = "median"
    metric: str | None = None  # a validation metric of the task; default its headline (accuracy, f1)
    direction: Literal["maximize", "minimize"] = "maximize"
    storage: str | None = None  # an Optuna RDB URL or a journal file path; default results/<suite>/optuna.db
    heartbeat_seconds: PositiveInt = 10  # a trial silent for 3 heartbeats is failed and retried

    @model_validator(mode="after")
    def _has_budget(self) -> Search:
        if self.trials is None and self.timeout_minutes is None:
            raise ValueError("give trials, timeout_minutes or both")
        return self

    @property
    def grace_seconds(self) -> int:
        """How long a running trial may stay silent before it counts as dead."""
        return 3 * self.heartbeat_seconds

    def identity(self) -> dict[str, Any]:
        """What changes the outcome (not where the study is stored or how often it beats)."""
        return self.model_dump(mode="json", exclude={"storage", "heartbeat_seconds"})

    def sampler_for(self, trial_number: int) -> optuna.samplers.BaseSampler:
        """The sampler of one trial, seeded by (seed, trial number): an uninterrupted study is reproducible,
        and a resumed one does not replay the suggestions its first process already made."""
        seed = int(np.random.SeedSequence([self.seed, trial_number]).generate_state(1)[0])
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return TrialSeededSampler(self.sampler_for)

    def pruner_for(self) -> optuna.pruners.BasePruner:
        """Pruners see one value per validation (per epoch unless ``eval_every`` is set): median stops a trial
        whose value at its n-th validation is below the median of earlier trials' n-th (once 3 trials have
        finished); hyperband treats validations as the resource."""
        if self.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
        if self.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
        return optuna.pruners.NopPruner()

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {name: param.suggest(trial, name) for name, param in self.space.items()}


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Delegates each trial to ``sampler_for(draw)``, ``draw`` being the trial's number less the earlier trials
    that are retries (a retry draws as the trial it retries). The number is the storage's, handed out
    atomically, so processes sharing a study (Dask workers) never seed two trials alike, whatever order they ask
    in; and a study interrupted and resumed draws the parameters of one that ran straight through."""

    def __init__(self, sampler_for: Any) -> None:
        self.sampler_for = sampler_for
        self.current: optuna.samplers.BaseSampler = sampler_for(0)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        retries = [t.number for t in study.get_trials(deepcopy=False) if "retry_history" in t.system_attrs]
        first = trial.system_attrs.get("retry_history", [trial.number])[0]  # a retry draws as the trial it retries
        self.current = self.sampler_for(first - sum(n < first for n in retries))
        self.current.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        return self.current.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, space: dict) -> dict[str, Any]:
        return self.current.sample_relative(study, trial, space)

    def sample_independent(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, name: str, distribution: Any
    ) -> Any:
        return self.current.sample_independent(study, trial, name, distribution)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: Any, values: Any) -> None:
        self.current.after_trial(study, trial, state, values)

"""Actor pools for steps whose ``concurrency`` is unset: sized to the machine or cluster the job runs on.

Ray-free: the runner asks Ray for the cluster's CPU and GPU slots after connecting and hands them over as a
:class:`Machine`; ``lakelabel plan`` sizes for the local Ray a run would start on this machine. The rules:

- a step with ``concurrency`` keeps it;
- a step that wants a GPU, on a cluster with GPUs: one actor per GPU (``num_gpus`` per actor), the GPUs left by
  the steps that set their pools shared among the steps that did not;
- any other step: one single-threaded actor per CPU slot left after reads and writes (``IO_SLOTS``), the steps
  with set pools and the GPU steps' actors; several such steps share those slots (a step that decodes media ahead
  of its model counts its preparing actors too), so the pools never ask for more than the cluster has;
- never more actors than the job has batches of ``MIN_BATCH_ROWS`` rows: a small job does not load its model on
  every core.

Example::

    pools = size_pools(spec.steps, operators, Machine.local(cores=2, gpus=0), rows=12_000)
    pools[0].range, pools[0].reason   # ('2', 'one actor per CPU slot left after reads and writes: 2 of 3')
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakelabel.jobs.blocks import MIN_BATCH_ROWS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lakelabel.jobs.spec import StepSpec
    from lakelabel.operators import Operator

IO_SLOTS = 1
"""CPU slots kept for reads and staging (a quarter slot per task, up to four at a time)."""


@dataclass(frozen=True, kw_only=True)
class Machine:
    """The CPU and GPU slots a job's pools are sized for, and a label saying where they come from."""

    cpus: float
    gpus: float
    label: str

    @classmethod
    def local(cls, *, cores: int | None = None, gpus: int | None = None) -> Machine:
        """The local Ray lakelabel starts on this machine: one CPU slot per core plus ``IO_SLOTS``."""
        cores = cores if cores is not None else os.cpu_count() or 1
        if gpus is None:
            import torch  # noqa: PLC0415 - the operators import it anyway; only to count this machine's GPUs

            gpus = torch.cuda.device_count()
        label = f"this machine: a local Ray of {cores + IO_SLOTS} CPU slots ({cores} cores + {IO_SLOTS} for I/O)"
        return cls(cpus=cores + IO_SLOTS, gpus=gpus, label=label + (f", {gpus} GPU(s)" if gpus else ""))

    @classmethod
    def of_cluster(cls, cpus: float, gpus: float, *, nodes: int, local: bool, address: str | None) -> Machine:
        """A connected Ray's slots (``address``: ``RAY_ADDRESS``; ``local``: its one node is this machine).

        A Ray of this machine alone counts at most one slot per core plus ``IO_SLOTS``, however many slots it was
        started with: more single-threaded actors than cores would only take turns on them.
        """
        label = f"the Ray cluster at {address}" if address else "the local Ray"
        label += f": {cpus:g} CPU slot(s)" + (f", {gpus:g} GPU(s)" if gpus else "") + f" on {nodes} node(s)"
        cores = (os.cpu_count() or 1) + IO_SLOTS
        if local and cpus > cores:
            label += f", counted as {cores} (this machine's {cores - IO_SLOTS} cores + {IO_SLOTS} for I/O)"
            cpus = cores
        return cls(cpus=cpus, gpus=gpus, label=label)


@dataclass(frozen=True, kw_only=True)
class Pool:
    """One step's model actors: ``low``..``high`` actors with ``cpus`` and ``gpus`` each, and why."""

    low: int
    high: int
    cpus: float
    gpus: float
    reason: str

    @property
    def range(self) -> str:
        """``N`` for a fixed pool, ``low..high`` for an autoscaling one."""
        return str(self.high) if self.low == self.high else f"{self.low}..{self.high}"


def _preparer_cpus(operator: Operator) -> float:
    preparer = operator.preparer()
    return preparer.resources().num_cpus if preparer is not None else 0.0


def size_pools(steps: Sequence[StepSpec], operators: Sequence[Operator], machine: Machine, *, rows: int) -> list[Pool]:
    """The model pool of each step on ``machine`` for a job of ``rows`` rows (see the module's rules)."""
    pairs = list(zip(steps, operators, strict=True))
    cpus = [step.num_cpus if step.num_cpus is not None else op.resources().num_cpus for step, op in pairs]
    gpus = [step.num_gpus if step.num_gpus is not None else op.resources().num_gpus for step, op in pairs]
    gpus = [wanted if machine.gpus > 0 else 0.0 for wanted in gpus]
    # CPUs one actor holds: its own, plus a preparing actor's where the step decodes media (that pool grows alike).
    holds = [max(cpus[i] + _preparer_cpus(op), 1e-3) for i, (_, op) in enumerate(pairs)]
    pools: dict[int, Pool] = {}
    gpus_left, cpus_left = machine.gpus, machine.cpus - IO_SLOTS
    for i, (step, _) in enumerate(pairs):
        if step.concurrency is not None:
            low, high = step.concurrency
            pools[i] = Pool(low=low, high=high, cpus=cpus[i], gpus=gpus[i], reason="set by the step's concurrency")
            gpus_left -= high * gpus[i]
            cpus_left -= high * holds[i]
    cap = max(1, -(-rows // MIN_BATCH_ROWS))
    cap_note = f"; capped at {cap}: the job's {rows} row(s) make {cap} batch(es) of {MIN_BATCH_ROWS}"
    gpu_steps = [i for i in range(len(pairs)) if i not in pools and gpus[i] > 0]
    for i in gpu_steps:
        free = max(gpus_left, 0)
        actors = max(1, math.floor(free / len(gpu_steps) / gpus[i] + 1e-9))
        reason = f"one actor per {gpus[i]:g} GPU: {free:g} GPU(s) free" + _shared(len(gpu_steps), "GPU steps")
        pools[i] = Pool(low=min(actors, cap), high=min(actors, cap), cpus=cpus[i], gpus=gpus[i],
                        reason=reason + (cap_note if actors > cap else ""))  # fmt: skip
        cpus_left -= pools[i].high * holds[i]
    cpu_steps = [i for i in range(len(pairs)) if i not in pools]
    for i in cpu_steps:
        free = max(cpus_left, 0)
        actors = max(1, math.floor(free / len(cpu_steps) / holds[i] + 1e-9))
        if free < holds[i]:
            reason = f"the other pools and I/O hold the {machine.cpus:g} CPU slot(s); one actor"
        else:
            per = "CPU slot" if holds[i] == 1 else f"{holds[i]:g} CPU slots"
            reason = f"one actor per {per} left after reads and writes: {free:g} of {machine.cpus:g}"
            reason += _shared(len(cpu_steps), "steps")
            reason += ", each actor with a preparing actor beside it" if _preparer_cpus(operators[i]) else ""
        pools[i] = Pool(low=min(actors, cap), high=min(actors, cap), cpus=cpus[i], gpus=0.0,
                        reason=reason + (cap_note if actors > cap else ""))  # fmt: skip
    return [pools[i] for i in range(len(pairs))]


def _shared(count: int, what: str) -> str:
    return f", shared by {count} {what}" if count > 1 else ""


def cpu_slots(pools: Sequence[Pool], operators: Sequence[Operator]) -> int:
    """CPU slots the job needs to make progress: every pool at its minimum, the preparers, one for reads/writes."""
    slots = IO_SLOTS
    for pool, operator in zip(pools, operators, strict=True):
        slots += pool.low * math.ceil(pool.cpus)
        slots += math.ceil(_preparer_cpus(operator))
    return slots


def annotate_pool(
    operator: Operator,
    *,
    cpus: float,
    gpus: float,
    concurrency: int | tuple[int, int] | None,
    num_gpus: float | None,
    num_cpus: float | None,
) -> tuple[int, int, float, float]:
    """``lakelabel.annotate``'s pool on a Ray of ``cpus`` CPU and ``gpus`` GPU slots: ``(min, max, gpus, threads)``.

    Its actors hold no CPU slot, so the rest of a user's pipeline always finds one: their number is bounded instead,
    by ``concurrency`` or else one up to one less than the CPU slots (the GPUs over ``num_gpus`` for a GPU step).
    Each actor runs its model on ``num_cpus`` threads (default: the operator's).
    """
    wants = operator.resources()
    per_actor = num_gpus if num_gpus is not None else (wants.num_gpus if gpus and operator.uses_gpu else 0.0)
    threads = num_cpus or wants.num_cpus
    if concurrency is None:
        limit = gpus / per_actor if per_actor else (cpus - 1) / threads
        return 1, max(1, int(limit)), per_actor, threads
    if isinstance(concurrency, int):
        return concurrency, concurrency, per_actor, threads
    return concurrency[0], concurrency[1], per_actor, threads

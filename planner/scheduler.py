"""The iteration-level scheduler of one serving worker, shared by the single-worker simulation
(:func:`planner.simulation.simulate`) and the deployment simulation (:mod:`planner.simulate_fleet`).

:class:`Costs` prices one iteration (decode steps from :func:`planner.cost.serving.decode_step_s`, prefill from
:func:`planner.cost.serving.prefill_s` x the engine's fitted ``prefill_mix``), memoised on coarse buckets so a
goodput walk's many simulations share them. :class:`Replica` is one worker's scheduler state in one role:

* ``aggregated``: every iteration each running request produces one token and the waiting prompts are
  prefilled FIFO in chunks, up to ``MAX_BATCHED_TOKENS`` less the running decodes, a prompt admitted only while
  the KV cache holds its prompt and output; the iteration takes the decode step at the running batch and mean
  context plus the chunk's prefill;
* ``prefill``: prefill-only iterations (prompts FIFO in chunks, admitted while their KV fits); a completed
  prompt goes to the run's ``outbox`` (its KV then moves to a decode replica);
* ``decode``: admits landed requests FIFO while their KV fits and decodes one token per iteration.

``advance(until, limit)`` runs the iterations that start before ``until``; more than ``limit`` iterations raise
:class:`IterationBound` (each caller says what the bound was). The run it belongs to (``sim``) holds the
per-request arrays: ``isl``, ``osl``, ``first``, ``finish``, ``outbox`` and the ``iterations`` counter.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import Any

from .cost.serving import BACKENDS, MAX_BATCHED_TOKENS, ServingPlan, decode_step_s, prefill_s
from .specs.hardware import System
from .specs.model import ModelSpec


class IterationBound(Exception):
    """A replica passed its iteration limit (the caller turns it into its own one-line error)."""


class Costs:
    """Iteration costs of one worker, memoised on coarse buckets."""

    def __init__(self, model: ModelSpec, system: System, plan: ServingPlan) -> None:
        self.model, self.system, self.plan = model, system, plan
        self.consts = BACKENDS[plan.backend]
        self._dec: dict[tuple[int, int], float] = {}
        self._pf: dict[int, float] = {}
        self.iterations = 0  # scheduler iterations simulated with these costs (the goodput walk's work bound)

    def decode(self, batch: int, ctx: float) -> float:
        b = batch if batch <= 64 else 8 * math.ceil(batch / 8)
        c = max(256, 256 * round(ctx / 256))
        key = (b, c)
        if key not in self._dec:
            self._dec[key] = decode_step_s(self.model, self.system, self.plan, b, c)["step"]
        return self._dec[key]

    def prefill(self, tokens: int) -> float:
        if tokens <= 0:
            return 0.0
        t = max(256, 256 * math.ceil(tokens / 256))
        if t not in self._pf:
            self._pf[t] = prefill_s(self.model, self.system, self.plan, 1, t) / t
        return self._pf[t] * tokens * self.consts.prefill_mix


class Replica:
    """One worker's scheduler state, advanced iteration by iteration up to a time (see the module docstring).

    ``t`` is the start of the next iteration (the end of the last one); ``advance(until)`` runs the
    iterations that start before ``until``. Per-request times go to the shared ``first`` / ``finish`` lists."""

    __slots__ = ("pool", "role", "costs", "kv_cap", "t", "it", "waiting", "prefill_left", "running", "start_it",
                 "sum_isl", "sum_start", "kv_used", "outstanding", "last_done", "busy", "sim")

    def __init__(self, pool: int, role: str, costs: Costs, kv_cap: int, sim: Any) -> None:
        self.pool, self.role, self.costs, self.kv_cap, self.sim = pool, role, costs, kv_cap, sim
        self.t = 0.0
        self.it = 0
        self.waiting: deque[int] = deque()
        self.prefill_left: dict[int, int] = {}
        self.running: list[tuple[int, int]] = []  # heap of (iteration at which it finishes, request)
        self.start_it: dict[int, int] = {}
        self.sum_isl = self.sum_start = 0  # for the mean context: sum(isl + it - start)
        self.kv_used = 0
        self.outstanding = 0  # requests routed here and not finished here
        self.last_done = 0  # of them, those that finished at the end of the last iteration (at t)
        self.busy = 0.0

    def in_flight_at(self, now: float) -> int:
        """Requests in flight at ``now`` (the replica has run the iterations starting before ``now``; those that
        finished with an iteration ending after ``now`` are still in flight then)."""
        return self.outstanding + (self.last_done if self.t > now else 0)

    def add(self, i: int, now: float) -> None:
        if not self.waiting and not self.running and self.t < now:
            self.t = now  # an idle worker starts with the arrival
        self.waiting.append(i)

    def advance(self, until: float, limit: int) -> None:
        if self.role == "aggregated":
            self._advance_aggregated(until, limit)
        elif self.role == "prefill":
            self._advance_prefill(until, limit)
        else:
            self._advance_decode(until, limit)

    def _advance_aggregated(self, until: float, limit: int) -> None:
        # continuous batching with chunked prefill (planner.simulation's module docstring)
        sim = self.sim
        isl, osl, first, finish = sim.isl, sim.osl, sim.first, sim.finish
        costs, kv_cap = self.costs, self.kv_cap
        waiting, prefill_left, running, start_it = self.waiting, self.prefill_left, self.running, self.start_it
        t, it, kv_used, sum_isl, sum_start = self.t, self.it, self.kv_used, self.sum_isl, self.sum_start
        done = fin = 0
        t0 = t
        try:
            while t < until and (waiting or running):
                if it >= limit:
                    raise IterationBound
                budget = max(0, MAX_BATCHED_TOKENS - len(running))
                chunk = 0
                done_prefill = []
                for i in waiting:
                    if budget <= 0:
                        break
                    if i not in prefill_left:
                        need = isl[i] + osl[i]
                        if kv_used + need > kv_cap and (running or prefill_left):
                            break
                        prefill_left[i] = isl[i]
                        kv_used += need
                    take = min(budget, prefill_left[i])
                    prefill_left[i] -= take
                    budget -= take
                    chunk += take
                    if prefill_left[i] == 0:
                        done_prefill.append(i)
                n_dec = len(running)
                ctx = (sum_isl + n_dec * it - sum_start) / n_dec if n_dec else 0.0
                dt = (costs.decode(n_dec, ctx) if n_dec else 0.0) + costs.prefill(chunk)
                if dt <= 0:
                    dt = 1e-4
                t += dt
                it += 1
                done = 0
                while running and running[0][0] <= it:
                    _, i = heapq.heappop(running)
                    finish[i] = t
                    sum_isl -= isl[i]
                    sum_start -= start_it.pop(i)
                    kv_used -= isl[i] + osl[i]
                    done += 1
                for i in done_prefill:
                    waiting.popleft()
                    del prefill_left[i]
                    first[i] = t
                    if osl[i] <= 1:
                        finish[i] = t
                        kv_used -= isl[i] + osl[i]
                        done += 1
                        continue
                    start_it[i] = it
                    sum_isl += isl[i]
                    sum_start += it
                    heapq.heappush(running, (it + osl[i] - 1, i))
                fin += done
        finally:
            self._store(t, it, kv_used, sum_isl, sum_start, fin, done if t > t0 else self.last_done, t - t0)

    def _advance_prefill(self, until: float, limit: int) -> None:
        sim = self.sim
        isl, outbox = sim.isl, sim.outbox
        costs, kv_cap = self.costs, self.kv_cap
        waiting, prefill_left = self.waiting, self.prefill_left
        t, it, kv_used = self.t, self.it, self.kv_used
        done = fin = 0
        t0 = t
        try:
            while t < until and waiting:
                if it >= limit:
                    raise IterationBound
                budget = MAX_BATCHED_TOKENS
                chunk = 0
                done_prefill = []
                for i in waiting:
                    if budget <= 0:
                        break
                    if i not in prefill_left:
                        need = isl[i]
                        if kv_used + need > kv_cap and prefill_left:
                            break
                        prefill_left[i] = need
                        kv_used += need
                    take = min(budget, prefill_left[i])
                    prefill_left[i] -= take
                    budget -= take
                    chunk += take
                    if prefill_left[i] == 0:
                        done_prefill.append(i)
                dt = costs.prefill(chunk)
                if dt <= 0:
                    dt = 1e-4
                t += dt
                it += 1
                for i in done_prefill:
                    waiting.popleft()
                    del prefill_left[i]
                    kv_used -= isl[i]
                    outbox.append((t, i, self))
                done = len(done_prefill)
                fin += done
        finally:
            self._store(t, it, kv_used, 0, 0, fin, done if t > t0 else self.last_done, t - t0)

    def _advance_decode(self, until: float, limit: int) -> None:
        sim = self.sim
        isl, osl, finish = sim.isl, sim.osl, sim.finish
        costs, kv_cap = self.costs, self.kv_cap
        waiting, running, start_it = self.waiting, self.running, self.start_it
        t, it, kv_used, sum_isl, sum_start = self.t, self.it, self.kv_used, self.sum_isl, self.sum_start
        done = fin = 0
        t0 = t
        try:
            while t < until and (waiting or running):
                if it >= limit:
                    raise IterationBound
                while waiting:  # admit landed requests FIFO while their KV fits
                    i = waiting[0]
                    need = isl[i] + osl[i]
                    if kv_used + need > kv_cap and running:
                        break
                    waiting.popleft()
                    kv_used += need
                    start_it[i] = it  # decodes in this iteration at context isl
                    sum_isl += isl[i]
                    sum_start += it
                    heapq.heappush(running, (it + osl[i] - 1, i))
                n_dec = len(running)
                dt = costs.decode(n_dec, (sum_isl + n_dec * it - sum_start) / n_dec)
                if dt <= 0:
                    dt = 1e-4
                t += dt
                it += 1
                done = 0
                while running and running[0][0] <= it:
                    _, i = heapq.heappop(running)
                    finish[i] = t
                    sum_isl -= isl[i]
                    sum_start -= start_it.pop(i)
                    kv_used -= isl[i] + osl[i]
                    done += 1
                fin += done
        finally:
            self._store(t, it, kv_used, sum_isl, sum_start, fin, done if t > t0 else self.last_done, t - t0)

    def _store(self, t: float, it: int, kv_used: int, sum_isl: int, sum_start: int, finished: int,
               last_done: int, busy: float) -> None:
        self.sim.iterations += it - self.it
        self.outstanding -= finished
        self.t, self.it, self.kv_used, self.sum_isl, self.sum_start = t, it, kv_used, sum_isl, sum_start
        self.last_done = last_done
        self.busy += busy


__all__ = ["Costs", "IterationBound", "Replica"]

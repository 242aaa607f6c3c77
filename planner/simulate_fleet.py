"""Traffic simulation of a deployment: replicas of several GPU types behind a router, aggregated or
disaggregated into prefill and decode pools; TTFT / TPOT percentiles and SLO attainment per pool.

Each replica (one serving worker) runs the iteration-level continuous-batching scheduler of
:mod:`planner.scheduler` that :func:`planner.simulation.simulate` runs, with the same costs
(:class:`planner.scheduler.Costs`: decode steps from
:func:`planner.cost.serving.decode_step_s`, prefill from :func:`planner.cost.serving.prefill_s` x the engine's
fitted ``prefill_mix``), the same chunked prefill within ``MAX_BATCHED_TOKENS`` and the same KV admission
against the worker's capacity (:func:`planner.cost.serving.serving_memory`):

* an **aggregated** replica runs :func:`planner.simulation.simulate`'s iteration (one aggregated pool of one
  replica gives its numbers to the bit);
* a **prefill** replica runs prefill-only iterations: prompts FIFO in chunks of at most ``MAX_BATCHED_TOKENS``,
  admitted while the prompts' KV fits; an iteration takes ``prefill_s`` per token x ``prefill_mix``. When a
  prompt completes its KV cache moves to a decode replica in
  :func:`planner.cost.capacity.kv_transfer_s` seconds; the first token is out when it lands (TTFT = prefill
  completion + transfer - arrival);
* a **decode** replica admits landed requests FIFO while their KV (prompt + output) fits and decodes the
  other ``osl - 1`` tokens, one per iteration of ``decode_step_s`` at its batch and mean context;
  TPOT = (finish - first token) / (osl - 1).

Routers: ``"bucket"`` sends a request of bucket ``b`` to a pool serving ``b`` in proportion to the pools'
shares (smooth weighted round robin, its starting phase from ``seed``: after ``N`` requests of the bucket each
pool's count is within 2 of share x N), then to the replica of that pool with the fewest requests in flight;
a disaggregated request then goes to a decode pool serving ``b`` the same way. ``"round-robin"`` takes the
entry replicas (aggregated and prefill) in turn, and the decode replicas in turn, ignoring buckets;
``"least-outstanding"`` the entry (decode) replica with the fewest requests in flight at that moment (ties to
the first listed). A request is in flight on a replica from its routing until it finishes there (a decode
replica counts it from the prefill's completion, through the transfer).

Replicas are advanced together in time: one event loop over arrivals, prefill completions and KV landings,
each replica running its iterations up to the next event (an iteration starting at ``t`` sees the arrivals
at or before ``t``, as in :func:`planner.simulation.simulate`). The same inputs and seed give the same result.

Simplifications: a prefill replica frees a prompt's KV when the prompt completes (the transfer overlaps
the next prefills); the transfer does not contend for the link with other transfers.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel

from .cost.capacity import kv_transfer_s
from .cost.serving import ServingPlan, check_context, serving_memory
from .errors import PlannerError
from .results import ResultMixin
from .limits import MAX_GPUS, MAX_SEED, MAX_SIM_ITERATIONS, check_int, check_number
from .scheduler import Costs, IterationBound, Replica
from .simulation import Request, SimulationError, _check_fits, _check_requests, _check_slo, _check_worker
from .specs.hardware import System
from .specs.model import ModelSpec

Role = Literal["aggregated", "prefill", "decode"]
ROLES = ("aggregated", "prefill", "decode")
ROUTERS = ("bucket", "round-robin", "least-outstanding")
MAX_BUCKET = 1 << 20  # a bucket index (a histogram has far fewer cells)
MAX_POOLS = 1024  # pools of one deployment
MAX_REPLICAS = 65_536  # replicas of one deployment
MAX_ROUTE_CELLS = 10**7  # distinct buckets x pools (the bucket router's tables)
#: replicas x requests: the router looks at every replica at each event (~0.1 us each: about 20 s at the bound)
MAX_ROUTING_WORK = 2 * 10**8


def _fail(exc: PlannerError, where: str) -> SimulationError:
    return SimulationError(f"{where}: {exc}")


@dataclass(frozen=True)
class DeploymentPool:
    """``replicas`` identical workers (``plan`` on ``system``) in one role.

    ``buckets``: the bucket indices the pool serves (``None``: every bucket, or the keys of ``weights`` when
    given). ``weights``: bucket -> the pool's share of that bucket's requests, relative to the other pools of
    the same stage serving it (``None``: the pool weighs its replica count for every bucket). A bucket with
    weight 0 is not served by the pool. Refused with one :class:`SimulationError` line when out of domain."""

    name: str
    system: System
    plan: ServingPlan
    replicas: int = 1
    role: Role = "aggregated"
    buckets: frozenset[int] | None = None
    weights: dict[int, float] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 256:
            raise SimulationError(f"a pool name must be a non-empty string of at most 256 characters, "
                                  f"got {self.name!r:.60}")
        where = f"pool {self.name}"
        if not isinstance(self.system, System) or not isinstance(self.plan, ServingPlan):
            raise SimulationError(f"{where}: takes a System and a ServingPlan (planner.get_system, "
                                  f"planner.cost.serving.ServingPlan)")
        try:
            if isinstance(self.replicas, np.integer):
                object.__setattr__(self, "replicas", int(self.replicas))
            check_int(self.replicas, f"{where} replicas", hi=MAX_REPLICAS)
        except PlannerError as exc:
            raise SimulationError(str(exc)) from None
        if self.role not in ROLES:
            raise SimulationError(f"{where}: role must be one of {', '.join(ROLES)}, got {self.role!r:.60}")
        buckets = None
        if self.buckets is not None:
            if isinstance(self.buckets, (str, bytes)) or not hasattr(self.buckets, "__iter__"):
                raise SimulationError(f"{where}: buckets must be a set of bucket indices or None")
            buckets = frozenset(_bucket(b, f"{where} bucket") for b in self.buckets)
            if not buckets:
                raise SimulationError(f"{where}: serves no bucket (an empty buckets set)")
        weights = None
        if self.weights is not None:
            if not isinstance(self.weights, dict):
                raise SimulationError(f"{where}: weights must be a dict bucket -> share, "
                                      f"got {type(self.weights).__name__}")
            weights = {}
            for b, w in self.weights.items():
                b = _bucket(b, f"{where} weights bucket")
                try:
                    weights[b] = float(check_number(w, f"{where} weight of bucket {b}", lo=0.0, lo_open=False,
                                                    hi=1e12))
                except PlannerError as exc:
                    raise SimulationError(str(exc)) from None
                if buckets is not None and b not in buckets:
                    raise SimulationError(f"{where}: a weight for bucket {b}, which the pool does not serve "
                                          f"(its buckets: {sorted(buckets)[:8]})")
            if buckets is None:
                buckets = frozenset(b for b, w in weights.items() if w > 0)
            if not any(weights.get(b, 0.0) > 0 for b in buckets):
                raise SimulationError(f"{where}: every weight is 0; the pool would serve nothing")
        object.__setattr__(self, "buckets", buckets)
        object.__setattr__(self, "weights", weights)

    def share(self, bucket: int) -> float:
        """The pool's weight for ``bucket`` (0: not served)."""
        if self.buckets is not None and bucket not in self.buckets:
            return 0.0
        if self.weights is None:
            return float(self.replicas)
        return self.weights.get(bucket, 0.0)


def _bucket(b: object, name: str) -> int:
    if isinstance(b, np.integer):
        b = int(b)
    try:
        return int(check_int(b, name, lo=0, hi=MAX_BUCKET))
    except PlannerError as exc:
        raise SimulationError(str(exc)) from None


class PoolResult(BaseModel):
    name: str
    role: Role
    gpu: str
    replicas: int
    gpus: int  # replicas x GPUs per worker
    requests: int  # requests the pool served (a decode pool: those with more than one output token)
    ttft_ms: dict[str, float] | None  # p50, p90, p99, mean of its requests (None: no requests)
    tpot_ms: dict[str, float] | None
    attainment: float | None  # share meeting both SLOs (prefill pools: TTFT; decode pools: TPOT)
    iterations: int  # scheduler iterations its replicas ran
    busy_s: float  # seconds its replicas spent iterating, summed over replicas


class BucketResult(BaseModel):
    bucket: int
    requests: int
    ttft_ms: dict[str, float]
    tpot_ms: dict[str, float]
    attainment: float  # share meeting both SLOs


class DeploymentResult(ResultMixin, BaseModel):
    router: str
    requests: int
    rate: float
    ttft_ms: dict[str, float]
    tpot_ms: dict[str, float]
    attainment: float  # share of all requests meeting both SLOs
    throughput_tokens_per_s: float
    duration_s: float
    iterations: int
    pools: list[PoolResult]
    buckets: list[BucketResult]

    def _summary(self) -> str:
        return (f"{self.requests:,} requests at {self.rate:.3g}/s through {len(self.pools)} pool(s) ({self.router} "
                f"router): TTFT p90 {self.ttft_ms['p90']:,.0f} ms, TPOT p90 {self.tpot_ms['p90']:,.1f} ms, "
                f"{100 * self.attainment:.1f} % meet the SLOs")

    def _rows(self) -> list[dict[str, object]]:
        return [{"pool": p.name, "role": p.role, "gpu": p.gpu, "replicas": p.replicas, "requests": p.requests,
                 "ttft_p90_ms": None if p.ttft_ms is None else p.ttft_ms["p90"],
                 "tpot_p90_ms": None if p.tpot_ms is None else p.tpot_ms["p90"], "attainment": p.attainment}
                for p in self.pools]


# ---------------------------------------------------------------------------
# routing
# ---------------------------------------------------------------------------

class _Weighted:
    """Smooth weighted round robin over ``items`` with ``weights`` (nginx's): each pick adds every weight to
    its counter and takes the largest counter, less the total; after N picks each item's count is within 2 of
    its share x N. The starting counters come from ``rng`` (a seeded phase)."""

    def __init__(self, items: list[int], weights: list[float], rng: np.random.Generator) -> None:
        total = sum(weights)
        self.items = items
        self.w = [w / total for w in weights]
        self.cur = [float(x) * w for x, w in zip(rng.random(len(items)), self.w)]

    def pick(self) -> int:
        cur, w = self.cur, self.w
        best = 0
        for k in range(len(cur)):
            cur[k] += w[k]
            if cur[k] > cur[best]:
                best = k
        cur[best] -= 1.0
        return self.items[best]


# ---------------------------------------------------------------------------
# the deployment
# ---------------------------------------------------------------------------

class _Fleet:
    """The event loop over the replicas of a deployment."""

    def __init__(self, model: ModelSpec, pools: list[DeploymentPool], reqs: list[Request], buckets: list[int],
                 router: str, routes: _Routes, seed: int, max_iterations: int) -> None:
        self.model, self.pools, self.router = model, pools, router
        self.max_iterations = max_iterations
        self.iterations = 0
        n = len(reqs)
        self.arrival = [r.arrival for r in reqs]
        self.isl = [r.isl for r in reqs]
        self.osl = [r.osl for r in reqs]
        self.buckets = buckets
        self.first = [math.nan] * n
        self.finish = [math.nan] * n
        self.entry_pool = [-1] * n
        self.decode_pool = [-1] * n
        self.outbox: list[tuple[float, int, Replica]] = []
        self.replicas: list[Replica] = []
        self.by_pool: list[list[Replica]] = []
        self._transfer: dict[tuple[int, int, int], float] = {}
        for p, pool in enumerate(pools):
            # the KV capacity does not depend on the lengths serving_memory is given
            kv_cap = serving_memory(model, pool.system, pool.plan, 1, 1).kv_capacity_tokens
            costs = Costs(model, pool.system, pool.plan)
            reps = [Replica(p, pool.role, costs, kv_cap, self) for _ in range(pool.replicas)]
            self.by_pool.append(reps)
            self.replicas.extend(reps)
        self.entry = [r for r in self.replicas if r.role != "decode"]
        self.decode = [r for r in self.replicas if r.role == "decode"]
        self._rr = [0, 0]  # round-robin counters: entry, decode
        self._split_entry: dict[int, _Weighted] = {}
        self._split_decode: dict[int, _Weighted] = {}
        if router == "bucket":
            rng = np.random.default_rng(seed)
            for b in sorted(routes.entry):
                for cand, table in ((routes.entry, self._split_entry), (routes.decode, self._split_decode)):
                    ps = cand.get(b)
                    if ps:
                        table[b] = _Weighted(ps, [pools[p].share(b) for p in ps], rng)

    # -- routing -------------------------------------------------------------------------------------------
    def _least(self, reps: list[Replica], now: float) -> Replica:
        best, load = reps[0], reps[0].in_flight_at(now)
        for r in reps[1:]:
            x = r.in_flight_at(now)
            if x < load:
                best, load = r, x
        return best

    def _route_entry(self, k: int, now: float) -> Replica:
        return self._route(k, now, self._split_entry, self.entry, 0)

    def _route_decode(self, k: int, now: float) -> Replica:
        return self._route(k, now, self._split_decode, self.decode, 1)

    def _route(self, k: int, now: float, split: dict[int, _Weighted], group: list[Replica], stage: int) -> Replica:
        """The replica of ``group`` (the entry or the decode replicas; ``split``: that stage's bucket tables,
        ``stage``: its round-robin counter) that request ``k`` goes to at ``now``."""
        if self.router == "bucket":
            reps = self.by_pool[split[self.buckets[k]].pick()]
            self._advance(reps, now)
            return self._least(reps, now)
        if self.router == "round-robin":
            r = group[self._rr[stage] % len(group)]
            self._rr[stage] += 1
            return r
        self._advance(group, now)
        return self._least(group, now)

    def _advance(self, reps: list[Replica], until: float) -> None:
        for r in reps:
            if r.t < until and (r.waiting or r.running):
                r.advance(until, r.it + self.max_iterations - self.iterations)

    def _transfer_s(self, src: int, dst: int, isl: int) -> float:
        key = (src, dst, isl)
        if key not in self._transfer:
            a, b = self.pools[src], self.pools[dst]
            self._transfer[key] = kv_transfer_s(self.model, a.system, a.plan, b.system, b.plan, isl)
        return self._transfer[key]

    # -- the event loop ------------------------------------------------------------------------------------
    def run(self) -> None:
        n = len(self.arrival)
        events: list[tuple[float, int, int, int, object]] = []  # (time, kind, seq, request, replica)
        seq = 0
        nxt = 0
        advanced = -math.inf  # the entry replicas have run every iteration starting before this
        while True:
            a = self.arrival[nxt] if nxt < n else math.inf
            e = events[0][0] if events else math.inf
            now = min(a, e)
            if now > advanced:  # entry replicas first: their prompt completions may come before `now`
                self._advance(self.entry, now)
                advanced = now
                for t_done, k, rep in self.outbox:
                    heapq.heappush(events, (t_done, 0, seq, k, rep))
                    seq += 1
                self.outbox.clear()
                continue
            if now == math.inf:
                break
            if a <= e:  # an arrival: to an entry replica
                rep = self._route_entry(nxt, a)
                self.entry_pool[nxt] = rep.pool
                rep.outstanding += 1
                rep.add(nxt, a)
                nxt += 1
                continue
            t, kind, _, k, rep = heapq.heappop(events)
            if kind == 0:  # a prompt completed on a prefill replica: its KV goes to a decode replica
                dst = self._route_decode(k, t)
                self.decode_pool[k] = dst.pool
                land = t + self._transfer_s(rep.pool, dst.pool, self.isl[k])
                self.first[k] = land
                if self.osl[k] <= 1:
                    self.finish[k] = land
                    self.decode_pool[k] = -1
                    continue
                dst.outstanding += 1
                heapq.heappush(events, (land, 1, seq, k, dst))
                seq += 1
            else:  # the KV landed: the request waits for admission on its decode replica
                self._advance([rep], t)
                rep.add(k, t)
        self._advance(self.decode, math.inf)


def simulate_deployment(model: ModelSpec, pools: Sequence[DeploymentPool], requests: list[Request],
                        bucket_of: Callable[[int], int] | Sequence[int] | None = None,
                        router: str = "bucket", ttft_slo_ms: float = math.inf, tpot_slo_ms: float = math.inf,
                        seed: int = 0, max_iterations: int = MAX_SIM_ITERATIONS,
                        _keep: list | None = None) -> DeploymentResult:
    """Replay ``requests`` through the deployment ``pools`` behind ``router`` (module docstring).

    ``bucket_of``: the bucket of request ``i`` (an index into ``requests``), a function or a list; ``None``
    puts every request in bucket 0. SLOs in ms (``math.inf``: none). Refused with one
    :class:`SimulationError` line: no pools, a bucket no pool serves (or whose prefill pools have no decode
    pool), a worker that cannot hold the longest request it may get, an unknown router, and a run over
    ``max_iterations`` scheduler iterations summed over the replicas. (``_keep``, for tests: a list the
    simulation's internal state is appended to, with each request's pools, first-token and finish times in
    arrival order.)"""
    if not isinstance(model, ModelSpec):
        raise SimulationError("simulate_deployment takes a ModelSpec (planner.get_model)")
    if isinstance(pools, DeploymentPool) or not isinstance(pools, (list, tuple)) or not pools:
        raise SimulationError("a deployment needs at least one pool (a list of DeploymentPool)")
    if len(pools) > MAX_POOLS:
        raise SimulationError(f"{len(pools):,} pools; at most {MAX_POOLS:,}")
    for p in pools:
        if not isinstance(p, DeploymentPool):
            raise SimulationError(f"a pool is a {type(p).__name__}, not a planner.simulate_fleet.DeploymentPool")
    names = [p.name for p in pools]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise SimulationError(f"pool names must be unique; {dup[0]!r} is used twice")
    if router not in ROUTERS:
        raise SimulationError(f"router must be one of {', '.join(ROUTERS)}, got {router!r:.60}")
    _check_requests(requests)
    ttft_slo_ms, tpot_slo_ms = _check_slo(ttft_slo_ms, "TTFT SLO (ms)"), _check_slo(tpot_slo_ms, "TPOT SLO (ms)")
    try:
        seed = check_int(seed, "seed", lo=0, hi=MAX_SEED)
        max_iterations = check_int(max_iterations, "max_iterations", lo=0, hi=MAX_SIM_ITERATIONS)
        total_gpus = sum(p.replicas * p.plan.gpus for p in pools)
        check_int(total_gpus, "GPUs of the deployment (replicas x GPUs per worker, summed)", hi=MAX_GPUS)
    except PlannerError as exc:
        raise SimulationError(str(exc)) from None
    for p in pools:
        try:
            _check_worker(model, p.system, p.plan)
        except PlannerError as exc:
            raise _fail(exc, f"pool {p.name}") from None
    roles = {p.role for p in pools}
    if roles == {"decode"} or roles == {"prefill"}:
        raise SimulationError(f"only {roles.pop()} pools; a disaggregated deployment needs prefill and decode pools")
    if "prefill" in roles and "decode" not in roles:
        raise SimulationError("prefill pools without a decode pool; add a decode pool")
    n = len(requests)
    order = sorted(range(n), key=lambda i: requests[i].arrival)  # as simulate(): stable by arrival
    buckets = _buckets(bucket_of, n)
    reqs = [requests[i] for i in order]
    bs = [buckets[i] for i in order]
    routes = _check_routes(model, list(pools), reqs, bs, router)
    replicas = sum(p.replicas for p in pools)
    if replicas > MAX_REPLICAS or replicas * n > MAX_ROUTING_WORK:
        raise SimulationError(f"{replicas:,} replicas for {n:,} requests exceed the routing bound (at most "
                              f"{MAX_REPLICAS:,} replicas and {MAX_ROUTING_WORK:,} replicas x requests); "
                              f"simulate fewer requests or a smaller deployment")
    lower = max(r.osl for r in reqs)
    if lower > max_iterations:
        raise SimulationError(f"simulating these requests needs at least {lower:,} scheduler iterations (the "
                              f"longest output), more than the bound of {max_iterations:,}; simulate shorter outputs")
    fleet = _Fleet(model, list(pools), reqs, bs, router, routes, seed, max_iterations)
    try:
        fleet.run()
    except IterationBound:
        raise SimulationError(f"the simulation passed {max_iterations:,} scheduler iterations (its bound, summed "
                              f"over the replicas); simulate fewer requests or shorter outputs") from None
    result = _result(fleet, ttft_slo_ms, tpot_slo_ms)
    if _keep is not None:
        _keep.append(fleet)
    return result


def _buckets(bucket_of: Callable[[int], int] | Sequence[int] | None, n: int) -> list[int]:
    if bucket_of is None:
        return [0] * n
    if isinstance(bucket_of, np.ndarray):
        if bucket_of.ndim != 1 or bucket_of.dtype.kind not in "iu":
            raise SimulationError(f"bucket_of must be a 1-D array of whole numbers, got {bucket_of.ndim}-D "
                                  f"{bucket_of.dtype}")
        bucket_of = bucket_of.tolist()
    if callable(bucket_of):
        out = []
        for i in range(n):
            try:
                b = bucket_of(i)
            except PlannerError:
                raise
            except (TypeError, ValueError, KeyError, IndexError) as exc:
                raise SimulationError(f"bucket_of({i}) failed: {type(exc).__name__}: {exc}") from None
            out.append(_bucket(b, f"bucket of request {i}"))
        return out
    if isinstance(bucket_of, (str, bytes)) or not isinstance(bucket_of, Sequence):
        raise SimulationError(f"bucket_of must be a function or a list of bucket indices, "
                              f"got {type(bucket_of).__name__}")
    if len(bucket_of) != n:
        raise SimulationError(f"bucket_of lists {len(bucket_of):,} buckets for {n:,} requests")
    return [_bucket(b, f"bucket of request {i}") for i, b in enumerate(bucket_of)]


@dataclass
class _Routes:
    """Per bucket present in the requests, the pools that may take its requests (bucket router)."""

    entry: dict[int, list[int]]  # bucket -> aggregated and prefill pools serving it
    decode: dict[int, list[int]]  # bucket -> decode pools serving it


def _routes(pools: list[DeploymentPool], buckets: list[int]) -> _Routes:
    present = sorted(set(buckets))
    if len(present) * len(pools) > MAX_ROUTE_CELLS:
        raise SimulationError(f"{len(present):,} buckets x {len(pools):,} pools exceed {MAX_ROUTE_CELLS:,} routing "
                              f"cells; merge buckets or pools")
    everywhere = [p for p, pool in enumerate(pools) if pool.buckets is None]
    named: dict[int, list[int]] = {}
    for p, pool in enumerate(pools):
        for b in pool.buckets or ():
            named.setdefault(b, []).append(p)
    entry: dict[int, list[int]] = {}
    decode: dict[int, list[int]] = {}
    for b in present:
        ps = [p for p in sorted(everywhere + named.get(b, [])) if pools[p].share(b) > 0]
        entry[b] = [p for p in ps if pools[p].role != "decode"]
        decode[b] = [p for p in ps if pools[p].role == "decode"]
    return _Routes(entry, decode)


def _check_routes(model: ModelSpec, pools: list[DeploymentPool], reqs: list[Request], buckets: list[int],
                  router: str) -> _Routes:
    """Every request has a pool, and every pool holds the longest request it may get."""
    routes = _routes(pools, buckets) if router == "bucket" else _Routes({}, {})
    longest: dict[int, tuple[int, int]] = {}  # pool -> (longest prompt + output, longest prompt) it may get
    if router == "bucket":
        per_bucket: dict[int, tuple[int, int, int]] = {}  # bucket -> (requests, longest total, longest prompt)
        for r, b in zip(reqs, buckets):
            c, t, i = per_bucket.get(b, (0, 0, 0))
            per_bucket[b] = (c + 1, max(t, r.isl + r.osl), max(i, r.isl))
        for b, (count, total, prompt) in sorted(per_bucket.items()):
            entry, dec = routes.entry[b], routes.decode[b]
            if not entry:
                raise SimulationError(f"bucket {b} ({count:,} requests) has no aggregated or prefill pool serving it")
            pre = [p for p in entry if pools[p].role == "prefill"]
            if pre and not dec:
                raise SimulationError(f"bucket {b} goes to prefill pool {pools[pre[0]].name} but no decode pool "
                                      f"serves it")
            for p in entry + (dec if pre else []):
                t, i = longest.get(p, (0, 0))
                longest[p] = (max(t, total), max(i, prompt))
    else:
        whole = (max(r.isl + r.osl for r in reqs), max(r.isl for r in reqs))
        longest = {p: whole for p in range(len(pools))}
    for p, (total, prompt) in sorted(longest.items()):
        pool = pools[p]
        mem = serving_memory(model, pool.system, pool.plan, max(1, prompt), max(1, total - prompt))
        try:
            if pool.role == "prefill":
                check_context(model, total, "the longest request")
                _check_fits(model, pool.system, pool.plan, mem, prompt)
            else:
                _check_fits(model, pool.system, pool.plan, mem, total)
        except PlannerError as exc:
            raise _fail(exc, f"pool {pool.name}") from None
    return routes


def _stats(x: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(x, 50)), "p90": float(np.percentile(x, 90)),
            "p99": float(np.percentile(x, 99)), "mean": float(np.mean(x))}


def _result(fleet: _Fleet, ttft_slo_ms: float, tpot_slo_ms: float) -> DeploymentResult:
    arr = np.array(fleet.arrival)
    osl = np.array(fleet.osl)
    first, finish = np.array(fleet.first), np.array(fleet.finish)
    n = len(arr)
    ttft = (first - arr) * 1e3
    tpot = np.where(osl > 1, (finish - first) / np.maximum(osl - 1, 1), 0.0) * 1e3
    ok_ttft, ok_tpot = ttft <= ttft_slo_ms, tpot <= tpot_slo_ms
    ok = ok_ttft & ok_tpot
    dur = float(np.nanmax(finish) - arr[0])
    entry, dec = np.array(fleet.entry_pool), np.array(fleet.decode_pool)
    pools = []
    for p, pool in enumerate(fleet.pools):
        mask = dec == p if pool.role == "decode" else entry == p
        good = ok_tpot if pool.role == "decode" else ok_ttft if pool.role == "prefill" else ok
        m = int(mask.sum())
        reps = fleet.by_pool[p]
        pools.append(PoolResult(
            name=pool.name, role=pool.role, gpu=pool.system.name, replicas=pool.replicas,
            gpus=pool.replicas * pool.plan.gpus, requests=m,
            ttft_ms=_stats(ttft[mask]) if m else None, tpot_ms=_stats(tpot[mask]) if m else None,
            attainment=float(np.mean(good[mask])) if m else None,
            iterations=sum(r.it for r in reps), busy_s=float(sum(r.busy for r in reps))))
    bucket = np.array(fleet.buckets)
    per_bucket = []
    for b in sorted(set(fleet.buckets)):
        mask = bucket == b
        per_bucket.append(BucketResult(bucket=b, requests=int(mask.sum()), ttft_ms=_stats(ttft[mask]),
                                       tpot_ms=_stats(tpot[mask]), attainment=float(np.mean(ok[mask]))))
    span = max(arr[-1] - arr[0], 1e-9)
    return DeploymentResult(router=fleet.router, requests=n, rate=(n - 1) / span if n > 1 else 0.0,
                            ttft_ms=_stats(ttft), tpot_ms=_stats(tpot), attainment=float(np.mean(ok)),
                            throughput_tokens_per_s=float(osl.sum() / max(dur, 1e-9)), duration_s=dur,
                            iterations=fleet.iterations, pools=pools, buckets=per_bucket)


def shortfalls(result: DeploymentResult, target: float = 0.9) -> list[str]:
    """One line per pool and per bucket whose SLO attainment is below ``target`` (a share, 0.9: 90 % of the
    requests meet the SLOs), worst first; empty when the deployment meets it everywhere."""
    target = check_number(target, "attainment target", hi=1.0)
    out: list[tuple[float, str]] = []
    for p in result.pools:
        if p.attainment is not None and p.attainment < target:
            what = {"prefill": "TTFT SLO", "decode": "TPOT SLO", "aggregated": "TTFT and TPOT SLOs"}[p.role]
            assert p.ttft_ms is not None and p.tpot_ms is not None
            line = (f"pool {p.name} ({p.replicas} x {p.gpu}, {p.role}): {p.attainment:.1%} of {p.requests:,} "
                    f"requests meet the {what}, below {target:.0%} (p90 TTFT {p.ttft_ms['p90']:,.0f} ms, p90 TPOT "
                    f"{p.tpot_ms['p90']:,.1f} ms)")
            out.append((p.attainment, line))
    for b in result.buckets:
        if b.attainment < target:
            line = (f"bucket {b.bucket}: {b.attainment:.1%} of {b.requests:,} requests meet the SLOs, below "
                    f"{target:.0%} (p90 TTFT {b.ttft_ms['p90']:,.0f} ms, p90 TPOT {b.tpot_ms['p90']:,.1f} ms)")
            out.append((b.attainment, line))
    return [line for _, line in sorted(out, key=lambda x: x[0])]


__all__ = ["BucketResult", "DeploymentPool", "DeploymentResult", "PoolResult", "ROUTERS", "shortfalls",
           "simulate_deployment"]

"""Search the training plan of Llama-3.1-405B on 16,384 H100s, then export it (notebook style).

Run: ``python examples/search_llama405b.py``. Each ``# %%`` block is one notebook cell.
"""

# %% The job: 16,384 H100s, 8192-token sequences, 16M tokens (2048 sequences) per step.
import planner
from planner.export import export
from planner.plans.training import plan_document

model, gpu = planner.get_model("llama-3.1-405b"), planner.get_system("h100")
res = planner.search_train(model, gpu, 16384, 8192, 2048, tokens=15e12, top=5)
best = res.best
print(f"best: {best.plan.tp=} {best.plan.pp=} {best.plan.vpp=} {best.plan.cp=} {best.plan.dp=} "
      f"recompute={best.plan.recompute} {best.plan.recompute_per_stage}")
print(f"step {best.step_time_s:.2f} s, MFU {100 * best.mfu:.1f} %, "
      f"{1e12 / best.tokens_per_s / 86400:.1f} days per trillion tokens, "
      f"${res.cost_per_million_tokens(best):.2f} per million tokens")

# %% The alternatives, the binding constraints, and how the search went.
for e in res.alternatives:
    p = e.plan
    print(f"  tp{p.tp} pp{p.pp}/{p.vpp} cp{p.cp} dp{p.dp} mbs{p.micro_batch} {p.recompute:<9} "
          f"{e.step_time_s:.2f} s  MFU {100 * e.mfu:.1f} %")
print("binding:", res.binding)
print(f"{res.shapes} layouts, {res.estimated} estimates, pruned {res.pruned}, {res.elapsed_s:.2f} s")
if res.partition:
    print(f"partition MILP: {res.partition.status}, gap {100 * res.partition.gap:.1f} % to the balanced bound")

# %% The launcher command for Megatron-LM.
print(export(plan_document(best, model, gpu), "megatron"))

"""Estimate Llama-3.1-70B pre-training on H100s with the Python API (notebook style).

Run: ``python examples/estimate_llama70b.py`` (after ``make test`` or
``pip install -e .``). Each ``# %%`` block is one notebook cell.
"""

# %% The specs: built-in names, aliases and Hugging Face ids all work.
import planner

model = planner.get_model("meta-llama/Llama-3.1-70B")
gpu = planner.get_system("h100")  # alias of h100-sxm
print(f"{model.name}: {model.total_params / 1e9:.2f} B params, {model.num_layers} layers, "
      f"KV cache {model.kv_cache_bytes_per_token(2):,.0f} B/token in bf16")
print(f"{gpu.name}: {gpu.accelerator.memory_bytes / 1e9:.1f} GB, {gpu.accelerator.flops('bf16') / 1e12:.1f} TFLOP/s bf16, "
      f"${gpu.accelerator.price_per_hour_usd}/GPU-hour")

# %% One plan: 64 GPUs as tp 8 x pp 2 x dp 4, 512 sequences of 8192 tokens per step.
est = planner.estimate_train(model, gpu, gpus=64, tp=8, pp=2, micro_batch=1, global_batch=512, seq_len=8192)
print(f"step {est.step_time_s:.2f} s, {est.tokens_per_s:,.0f} tokens/s, MFU {100 * est.mfu:.1f} %, "
      f"peak memory {est.memory.peak_bytes / 1e9:.1f} of {est.memory.capacity_bytes / 1e9:.1f} GB "
      f"({'fits' if est.fits else 'does NOT fit'})")

# %% Where the step goes (seconds per component; *_total entries are before overlap).
for part, seconds in est.breakdown.items():
    if not part.endswith("_total"):
        print(f"  {part:<12} {seconds:8.3f} s  {100 * seconds / est.step_time_s:5.1f} %")

# %% Time and cost to train on 15T tokens (Llama 3's budget) at the spec's price.
tokens = 15e12
days = est.time_to_train_s(tokens) / 86400
cost = est.cost_to_train_usd(tokens, gpu.accelerator.price_per_hour_usd)
print(f"15T tokens on 64 GPUs: {days:,.0f} days, ${cost / 1e6:,.1f} M")

# %% Compare a few layouts of the same 64 GPUs (the estimator rejects impossible ones).
for tp, pp, recompute in [(8, 2, "selective"), (8, 1, "full"), (4, 4, "selective"), (8, 4, "none"), (8, 3, "selective")]:
    try:
        e = planner.estimate_train(model, gpu, gpus=64, tp=tp, pp=pp, micro_batch=1, global_batch=512, seq_len=8192,
                                   recompute=recompute)
    except planner.PlanError as err:
        print(f"tp {tp} pp {pp} {recompute:<9}: {err}")
        continue
    print(f"tp {tp} pp {pp} {recompute:<9}: step {e.step_time_s:6.2f} s, MFU {100 * e.mfu:4.1f} %, "
          f"peak {e.memory.peak_bytes / 1e9:5.1f} GB, {'fits' if e.fits else 'OOM'}")

# %% The whole estimate as JSON (what `planner estimate train --json` builds on).
print(est.model_dump_json(indent=2)[:400], "...")

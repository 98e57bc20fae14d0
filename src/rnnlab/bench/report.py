"""``format_table``: results as a Markdown table, with the BLAS, machine and notes they share."""
from __future__ import annotations


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def format_table(results: list) -> str:
    """The results as a Markdown table (one row per config and cell), and the shared context."""
    head = ["config", "cell", "train tok/s rnnlab", "torch", "ratio", "infer tok/s rnnlab", "torch", "ratio",
            "GFLOP/step", "rnnlab GFLOP/s (% peak)", "step / GEMM-only", "RSS delta MB rnnlab", "torch", "others' CPU"]
    rows = []
    for r in results:
        pct = f" ({100 * r['rnnlab_peak_fraction']:.0f}%)" if r.get("rnnlab_peak_fraction") else ""
        rows.append([r["config"], r["cell"], _fmt(r["rnnlab_train_tok_s"], ",.0f"), _fmt(r["torch_train_tok_s"], ",.0f"),
                     _fmt(r["ratio_train"], ".2f"), _fmt(r["rnnlab_infer_tok_s"], ",.0f"),
                     _fmt(r["torch_infer_tok_s"], ",.0f"), _fmt(r["ratio_infer"], ".2f"),
                     f"{r['train_flops'] / 1e9:.2f}", _fmt(r["rnnlab_train_gflops"], ".1f") + pct,
                     _fmt(r.get("rnnlab_step_over_gemm"), ".2f"), _fmt(r.get("rnnlab_rss_delta_mb"), ".0f"),
                     _fmt(r.get("torch_rss_delta_mb"), ".0f"),
                     "-" if r.get("foreign_cpu_share") is None else f"{100 * r['foreign_cpu_share']:.0f}%"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(row) for row in rows]
    if results:
        r = results[0]
        b = r["blas"]
        out.append("")
        out.append(f"BLAS: {b.get('name')} {b.get('version', '')} kernel {b.get('kernel')}, "
                   f"{b.get('threads')} threads ({b.get('library', '')}); torch threads "
                   f"{r.get('torch_threads') or r['threads']}")
        out.append("OpenBLAS env: " + ", ".join(f"{k}={v if v is not None else 'unset'}"
                                                for k, v in r["openblas_env"].items()))
        if r.get("gemm_peak_gflops"):
            out.append(f"GEMM peak: {r['gemm_peak_gflops']:.1f} GFLOP/s ({r['gemm_peak_shape']})")
        m, v = r["machine"], r["versions"]
        gpu = f", GPU {m['gpu']} (rnnlab on {r['backend']}, torch on {r.get('torch_device')})" if "gpu" in m else ""
        out.append(f"machine: {m['cpu']}, {m['cores']} cores{gpu}; rnnlab {v['rnnlab']}, numpy {v['numpy']}, "
                   f"torch {v['torch']}, python {v['python']}")
        loops = {res["cell"]: ("compiled loops" if res.get("compiled_loops") else
                               "fused numba kernels" if res.get("fused_kernels") else "NumPy") for res in results}
        out.append("rnnlab step loops: " + ", ".join(f"{cell} {how}" for cell, how in loops.items())
                   + f" (numba {v.get('numba') or 'not installed'}, scipy {v.get('scipy') or 'not installed'})")
        if r.get("load"):
            d = r["load"]["thread_decision"]
            out.append(f"load: {r['load']['hog_processes']} busy processes beside the benchmark (--load); rnnlab "
                       f"decided {d['threads']} thread(s) under it ({d['source']}), PyTorch kept its default")
        for note in dict.fromkeys(n for res in results for n in res["notes"]):
            out.append(f"note: {note}")
    return "\n".join(out)

"""How far back does the gradient reach? SimpleRNN vs LSTM, and the recurrent matrix's scale.

For a loss on the last output only, prints ||dL/dx_t|| relative to the last step for a vanilla
RNN whose recurrent matrix has spectral norm 0.5, 1.0 and 2.0, and for an LSTM (forget-gate
bias 1), then saves the curves on a log scale.

    python examples/vanishing_gradients.py --steps 50 --out vanishing.png
"""
import argparse

import numpy as np

from rnnlab import layers as L
from rnnlab.diagnostics import gradient_norm_per_step, recurrent_singular_values
from rnnlab.initializers import orthogonal


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--out", default="vanishing.png")
    args = parser.parse_args()
    x = np.random.default_rng(0).standard_normal((16, args.steps, 8)).astype(np.float32)
    curves = {}
    for scale in (0.5, 1.0, 2.0):
        rnn = L.SimpleRNN(args.units, seed=0)
        rnn.forward(x)
        kernel, _, bias = rnn.get_weights()
        rnn.set_weights([kernel, scale * orthogonal((args.units, args.units), rng=np.random.default_rng(1)), bias])
        top = recurrent_singular_values(rnn)["h"][0]
        curves[f"SimpleRNN, sigma_max(U) = {top:.1f}"] = gradient_norm_per_step(rnn, x)
    curves["LSTM (Keras init)"] = gradient_norm_per_step(L.LSTM(args.units, seed=0), x)
    print(f"||dL/dx_t|| / ||dL/dx_T-1|| at distance {'   '.join(str(d) for d in (1, 5, 10, 25))}")
    for name, norms in curves.items():
        rel = norms / norms[-1]
        picks = [rel[-1 - d] for d in (1, 5, 10, 25) if d < len(rel)]
        print(f"  {name:30s} " + "  ".join(f"{v:9.2e}" for v in picks))
    try:
        import matplotlib
    except ImportError:
        print("(no plot: pip install matplotlib)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, norms in curves.items():
        ax.semilogy(np.arange(args.steps)[::-1], norms / norms[-1], label=name)
    ax.set_xlabel("distance from the last step (T-1-t)")
    ax.set_ylabel("||dL/dx_t|| (relative)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()

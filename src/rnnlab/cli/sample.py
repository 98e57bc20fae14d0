"""``rnnlab sample RUN_DIR``: generate text with a trained language model.

    rnnlab sample runs/shakespeare --prime "ROMEO:" --length 500 --temperature 0.8 --top-k 10 --seed 1
"""
from __future__ import annotations


def register(ctx) -> None:
    p = ctx.commands.add_parser("sample", parents=[ctx.common], help="generate text with a trained language model")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of `rnnlab train lm`")
    p.add_argument("--prime", default="", help="text to start from (default: a new line)")
    p.add_argument("--length", type=int, default=200, help="tokens to generate (characters or words)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (0: most likely token)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the K most likely tokens")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same text")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.set_defaults(func=run)


def run(args):
    from ..train.lm import sample_lm

    result = sample_lm(args.run_dir, prime=args.prime, length=args.length, temperature=args.temperature,
                       top_k=args.top_k, seed=args.seed, checkpoint=args.checkpoint)
    print(result["text"])
    return result

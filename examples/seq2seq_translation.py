"""English -> French translation on the Tatoeba pairs (manythings.org ``fra.txt``) with an
attention seq2seq: BLEU on a held-out split, a few translations, one attention heatmap.

Word tokens, lowercased; pairs of at most ``--max-len`` tokens on both sides; vocabularies of
the words seen at least twice in training; 90/5/5 split; bidirectional LSTM encoder and
Luong (general) attention decoder, hidden 256, Adam, dropout 0.2. The data is read from
``$RNNLAB_DATA/translation/fra-eng/fra.txt`` (``../shared/data`` in this workplace).

    python examples/seq2seq_translation.py --epochs 10
    python examples/seq2seq_translation.py --epochs 1 --limit 20000   # a quick look

Writes runs/translation/ (run directory) and runs/translation/attention.png.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from rnnlab.train.seq2seq import Seq2SeqConfig, Translator, save_attention_plot, train_seq2seq


def default_path() -> Path:
    root = Path(os.environ.get("RNNLAB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    return root / "translation" / "fra-eng" / "fra.txt"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default=str(default_path()))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None, help="read only the first N pairs")
    parser.add_argument("--max-len", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--emb", type=int, default=256)
    parser.add_argument("--attention", default="luong", choices=["luong", "bahdanau", "none"])
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="runs/translation")
    args = parser.parse_args()

    if not Path(args.pairs).exists():
        raise SystemExit(f"{args.pairs} not found: set RNNLAB_DATA or pass --pairs")
    config = Seq2SeqConfig(pairs=args.pairs, limit=args.limit, split=(0.9, 0.05, 0.05), data_seed=args.seed,
                           level="word", lower=True, max_src_len=args.max_len, max_tgt_len=args.max_len,
                           min_freq=2, attention=args.attention, score="general", bidirectional=True,
                           cell="lstm", emb=args.emb, hidden=args.hidden, dropout=0.2, epochs=args.epochs,
                           batch=64, lr=1e-3, lr_decay=1.0, clip=5.0, seed=args.seed, beam=args.beam, eval_limit=1000)
    result = train_seq2seq(config, args.out, examples=10, overwrite=True)
    print(f"test BLEU {result['bleu']:.2f} (beam {args.beam}), exact match {100 * result['exact_match']:.2f}% "
          f"on {result['test_pairs']} held-out pairs; {result['wall_s']:.0f} s")
    for ex in result["examples"]:
        print(f"  {ex['source']}\n    -> {ex['prediction']}\n    (reference: {ex['reference']})")
    if args.attention != "none":
        example = Translator(args.out)([result["examples"][0]["source"]], beam=args.beam)[0]
        print(f"attention heatmap: {save_attention_plot(example, Path(args.out) / 'attention.png')}")


if __name__ == "__main__":
    main()

"""``rnnlab train tag``: part-of-speech tagging (many-to-many, one output per word).

    rnnlab train tag --conllu train.conllu --valid dev.conllu --test test.conllu --out runs/pos
    rnnlab train tag --ud-ewt --out runs/upos                       # UD English EWT ($RNNLAB_DATA or downloaded)
    rnnlab train tag --ud-ewt --unidirectional --out runs/stream    # a streaming tagger

Prints the test accuracy overall, on unseen words and per tag, the majority baseline and, for a
unidirectional tagger, whether streaming word by word gives the tags of the whole sentence.
"""
from __future__ import annotations

from ..train.tag import TagConfig, report, train_tag
from .train_common import add_training_arguments, run_training, training_fields


def register(ctx) -> None:
    d = TagConfig()
    parser = ctx.train.add_parser(
        "tag", parents=[ctx.common], help="train a part-of-speech tagger (CoNLL-U, UPOS)",
        description="Train a word + character BiLSTM tagger (or a one-way streaming one) on CoNLL-U files.")
    g = parser.add_argument_group("data (one source)")
    g.add_argument("--conllu", metavar="TRAIN", help="CoNLL-U training file (with --valid and --test)")
    g.add_argument("--ud-ewt", action="store_true", help="UD English EWT from $RNNLAB_DATA/ud-english-ewt (else "
                                                          "downloaded)")
    g.add_argument("--valid", metavar="FILE")
    g.add_argument("--test", metavar="FILE")
    g.add_argument("--min-freq", type=int, default=d.min_freq, help="rarer training words become <unk>")
    g.add_argument("--cased", action="store_true", help="keep the case of words (default: lowercase; "
                                                        "characters always keep it)")
    g.add_argument("--max-len", type=int, default=TagConfig.max_len,
                   help="cut longer sentences (reported with their lines; default %(default)s)")
    g = parser.add_argument_group("model")
    g.add_argument("--cell", choices=["lstm", "gru", "rnn"], default=d.cell)
    g.add_argument("--layers", type=int, default=d.layers)
    g.add_argument("--hidden", type=int, default=d.hidden)
    g.add_argument("--emb", type=int, default=d.emb)
    g.add_argument("--char-emb", type=int, default=d.char_emb)
    g.add_argument("--char-hidden", type=int, default=d.char_hidden)
    g.add_argument("--unidirectional", action="store_true",
                   help="a one-way encoder that tags as the words arrive (streaming)")
    g.add_argument("--dropout", type=float, default=d.dropout)
    g.add_argument("--word-dropout", type=float, default=d.word_dropout,
                   help="in training, read each word as <unk> with this probability, so that the character RNN "
                        "learns to tag words from their spelling (default %(default)s; 0: off)")
    add_training_arguments(parser, d)
    parser.set_defaults(func=run)


def config_from_args(args) -> TagConfig:
    return TagConfig(
        conllu=args.conllu, valid=args.valid, test=args.test, ud_ewt=args.ud_ewt, min_freq=args.min_freq,
        lowercase=not args.cased, max_len=args.max_len, emb=args.emb, char_emb=args.char_emb,
        char_hidden=args.char_hidden, hidden=args.hidden, layers=args.layers, cell=args.cell,
        bidirectional=not args.unidirectional, dropout=args.dropout, word_dropout=args.word_dropout,
        **training_fields(args, TagConfig))


def run(args) -> dict:
    return run_training(args, train_tag, config_from_args, report)

"""One-to-many: captioning a fixed feature vector (``rnnlab train caption``).

    config = CaptionConfig(digits=True)                   # composed handwritten digits ($RNNLAB_DATA)
    config = CaptionConfig(features="X.npy", captions="captions.txt")   # any (N, F) array + N lines
    result = train_caption(config, "runs/digits")  # result["exact_match"], ["beam_exact_match"], ...

Model: ``models/captioner.py``'s ``Captioner`` (the features give the decoder's initial state
through a learned projection; with ``feed_features`` also every step's input). Trained with
teacher forcing (softmax cross-entropy over the real caption tokens and ``<eos>``). Each epoch
the validation captions are decoded greedily; the monitored metric is their exact match. At the
end the best model decodes the test split greedily and with a beam of ``beam``: exact match
(whole caption right) and token accuracy (position by position); for the digits a PNG of sample
test images with their generated captions (``captions.png`` in the run folder).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.captions import CaptionData, compose_digit_captions, load_digits, load_feature_captions
from ..data.memory import padded_batch_bytes
from ..metrics import exact_match, token_accuracy
from ..models.captioner import Captioner
from .. import validate
from .config import CELLS, DATA, DECODING, MODEL, setting
from .supervised import SupervisedConfig, SupervisedTask, run_task, save_figure
from .task import log


@dataclass
class CaptionConfig(SupervisedConfig):
    RUN_KEYS = ("vocab",)
    MONITORS = ("valid_loss", "valid_exact_match", "valid_token_accuracy")
    PATH_FIELDS = ("features", "captions")
    DATA_FIELDS = PATH_FIELDS + ("digits", "n_train", "n_valid", "n_test", "max_digits", "valid_fraction",
                                 "test_fraction", "data_seed")

    # data: digits, or features + captions. The defaults were measured on the digits (README,
    # "Task shapes"): 6,000 images, hidden 128, feed 64, constant lr gave 90.8% test exact match;
    # these with a constant lr 93.8%, with the decay below 96.9%
    digits: bool = setting(False, "images of 1-4 handwritten digits, captioned in words", group=DATA)
    n_train: int = setting(60000, "composed training images (--digits)", check=validate.positive_int, group=DATA)
    n_valid: int = setting(500, "composed validation images (--digits)", check=validate.non_negative_int,
                           group=DATA)
    n_test: int = setting(1000, "composed test images (--digits)", check=validate.non_negative_int, group=DATA)
    max_digits: int = setting(4, "most digits in one image (--digits)", check=validate.positive_int, group=DATA)
    features: str | None = setting(None, "(N, F) float array, one example a row", group=DATA, metavar="X.npy")
    captions: str | None = setting(None, "N caption lines (line i captions row i)", group=DATA, metavar="FILE")
    valid_fraction: float = setting(0.1, "of --features + --captions, held out (seeded) for validation",
                                    check=validate.rate, group=DATA)
    test_fraction: float = setting(0.1, "of --features + --captions, held out (seeded) for test",
                                   check=validate.rate, group=DATA)
    data_seed: int = setting(0, "seed of the composed images and of the held-out split",
                             check=validate.non_negative_int, group=DATA)
    # model
    emb: int = setting(32, "word embedding size", check=validate.positive_int, group=MODEL)
    hidden: int = setting(256, "units of each recurrent layer", check=validate.positive_int, group=MODEL)
    layers: int = setting(1, "stacked recurrent layers", check=validate.positive_int, group=MODEL)
    cell: str = setting("lstm", "recurrent cell", check=validate.cell, choices=CELLS, group=MODEL)
    feed_features: bool = setting(True, "also feed the projected features to every step",
                                  off_flag="--no-feed-features", group=MODEL)
    feed_size: int = setting(128, "width of the features' projection fed to every step",
                             check=validate.positive_int, group=MODEL)
    encoder: int = setting(0, "a ReLU layer of this width between the features and the decoder (0: the features "
                           "reach it through linear projections only)", check=validate.non_negative_int,
                           group=MODEL, metavar="UNITS")
    dropout: float = setting(0.0, "dropout on the features and the decoder outputs (training only)",
                             check=validate.rate, group=MODEL)
    # decoding
    beam: int = setting(3, "beam width of the final test decoding", check=validate.positive_int, group=DECODING)
    length_penalty: float = setting(1.0, "beam search: finished captions compared by log p / length ** this",
                                    check=validate.non_negative_float, group=DECODING)
    max_decode_len: int | None = setting(None, "longest generated caption (default: longest training caption + 5)",
                                         check=validate.positive_int, group=DECODING)
    examples: int = setting(12, "test images drawn in captions.png", check=validate.non_negative_int,
                            group=DECODING)
    # optimisation: the models fit the training captions within a few epochs; decaying the rate
    # then settles them (README: 96.9% against 93.8% at a constant rate)
    lr_decay: float = SupervisedConfig.redefault("lr_decay", 0.6)
    decay_start: int = SupervisedConfig.redefault("decay_start", 4)


class CaptionTask(SupervisedTask):
    """Captioning on the loop (see the module docstring)."""

    name = "caption"
    monitor = "valid_exact_match"
    memory_hint = "lower --batch or --hidden, or shorten the longest captions"   # caption has no --max-len

    def load_data(self) -> CaptionData:
        c = self.config
        if c.digits == bool(c.features or c.captions):
            raise ValueError("give --digits or --features X.npy --captions FILE, exactly one")
        if c.digits:
            images, digits = load_digits()
            return compose_digit_captions(images, digits, c.n_train, c.n_valid, c.n_test, c.max_digits,
                                          seed=c.data_seed)
        if not (c.features and c.captions):
            raise ValueError("--features X.npy needs --captions FILE (one caption per row of X), and back")
        return load_feature_captions(c.features, c.captions, c.valid_fraction, c.test_fraction, c.data_seed)

    def build_model(self):
        c, d = self.config, self.data
        if d.valid is None or d.test is None:
            raise ValueError("caption: the data needs a validation and a test split (raise the fractions)")
        self.max_len = self.decode_length()
        log(f"caption: {len(d.train)} / {len(d.valid)} / {len(d.test)} examples of {d.feature_dim} features, "
            f"vocabulary {len(d.vocab)}")
        return Captioner(d.feature_dim, len(d.vocab), emb=c.emb, hidden=c.hidden, layers=c.layers, cell=c.cell,
                         feed_features=c.feed_features, feed_size=c.feed_size, encoder=c.encoder, dropout=c.dropout,
                         bos_id=d.vocab.bos_id, eos_id=d.vocab.eos_id, seed=c.seed, name="captioner")

    def decode_length(self) -> int:
        """The longest caption decoding may write: ``max_decode_len``, or the longest training
        caption + 5."""
        return self.config.max_decode_len or max(len(ids) for ids in self.data.train.ids) + 5

    def inputs(self, batch):
        return batch["features"], batch["tgt_in"]

    def targets(self, batch):
        return batch["tgt_out"], batch["mask"]

    def padded_batch_bytes(self, rows: int) -> tuple[int, str]:
        c, d = self.config, self.data
        steps = max(max((len(ids) for ids in s.ids), default=0) for s in (d.train, d.valid, d.test)) + 1  # <bos>
        width = c.emb + (c.feed_size if c.feed_features else 0)
        need = padded_batch_bytes(rows, steps, width, c.hidden, c.layers, outputs=len(d.vocab))
        return need, f"{rows} captions of {steps} words"

    def run_config(self) -> dict:
        return {"vocab": self.data.vocab.to_json()}

    def decode(self, split, beam: int = 1, batch_size: int = 256) -> list[list[str]]:
        """The generated caption (words) of every example of ``split``, in order."""
        step = max(1, batch_size // beam)
        out = []
        for start in range(0, len(split), step):
            decoded = self.model.caption(split.features[start:start + step], self.max_len, beam,
                                         self.config.length_penalty)
            out += [self.data.vocab.decode(tokens) for tokens in decoded.tokens]
        return out

    def evaluate(self, split, beam: int = 1) -> dict:
        generated = self.decode(split, beam)
        return {"exact_match": exact_match(generated, split.captions),
                "token_accuracy": token_accuracy(generated, split.captions), "generated": generated}

    def validate(self) -> dict:
        loss, _ = self.outputs(self.data.valid)
        figures = self.evaluate(self.data.valid)
        return {"valid_loss": loss, "valid_exact_match": figures["exact_match"],
                "valid_token_accuracy": figures["token_accuracy"]}

    def curve_keys(self) -> tuple:
        return ("train_loss", "valid_loss", "valid_exact_match")

    def test_figures(self) -> dict:
        test = self.data.test
        greedy, beam = self.evaluate(test), self.evaluate(test, self.config.beam)
        loss, _ = self.outputs(test)
        n = min(self.config.examples, len(test))
        return {"exact_match": greedy["exact_match"], "token_accuracy": greedy["token_accuracy"],
                "beam_exact_match": beam["exact_match"], "beam_token_accuracy": beam["token_accuracy"],
                "beam": self.config.beam, "loss": loss, "test_n": len(test), "params": self.model.count_params(),
                "examples": [{"reference": " ".join(test.captions[i]), "greedy": " ".join(greedy["generated"][i]),
                              "beam": " ".join(beam["generated"][i])} for i in range(n)]}

    def save_report(self, folder: Path, metrics: dict) -> None:
        images = self.data.test.images
        if images is None:
            return
        from ..plots import plot_captions

        examples = metrics["examples"]
        save_figure(plot_captions, images[:len(examples)], [e["beam"] for e in examples], folder / "captions.png",
                    references=[e["reference"] for e in examples],
                    title=f"test images never seen in training: beam {metrics['beam']}, exact match "
                          f"{100 * metrics['beam_exact_match']:.1f}%")


CaptionTask.config_class = CaptionConfig


def train_caption(config: CaptionConfig | None, run_dir=None, resume: bool = False, overrides: dict | None = None,
                  overwrite: bool = False, data: CaptionData | None = None, **options):
    """Train (or resume) a captioner; returns the loop's ``TrainResult`` (``result["exact_match"]``,
    ``["token_accuracy"]`` greedy, ``["beam_exact_match"]``, ``["beam_token_accuracy"]`` on the
    test split). ``data``: a ``CaptionData`` in memory."""
    return run_task(CaptionTask, config, run_dir, resume, overrides, overwrite, data=data, **options)


def report(metrics: dict) -> str:
    lines = [f"{e['greedy']}   (beam: {e['beam']}; reference: {e['reference']})" for e in metrics["examples"][:5]]
    lines.append(f"test ({metrics['test_n']} examples): greedy exact match {100 * metrics['exact_match']:.2f}%, "
                 f"token accuracy {100 * metrics['token_accuracy']:.2f}%; beam {metrics['beam']}: exact match "
                 f"{100 * metrics['beam_exact_match']:.2f}%, "
                 f"token accuracy {100 * metrics['beam_token_accuracy']:.2f}%")
    return "\n".join(lines)


def majority_caption_accuracy(data: CaptionData) -> float:
    """Exact match of always answering the most frequent training caption (the baseline)."""
    counts: dict = {}
    for c in data.train.captions:
        counts[tuple(c)] = counts.get(tuple(c), 0) + 1
    best = list(max(counts, key=counts.get))
    return float(np.mean([c == best for c in data.test.captions]))

"""The largest padded batch of classify, tag and caption is estimated and checked against the
available memory before training (issue 12): the estimate bounds what a training step on the
longest examples really allocates (tracemalloc sees NumPy's arrays), and a machine with less
memory than the estimate refuses the run before allocating it, naming the batch and the fix."""
import tracemalloc

import numpy as np
import pytest

from rnnlab.data.captions import load_feature_captions
from rnnlab.data.conllu import load_tagging
from rnnlab.data.labeled import load_tsv_classification
from rnnlab.data.memory import padded_batch_bytes
from rnnlab.data.timeseries import load_ts_classification
from rnnlab.train.caption import CaptionConfig, CaptionTask
from rnnlab.train.classify import ClassifyConfig, ClassifyTask
from rnnlab.train.tag import TagConfig, TagTask
from tasks_toy import STEMS, write_conllu, write_feature_captions, write_sentiment


def _series_file(path, n: int, length: int, dims: int = 3) -> None:
    rng = np.random.default_rng(0)
    lines = ["@problemName toy", "@timeStamps false", "@missing false", "@univariate false",
             f"@dimensions {dims}", "@equalLength false", "@classLabel true a b", "@data"]
    for i in range(n):
        steps = length if i == 0 else int(rng.integers(3, 10))
        dims_text = ":".join(",".join(f"{v:.3f}" for v in rng.normal(size=steps)) for _ in range(dims))
        lines.append(f"{dims_text}:{'ab'[i % 2]}")
    path.write_text("\n".join(lines) + "\n")


def _tasks(tmp_path):
    write_sentiment(tmp_path / "s.tsv", 40, seed=0)
    text = load_tsv_classification(tmp_path / "s.tsv", tmp_path / "s.tsv", tmp_path / "s.tsv")
    _series_file(tmp_path / "t.ts", 30, length=60)
    series = load_ts_classification(tmp_path / "t.ts", tmp_path / "t.ts", tmp_path / "t.ts")
    write_conllu(tmp_path / "t.conllu", 30, seed=0, stems=STEMS)
    tags = load_tagging(tmp_path / "t.conllu", tmp_path / "t.conllu", tmp_path / "t.conllu")
    features, captions = write_feature_captions(tmp_path, 60, seed=0)
    caps = load_feature_captions(features, captions, valid_fraction=0.2, test_fraction=0.2)
    sizes = dict(hidden=64, batch=512)
    return {"text": ClassifyTask(ClassifyConfig(emb=32, **sizes), data=text),
            "series": ClassifyTask(ClassifyConfig(**sizes), data=series),
            "tag": TagTask(TagConfig(emb=32, **sizes), data=tags),
            "caption": CaptionTask(CaptionConfig(emb=32, feed_features=True, **sizes), data=caps)}


@pytest.mark.parametrize("name", ["text", "series", "tag", "caption"])
def test_the_estimate_bounds_a_training_step_on_the_longest_examples(name, tmp_path):
    task = _tasks(tmp_path)[name]
    task.setup()                                    # loads, builds and checks (enough memory here)
    need = task.check_batch_memory(available=1 << 50)
    split = task.data.train                         # the largest split, all in one batch (512 > its size)
    assert len(split) >= max(len(task.data.valid), len(task.data.test))
    (batch,) = list(split.batches(len(split)))
    task.train_step(batch)                          # once first: kernels compiled, fast paths timed
    tracemalloc.start()
    task.train_step(batch)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= need <= 10 * peak, (name, peak, need)


@pytest.mark.parametrize("name, hint", [("text", "lower --batch or --max-len"), ("tag", "lower --batch or --max-len"),
                                        ("caption", "lower --batch or --hidden, or shorten the longest captions")])
def test_a_batch_larger_than_the_memory_is_refused_before_training(name, hint, tmp_path):
    """Naming the flags the task has: caption has no --max-len (issue 29, item 10)."""
    task = _tasks(tmp_path)[name]
    task.setup()
    need = task.check_batch_memory(available=1 << 50)
    with pytest.raises(MemoryError, match=r"the largest padded batch \(\d+ .* needs about .* GiB .*" + hint) as err:
        task.check_batch_memory(available=need - 1)
    assert name != "caption" or "--max-len" not in str(err.value)


def test_one_long_sequence_decides_the_estimate():
    short = padded_batch_bytes(32, 10, 100, 128, itemsize=4)
    assert padded_batch_bytes(32, 1000, 100, 128, itemsize=4) == 100 * short
    assert short == 32 * 10 * (100 + 12 * 128) * 4
    assert padded_batch_bytes(32, 10, 100, 128, layers=2, directions=2, outputs=50, itemsize=4) == \
        32 * 10 * (100 + 4 * 12 * 128 + 3 * 50) * 4

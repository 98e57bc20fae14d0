"""Toy data for the classify / tag / caption training tests: files written under tmp_path,
learnable in a few epochs, with a known majority baseline."""
from __future__ import annotations

import numpy as np

POSITIVE = ["good", "great", "fine", "superb", "lovely"]
NEGATIVE = ["bad", "awful", "poor", "dull", "ugly"]
FILLER = ["the", "film", "was", "a", "plot", "and", "very", "story", "quite", "it"]


def write_sentiment(path, n: int, seed: int) -> None:
    """``text<TAB>label`` lines: the label is which of the two word lists the sentence uses,
    60% positive so the majority baseline is 0.6 (not 0.5)."""
    rng = np.random.default_rng(seed)
    lines = ["sentence\tlabel"]
    for _ in range(n):
        positive = rng.random() < 0.6
        words = list(rng.choice(FILLER, size=int(rng.integers(3, 8))))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POSITIVE if positive else NEGATIVE)))
        lines.append(f"{' '.join(words)}\t{'pos' if positive else 'neg'}")
    path.write_text("\n".join(lines) + "\n")


# tags from spelling: a word's suffix gives its tag, so an unseen word is tagged from its letters
SUFFIX_TAGS = {"ion": "NOUN", "ed": "VERB", "ful": "ADJ", "ly": "ADV"}
STEMS = ["act", "rot", "mot", "pass", "bloom", "sharp", "grace", "mild", "quick", "warm", "cold", "dark",
         "light", "soft", "hard", "plain", "bright", "calm", "deep", "fresh", "glad", "kind", "neat", "pure"]


def write_conllu(path, n: int, seed: int, stems) -> None:
    """Sentences of DET + suffixed words; NOUN is the most frequent tag."""
    rng = np.random.default_rng(seed)
    blocks = []
    suffixes = list(SUFFIX_TAGS)
    for s in range(n):
        words = [("the", "DET")]
        for _ in range(int(rng.integers(2, 7))):
            suffix = suffixes[int(rng.choice(4, p=[0.4, 0.25, 0.2, 0.15]))]
            words.append((str(rng.choice(stems)) + suffix, SUFFIX_TAGS[suffix]))
        rows = [f"{i}\t{w}\t{w}\t{t}\t_\t_\t0\tdep\t_\t_" for i, (w, t) in enumerate(words, start=1)]
        blocks.append(f"# sent_id = {s}\n" + "\n".join(rows))
    path.write_text("\n\n".join(blocks) + "\n\n")


def write_feature_captions(folder, n: int, seed: int):
    """X (n, 12): three one-hot slots of 4 symbols (slot empty: zeros); the caption names the
    symbols of the filled slots in order. Returns (features path, captions path)."""
    rng = np.random.default_rng(seed)
    names = ["red", "green", "blue", "black"]
    X = np.zeros((n, 12))
    lines = []
    for i in range(n):
        k = int(rng.integers(1, 4))
        symbols = rng.integers(0, 4, size=k)
        for slot, sym in enumerate(symbols):
            X[i, slot * 4 + sym] = 1.0
        lines.append(" ".join(names[s] for s in symbols))
    np.save(folder / "X.npy", X)
    (folder / "captions.txt").write_text("\n".join(lines) + "\n")
    return folder / "X.npy", folder / "captions.txt"

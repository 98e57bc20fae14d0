"""Generate text from an exported language model with onnxruntime alone (no rnnlab import).

    rnnlab train lm --text my_corpus.txt --level char --out runs/mine
    rnnlab export runs/mine --format onnx --out mine.onnx
    python examples/onnx_generate.py mine.onnx --prime "ROMEO:" --length 300 --temperature 0.8 --seed 1

The file holds everything: the graph, and in its metadata the vocabulary (``rnnlab_vocab``)
and the tokenization level (``rnnlab_level``) of the run it came from. The prime is read in one
call over the whole sequence; then each new token is one call with T = 1, the states ``h``
(and ``c`` for an LSTM) fed back as ``h0`` (``c0``): streaming generation. Sampling draws from
softmax(logits / temperature) over the top-k tokens, as ``rnnlab sample`` does (temperature
0: the most likely token; then the text equals ``rnnlab sample --temperature 0``).
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import onnxruntime as ort


def next_token(logits, temperature, top_k, rng) -> int:
    z = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return int(np.argmax(z))
    z = z / temperature
    if top_k is not None and top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    return int(rng.choice(z.size, p=p / p.sum()))


def tokenize(prime: str, level: str, stoi: dict) -> list[str]:
    if level == "char":
        tokens = list(prime)
    else:
        tokens = []
        for line in prime.splitlines():
            tokens += line.split() + ["<eos>"] if line.split() else []
        if tokens and not prime.endswith("\n"):
            tokens = tokens[:-1]  # an open last line continues
    if not tokens:
        tokens = ["<eos>"] if level == "word" else (["\n"] if "\n" in stoi else [next(reversed(stoi))])
    return tokens


def detokenize(tokens: list[str], level: str) -> str:
    if level == "char":
        return "".join(tokens)
    text, words = "", []
    for token in tokens:
        if token == "<eos>":  # ends a line
            text, words = text + " ".join(words) + "\n", []
        else:
            words.append(token)
    return text + " ".join(words)


def generate(path, prime: str = "", length: int = 200, temperature: float = 1.0, top_k=None, seed=0) -> str:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if "rnnlab_vocab" not in meta:
        raise SystemExit(f"{path}: no vocabulary in the metadata: export it from a run folder")
    itos = json.loads(meta["rnnlab_vocab"])["itos"]
    level = meta.get("rnnlab_level") or "char"
    stoi = {token: i for i, token in enumerate(itos)}
    unk = stoi.get("<unk>", 0)
    ids = [stoi.get(t, unk) for t in tokenize(prime, level, stoi)]
    inputs = {i.name: i for i in session.get_inputs()}
    layers, hidden = inputs["h0"].shape[0], inputs["h0"].shape[2]
    states = {name: np.zeros((layers, 1, hidden), np.float32) for name in ("h0", "c0") if name in inputs}
    names = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(seed)

    def run(token_ids):  # (1, T) ids from the current states -> the last step's logits (V,)
        result = dict(zip(names, session.run(None, {"ids": np.asarray([token_ids], dtype=np.int64), **states})))
        states.update({f"{k}0": result[k] for k in ("h", "c") if f"{k}0" in states})
        return result["logits"][0, -1]

    logits, out = run(ids), []      # the whole prime in one call
    for i in range(length):         # then one token per call
        out.append(next_token(logits, temperature, top_k, rng))
        if i + 1 < length:
            logits = run([out[-1]])
    text = detokenize([itos[i] for i in out], level)
    if level == "word" and prime and not prime.endswith(("\n", " ")) and not text.startswith("\n"):
        text = " " + text
    return prime + text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an ONNX file written by `rnnlab export RUN_DIR --format onnx`")
    parser.add_argument("--prime", default="")
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(generate(args.model, args.prime, args.length, args.temperature, args.top_k, args.seed))


if __name__ == "__main__":
    main()

"""An LSTM trained by hand: the 8x8 handwritten digits, each image read row by row (8 steps of 8
pixels), classified from the last state. Forward, loss, backward, clip and step are written
out; nothing is hidden in a trainer. `python examples/train_lstm.py` reads the digits from
$RNNLAB_DATA (or downloads them) and prints each epoch's test accuracy (about 95% after 10)."""
import sys

import numpy as np

import rnnlab as rl
from rnnlab import layers as L
from rnnlab.data.captions import load_digits
from rnnlab.losses import SoftmaxCrossEntropy
from rnnlab.optim import Adam, clip_grad_norm


def train(epochs=10, batch=32, seed=0, log=print):
    images, digits = load_digits()                          # (1797, 8, 8) in [0, 1], (1797,)
    x, y = images.astype("float32"), digits
    order = np.random.default_rng(seed).permutation(len(x))
    test, fit = order[:360], order[360:]                     # 360 held-out images, 1437 to train on
    model = rl.Sequential([L.Input((8, 8)),                  # (time = rows, features = pixels)
                           L.LSTM(64, seed=seed),            # many-to-one: the last step's state
                           L.Dense(10, seed=seed + 1)])      # one logit per digit
    loss_fn, opt = SoftmaxCrossEntropy(), Adam(lr=1e-2)
    rng = np.random.default_rng(seed + 2)
    for epoch in range(1, epochs + 1):
        model.train()
        shuffled = rng.permutation(fit)
        for start in range(0, len(shuffled), batch):
            rows = shuffled[start:start + batch]
            logits = model.forward(x[rows])                  # (B, 10)
            loss = loss_fn.forward(logits, y[rows])          # mean cross-entropy
            model.backward(loss_fn.backward())               # BPTT: fills every layer's grads
            clip_grad_norm(model.grads, 5.0)                 # global norm at most 5
            opt.step(model.params, model.grads)              # Adam, in place
        model.eval()
        accuracy = float(np.mean(model.forward(x[test]).argmax(-1) == y[test]))
        log(f"epoch {epoch}: last batch loss {loss:.3f}, test accuracy {100 * accuracy:.2f}%")
    return accuracy


if __name__ == "__main__":
    train(epochs=int(sys.argv[1]) if len(sys.argv) > 1 else 10)

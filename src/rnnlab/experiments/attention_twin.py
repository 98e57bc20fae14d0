"""An independent PyTorch twin of rnnlab's Bahdanau seq2seq model (for ``attention``).

Same model, written again with torch autograd instead of rnnlab's hand-written backward:

    encoder:   e = Embedding(src) (reversed within its length when ``reverse``);
               o_1..o_S, (h, c) = LSTM(e) over the real tokens (packed sequence)
    decoder:   s_0 = (h, c); for t = 1..T:
               c_t = sum_j a_tj o_j,  a_t = softmax_j(v . tanh(h_{t-1} W_q + o_j W_k))  (padding masked)
               (h_t, c_t') = LSTMCell([emb(y_{t-1}); c_t], (h_{t-1}, c_{t-1}'))
               logits_t = [h_t; c_t] W_out + b_out
    loss:      mean cross-entropy over the real target tokens (incl. <eos>)
    training:  Adam (lr 1e-3), global-norm clipping at 5, the same batches in the same order.

It starts from the *same* initial weights as the rnnlab model it is compared with (taken from
that model, freshly built with the same seed), so that the first batch's loss must agree to
float32 rounding (``first_loss``): a check that the twin is the same model. Its gradients on that
first batch (``first_grads``, in rnnlab's layout) are the decisive check of rnnlab's hand-written
backward. From there the two train independently (float32 rounding differences grow, so curves
near a plateau may part without any defect).

torch is imported only when this runs (it is a test/benchmark dependency of rnnlab).
"""
from __future__ import annotations

import numpy as np


def _keras_lstm_into_torch(torch, kernel, recurrent, bias, weight_ih, weight_hh, bias_ih, bias_hh):
    """Keras layout (W: D x 4H, U: H x 4H, b: 4H; gates i, f, c, o) -> torch (i, f, g, o).
    Keras has one bias, torch two: ``bias_hh`` is held at 0 and frozen, else both would train and
    the bias would move twice as fast as rnnlab's."""
    with torch.no_grad():
        weight_ih.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
        weight_hh.copy_(torch.from_numpy(np.ascontiguousarray(recurrent.T)))
        bias_ih.copy_(torch.from_numpy(bias))
        bias_hh.zero_()
    bias_hh.requires_grad_(False)


def build_twin(torch, weights: dict, reverse: bool):
    """The torch module, initialised from ``weights`` (numpy arrays named as below)."""
    nn = torch.nn

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            w = weights
            self.reverse = reverse
            self.src_emb = nn.Embedding.from_pretrained(torch.from_numpy(w["enc_emb"]), freeze=False)
            self.tgt_emb = nn.Embedding.from_pretrained(torch.from_numpy(w["dec_emb"]), freeze=False)
            E, H = w["enc_emb"].shape[1], w["enc_recurrent"].shape[0]
            self.encoder = nn.LSTM(E, H, batch_first=True)
            _keras_lstm_into_torch(torch, w["enc_kernel"], w["enc_recurrent"], w["enc_bias"],
                                   self.encoder.weight_ih_l0, self.encoder.weight_hh_l0,
                                   self.encoder.bias_ih_l0, self.encoder.bias_hh_l0)
            self.cell = nn.LSTMCell(w["dec_kernel"].shape[0], H)
            _keras_lstm_into_torch(torch, w["dec_kernel"], w["dec_recurrent"], w["dec_bias"],
                                   self.cell.weight_ih, self.cell.weight_hh, self.cell.bias_ih, self.cell.bias_hh)
            self.w_q = nn.Parameter(torch.from_numpy(w["att_query"]))
            self.w_k = nn.Parameter(torch.from_numpy(w["att_key"]))
            self.v = nn.Parameter(torch.from_numpy(w["att_v"]))
            self.out = nn.Linear(2 * H, w["out_bias"].shape[0])
            with torch.no_grad():
                self.out.weight.copy_(torch.from_numpy(np.ascontiguousarray(w["out_kernel"].T)))
                self.out.bias.copy_(torch.from_numpy(w["out_bias"]))

        def encode(self, src, lengths):
            if self.reverse:
                steps = torch.arange(src.shape[1])[None, :]
                index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
                src = torch.gather(src, 1, index)
            packed = nn.utils.rnn.pack_padded_sequence(self.src_emb(src), lengths, batch_first=True,
                                                       enforce_sorted=False)
            out, (h, c) = self.encoder(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
            return out, h[0], c[0]

        def attend(self, h, keys_proj, keys, mask):
            scores = torch.tanh((h @ self.w_q)[:, None, :] + keys_proj) @ self.v       # (B, S)
            scores = scores.masked_fill(~mask, -1e9)
            weights = torch.softmax(scores, dim=1)
            return (weights[:, :, None] * keys).sum(dim=1)

        def step(self, token, h, c, keys_proj, keys, mask):
            context = self.attend(h, keys_proj, keys, mask)
            h, c = self.cell(torch.cat([self.tgt_emb(token), context], dim=1), (h, c))
            return self.out(torch.cat([h, context], dim=1)), h, c

        def forward(self, src, src_mask, tgt_in):
            lengths = src_mask.sum(dim=1)
            keys, h, c = self.encode(src, lengths)
            keys_proj = keys @ self.w_k
            logits = []
            for t in range(tgt_in.shape[1]):
                step_logits, h, c = self.step(tgt_in[:, t], h, c, keys_proj, keys, src_mask)
                logits.append(step_logits)
            return torch.stack(logits, dim=1)

        @torch.no_grad()
        def greedy(self, src, src_mask, bos: int, eos: int, max_len: int):
            lengths = src_mask.sum(dim=1)
            keys, h, c = self.encode(src, lengths)
            keys_proj = keys @ self.w_k
            token = torch.full((src.shape[0],), bos, dtype=torch.long)
            out = []
            for _ in range(max_len):
                logits, h, c = self.step(token, h, c, keys_proj, keys, src_mask)
                token = logits.argmax(dim=1)
                out.append(token)
            return torch.stack(out, dim=1).numpy()

    return Twin()


def exact_match(twin, torch, data, bos: int, eos: int, max_len: int, batch: int = 256) -> float:
    """Greedy exact match of the twin on ``data`` (a PairData): the ids up to <eos> equal the target's."""
    right = 0
    for b in data.batches(batch, shuffle=False, bucket=False):
        out = twin.greedy(torch.from_numpy(np.asarray(b.src)), torch.from_numpy(np.asarray(b.src_mask)),
                          bos, eos, max_len)
        for row, i in zip(out, b.index):
            ids = list(row)
            ids = ids[:ids.index(eos)] if eos in ids else ids
            right += ids == list(data.tgt_ids[i])
    return right / len(data)


def train_twin(weights: dict, reverse: bool, train, valid, epochs: int, batch: int, seed: int,
               max_len: int, lr: float = 1e-3, clip: float = 5.0, threads: int = 1) -> dict:
    """Train the twin as ``train_seq2seq`` trains rnnlab's model; per-epoch valid exact match."""
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(torch, weights, reverse, train, valid, epochs, batch, seed, max_len, lr, clip)
    finally:
        torch.set_num_threads(previous_threads)


def _train(torch, weights, reverse, train, valid, epochs, batch, seed, max_len, lr, clip) -> dict:
    twin = build_twin(torch, weights, reverse).float()   # float32 as rnnlab, whatever torch's default dtype
    trained = [p for p in twin.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trained, lr=lr)
    rng = np.random.default_rng(seed)   # the batch order of train_seq2seq (same seed, same calls)
    bos, eos = train.tgt_vocab.bos_id, train.tgt_vocab.eos_id
    rows, first_loss, first_grads = [], None, {}
    for epoch in range(1, epochs + 1):
        twin.train()
        total = count = 0.0
        for b in train.batches(batch, shuffle=True, rng=rng, bucket=True):
            src, src_mask = torch.from_numpy(np.asarray(b.src)), torch.from_numpy(np.asarray(b.src_mask))
            tgt_in, tgt_out = torch.from_numpy(np.asarray(b.tgt_in)), torch.from_numpy(np.asarray(b.tgt_out))
            mask = torch.from_numpy(np.asarray(b.tgt_mask))
            logits = twin(src, src_mask, tgt_in)
            loss = torch.nn.functional.cross_entropy(logits[mask], tgt_out[mask])
            if first_loss is None:
                first_loss = loss.item()
            optimizer.zero_grad()
            loss.backward()
            if not first_grads:
                first_grads = _grads_in_rnnlab_layout(twin)
            torch.nn.utils.clip_grad_norm_(trained, clip)
            optimizer.step()
            total += loss.item() * int(mask.sum())
            count += int(mask.sum())
        twin.eval()
        rows.append({"epoch": epoch, "train_loss": total / count,
                     "valid_exact_match": exact_match(twin, torch, valid, bos, eos, max_len)})
    return {"rows": rows, "first_loss": first_loss, "first_grads": first_grads}


def _grads_in_rnnlab_layout(twin) -> dict:
    """The gradients of the twin's weights, named and laid out as ``build_twin``'s ``weights``."""
    def arr(t):
        return t.grad.detach().double().numpy()

    return {"enc_emb": arr(twin.src_emb.weight), "dec_emb": arr(twin.tgt_emb.weight),
            "enc_kernel": arr(twin.encoder.weight_ih_l0).T, "enc_recurrent": arr(twin.encoder.weight_hh_l0).T,
            "enc_bias": arr(twin.encoder.bias_ih_l0), "dec_kernel": arr(twin.cell.weight_ih).T,
            "dec_recurrent": arr(twin.cell.weight_hh).T, "dec_bias": arr(twin.cell.bias_ih),
            "att_query": arr(twin.w_q), "att_key": arr(twin.w_k), "att_v": arr(twin.v),
            "out_kernel": arr(twin.out.weight).T, "out_bias": arr(twin.out.bias)}

"""The fast time loops of SimpleRNN, LSTM and GRU (see ``base.py`` for how they are fast).

Each class here is a ``FastLoop`` a layer of ``recurrent.py`` is handed (``fast.loop_for``);
it gives the two loops over time-major buffers:

    _forward_loop(X, init, mk) -> (Hs, final_states)      X (T, B, D+1), Hs (T+1, B, H)
    _backward_loop(dH, dlast, mk) -> (dX, dinitial_states)   writes ``grads``

The equations are those of ``steps.py``; ``bptt.py`` loops those steps plainly, and the tests
prove these loops equal to it (float64) on all three kernel paths: NumPy, ``fused.py``'s step
kernels called once per step, and ``compiled.py``'s loops, which run all steps of the fused
path in one call (``_compiled``; LSTM and GRU with reset_after). ``LOOPS`` maps a cell kind
to its loop class.
Shapes: B batch, T time, D input features, H units.
"""
from __future__ import annotations

from ... import backend
from . import compiled, fused
from .base import FastLoop, ones_vector, transpose_into


class SimpleRNNLoop(FastLoop):
    """h_t = f(A_t + h_{t-1} U) with A = X [W; b] for all steps (one GEMM); backward with
    F = f'(h) for all steps, per step da_t = dh_t F_t, dh_{t-1} = da_t U^T."""

    activation = property(lambda self: self.layer.activation)

    def _activate(self, a, out):
        """out = f(a); may overwrite a."""
        xp = backend.xp
        if self.activation == "tanh":
            xp.tanh(a, out=out)
        elif self.activation == "relu":
            xp.maximum(a, 0, out=out)
        elif self.activation == "sigmoid":
            a *= 0.5
            xp.tanh(a, out=out)
            out *= 0.5
            out += 0.5
        else:
            out[...] = a

    def _forward_loop(self, X, init, mk):
        xp = backend.xp
        T, B, _ = X.shape
        H = self.units
        A = self._project_inputs(X)
        Hs = self._buf("Hs", (T + 1, B, H))
        self._set_initial(Hs[0], init, 0)
        add_recurrent = self._step_product("U", self.recurrent_kernel, B, accumulate=True)
        for t in range(T):
            a = A[t]
            add_recurrent(Hs[t], a)              # a += h_{t-1} U
            self._activate(a, Hs[t + 1])
            if mk is not None and mk.partial[t]:
                xp.copyto(Hs[t + 1], Hs[t], where=mk.keep[t])
        self._fw = (X, Hs)
        return Hs, [Hs[T]]

    def _backward_loop(self, dH, dlast, mk):
        xp = backend.xp
        X, Hs = self._fw
        T, B, _ = X.shape
        H = self.units
        # f'(a) for every step at once, from the outputs
        F, Y = self._buf("F", (T, B, H)), Hs[1:]
        if self.activation == "tanh":
            xp.multiply(Y, Y, out=F)
            xp.subtract(1.0, F, out=F)
        elif self.activation == "relu":
            xp.greater(Y, 0, out=F)
        elif self.activation == "sigmoid":
            xp.subtract(1.0, Y, out=F)
            F *= Y
        else:
            F[...] = 1.0
        if mk is not None:
            F *= mk.m  # a masked step contributes nothing; its state passes through (below)
        backprop = self._step_product("UT", self.recurrent_kernel.T, B)   # dh_{t-1} = da_t U^T
        dh_next, tmp = self._buf("dh_next", (B, H)), self._buf("tmp", (B, H))
        dh_next[...] = dlast[0]
        for t in range(T - 1, -1, -1):
            dh = dH[t]
            dh += dh_next
            da = F[t]
            da *= dh                             # F becomes dA in place
            backprop(da, dh_next)
            if mk is not None and mk.partial[t]:
                xp.multiply(dh, mk.keepf[t], out=tmp)
                dh_next += tmp
        dA = F.reshape(T * B, H)
        xp.matmul(Hs[:-1].reshape(T * B, H).T, dA, out=self._grads[1])
        return self._input_side_grads(X, dA), [dh_next]


class LSTMLoop(FastLoop):
    """Forward: s(z) = 0.5 tanh(z / 2) + 0.5 with the sigmoid columns of [W; b] and U halved,
    so one tanh covers the four gates. Backward: factors a block of steps at a time,
        F = [g i(1-i), c_{t-1} f(1-f), i (1-g^2), tanh(c_t) o(1-o)],  K = o (1 - tanh(c_t)^2);
    per step  dh_t = dy_t + dz_{t+1} U^T,  dc_t = f_{t+1} dc_{t+1} + dh_t K_t,
        dz_t = [dc_t, dc_t, dc_t, dh_t] * F_t;
    then [dW; db] = X^T dZ, dU = H_prev^T dZ, dX = dZ W^T. With numba, each step's elementwise
    math is one call of a fused kernel (``fused.py``)."""

    def _gate_vectors(self):
        """Per-column (4H,) vectors: pre-activation scale, then y = alpha * tanh(.) + beta."""
        H = self.units
        scale, alpha, beta = (self._buf(n, (4 * H,)) for n in ("scale", "alpha", "beta"))
        scale[...] = 0.5
        alpha[...] = 0.5
        beta[...] = 0.5
        scale[2 * H:3 * H] = 1.0  # the candidate g = tanh(z_c) is a plain tanh
        alpha[2 * H:3 * H] = 1.0
        beta[2 * H:3 * H] = 0.0
        return scale, alpha, beta

    def _input_matrix(self):
        """[W; b] with the sigmoid columns halved (see ``_forward_loop``)."""
        Wb = super()._input_matrix()
        Wb *= self._gate_vectors()[0]
        return Wb

    def _has_kernels(self) -> bool:
        return True

    def _forward_loop(self, X, init, mk):
        xp = backend.xp
        T, B, _ = X.shape
        H = self.units
        scale, alpha, beta = self._gate_vectors()
        # s(z) = 0.5 tanh(z / 2) + 0.5: with the sigmoid columns of W, b and U halved (exact, a
        # power of two), one tanh covers all four gates
        Z = self._buf("Z", (T, B, 4 * H))            # x_t W + b, becomes the gate values [i, f, g, o]
        Us = self._buf("Us", (H, 4 * H))
        xp.multiply(self.recurrent_kernel, scale, out=Us)
        Hs, Cs, TC = self._buf("Hs", (T + 1, B, H)), self._buf("Cs", (T + 1, B, H)), self._buf("TC", (T, B, H))
        self._set_initial(Hs[0], init, 0)
        self._set_initial(Cs[0], init, 1)
        self._fw = (X, Z, Hs, Cs, TC)
        if self._compiled(Z.dtype):                  # the fused path's loop, all steps in one call
            self._project_inputs(X)
            compiled.lstm_forward_into(Z, Us, Hs, Cs, TC, None if mk is None else self._real_steps(T, B, mk))
            return Hs, [Hs[T], Cs[T]]
        # iterating over arrays hands out each step's views at half the cost of indexing them
        states = zip(Hs[:-1], Hs[1:], Cs[:-1], Cs[1:], TC)
        if self._fused(Z.dtype):
            recurrent, r = self._step_product("Us", Us, B), self._buf("r", (B, 4 * H))
            for start, stop in self._projected_chunks(X):
                for t, z, (h_prev, h, c_prev, c, tc) in zip(range(start, stop), Z[start:stop], states):
                    recurrent(h_prev, r)                 # r = h_{t-1} U
                    fused.lstm_forward_step(z, r, c_prev, c, tc, h)
                    if mk is not None and mk.partial[t]:
                        xp.copyto(h, h_prev, where=mk.keep[t])
                        xp.copyto(c, c_prev, where=mk.keep[t])
            return Hs, [Hs[T], Cs[T]]
        self._project_inputs(X)
        add_recurrent = self._step_product("Us", Us, B, accumulate=True)
        tmp_h = self._buf("tmp_h", (B, H))
        Zi, Zf, Zg, Zo = Z.reshape(T, B, 4, H).transpose(2, 0, 1, 3)
        for t, (z, i, f, g, o, (h_prev, h, c_prev, c, tc)) in enumerate(zip(Z, Zi, Zf, Zg, Zo, states)):
            add_recurrent(h_prev, z)             # z += h_{t-1} U
            xp.tanh(z, out=z)
            z *= alpha
            z += beta
            xp.multiply(f, c_prev, out=c)
            xp.multiply(i, g, out=tmp_h)
            c += tmp_h
            xp.tanh(c, out=tc)
            xp.multiply(o, tc, out=h)
            if mk is not None and mk.partial[t]:
                xp.copyto(h, h_prev, where=mk.keep[t])
                xp.copyto(c, c_prev, where=mk.keep[t])
        return Hs, [Hs[T], Cs[T]]

    def _backward_factors(self, steps, mk):
        """Derivative factors F (steps, B, 4, H) and K (steps, B, H) of the steps in ``steps``."""
        xp = backend.xp
        X, Z, Hs, Cs, TC = self._fw
        T, B, _ = X.shape
        H = self.units
        gates = Z.reshape(T, B, 4, H)[steps]
        i, f, g, o = gates[:, :, 0], gates[:, :, 1], gates[:, :, 2], gates[:, :, 3]
        F = self._buf("F", (T, B, 4, H))[steps]
        Fi, Ff, Fg, Fo = F[:, :, 0], F[:, :, 1], F[:, :, 2], F[:, :, 3]
        xp.subtract(1.0, i, out=Fi)
        Fi *= i
        Fi *= g                                      # g i (1 - i)
        xp.subtract(1.0, f, out=Ff)
        Ff *= f
        Ff *= Cs[:-1][steps]                         # c_{t-1} f (1 - f)
        xp.multiply(g, g, out=Fg)
        xp.subtract(1.0, Fg, out=Fg)
        Fg *= i                                      # i (1 - g^2)
        xp.subtract(1.0, o, out=Fo)
        Fo *= o
        Fo *= TC[steps]                              # tanh(c_t) o (1 - o)
        K = self._buf("K", (T, B, H))[steps]
        xp.multiply(TC[steps], TC[steps], out=K)
        xp.subtract(1.0, K, out=K)
        K *= o                                       # o (1 - tanh(c_t)^2): dc_t += dh_t K_t
        f_pass = f
        if mk is not None:
            # masked steps: no gate gradient, and dh, dc pass to the previous step unchanged
            F *= mk.m[steps][..., None]
            K *= mk.m[steps]
            f_pass = self._pass_through("f_pass", f, mk, steps)
        return F, K, f_pass

    def _backward_loop(self, dH, dlast, mk):
        xp = backend.xp
        X, Z, Hs, Cs, TC = self._fw
        T, B, _ = X.shape
        H = self.units
        dh_next, dc, tmp = self._buf("dh_next", (B, H)), self._buf("dc", (B, H)), self._buf("tmp_h", (B, H))
        dh_next[...] = dlast[0]
        dc[...] = dlast[1]
        if self._compiled(Z.dtype):
            dZ = self._buf("F", (T, B, 4, H)).reshape(T, B, 4 * H)
            compiled.lstm_backward_into(Z, xp.ascontiguousarray(self.recurrent_kernel), Cs, TC, dH, dZ,
                                        dh_next, dc, None if mk is None else self._real_steps(T, B, mk))
        elif self._fused(Z.dtype):
            backprop = self._step_product("UT", self.recurrent_kernel.T, B)   # dh_{t-1} = dz_t U^T
            dZ = self._buf("F", (T, B, 4, H)).reshape(T, B, 4 * H)
            steps = zip(Z, Cs[:-1], TC, dH, dZ, self._real_steps(T, B, mk))
            for t, (gates, c_prev, tc, dh, dz, m) in reversed(list(enumerate(steps))):
                fused.lstm_backward_step(gates, c_prev, tc, dh, dh_next, dc, m, dz)
                backprop(dz, dh_next)
                if mk is not None and mk.partial[t]:
                    xp.multiply(dh, mk.keepf[t], out=tmp)
                    dh_next += tmp
        else:
            backprop = self._step_product("UT", self.recurrent_kernel.T, B)   # dh_{t-1} = dz_t U^T
            for start, stop in self._step_blocks(T, B):
                F, K, f_pass = self._backward_factors(slice(start, stop), mk)
                steps = zip(dH[start:stop], F, F.reshape(stop - start, B, 4 * H), K, f_pass)
                for t, (dh, dz, dz_flat, k, f) in reversed(list(enumerate(steps, start))):
                    dh += dh_next
                    xp.multiply(dh, k, out=tmp)
                    dc += tmp
                    xp.multiply(dz[:, :3], dc[:, None, :], out=dz[:, :3])   # F (B, 4, H) becomes dz
                    xp.multiply(dz[:, 3], dh, out=dz[:, 3])
                    dc *= f
                    backprop(dz_flat, dh_next)
                    if mk is not None and mk.partial[t]:
                        xp.multiply(dh, mk.keepf[t], out=tmp)
                        dh_next += tmp
        dZ = self._buf("F", (T, B, 4, H)).reshape(T * B, 4 * H)
        xp.matmul(Hs[:-1].reshape(T * B, H).T, dZ, out=self._grads[1])
        return self._input_side_grads(X, dZ), [dh_next, dc]


class GRULoop(FastLoop):
    """reset_after: factors Fh = (1-z)(1-hh^2), F = [(h_{t-1} - hh) z(1-z), Fh hz_h r(1-r), Fh r];
    per step  dh_t = dy_t + dh_t(from t+1),  dHZ_t = dh_t F_t,  dh_{t-1} = dh_t z + dHZ_t U^T;
    then dU = H_prev^T dHZ, db[1] = sum dHZ, dXZ = dHZ with its h block replaced by dh Fh,
    dW = X^T dXZ, db[0] = sum dXZ, dX = dXZ W^T. reset_after=False: its own loop (the candidate
    needs (r h) U_h). With numba (reset_after only), fused kernels per step."""

    reset_after = property(lambda self: self.layer.reset_after)

    def _has_kernels(self) -> bool:
        return self.reset_after

    def _input_matrix(self):
        """[W; b_input] with the z, r columns halved (tanh form of the sigmoid). reset_after:
        the input bias is b[0] plus the recurrent z, r biases (they add like input biases)."""
        D, H = self.kernel.shape[0], self.units
        Wb = self._buf("Wb", (D + 1, 3 * H))
        Wb[:D] = self.kernel
        if self.reset_after:
            Wb[D] = self.bias[0]
            Wb[D, :2 * H] += self.bias[1][:2 * H]
        else:
            Wb[D] = self.bias
        Wb[:, :2 * H] *= 0.5
        return Wb

    def _forward_loop(self, X, init, mk):
        """One of three loops, chosen once: the fused kernels (reset_after, numba), the NumPy
        reset_after loop, or the reset_before loop (its candidate needs (r h) U_h)."""
        T, B, _ = X.shape
        Hs = self._buf("Hs", (T + 1, B, self.units))
        self._set_initial(Hs[0], init, 0)
        if not self.reset_after:
            self._forward_reset_before(X, Hs, mk)
        elif self._compiled(X.dtype):                # the fused path's loop, all steps in one call
            Z = self._project_inputs(X)
            Us, HZ, b_hh = self._recurrent_part(X)
            self._fw = (X, Z, Hs, HZ)
            compiled.gru_forward_into(Z, Us, b_hh, Hs, HZ, None if mk is None else self._real_steps(T, B, mk))
        elif self._fused(X.dtype):
            self._forward_fused(X, Hs, mk)
        else:
            self._forward_reset_after(X, Hs, mk)
        return Hs, [Hs[T]]

    def _recurrent_part(self, X):
        """reset_after: Us, U with the z, r columns halved; HZ (T, B, 3H) for h_{t-1} Us (+ b_hh
        in the h block); and b_hh."""
        T, B, _ = X.shape
        H = self.units
        Us = self._buf("Us", (H, 3 * H))
        Us[...] = self.recurrent_kernel
        Us[:, :2 * H] *= 0.5
        HZ = self._buf("HZ", (T, B, 3 * H))
        return Us, HZ, self.bias[1][2 * H:]

    def _forward_fused(self, X, Hs, mk):
        xp = backend.xp
        T, B, _ = X.shape
        Z = self._buf("Z", (T, B, 3 * self.units))   # projected a chunk at a time below
        Us, HZ, b_hh = self._recurrent_part(X)
        recurrent = self._step_product("Us", Us, B)
        self._fw = (X, Z, Hs, HZ)
        states = zip(Hs[:-1], Hs[1:])
        for start, stop in self._projected_chunks(X):
            for t, x, hz, (h_prev, h) in zip(range(start, stop), Z[start:stop], HZ[start:stop], states):
                recurrent(h_prev, hz)
                fused.gru_forward_step(x, hz, b_hh, h_prev, h)
                if mk is not None and mk.partial[t]:
                    xp.copyto(h, h_prev, where=mk.keep[t])

    def _forward_reset_after(self, X, Hs, mk):
        xp = backend.xp
        B, H = X.shape[1], self.units
        Z = self._project_inputs(X)                  # x_t W + b, becomes the gate values [z, r, hh]
        Us, HZ, b_hh = self._recurrent_part(X)
        recurrent = self._step_product("Us", Us, B)
        tmp_h = self._buf("tmp_h", (B, H))
        self._fw = (X, Z, Hs, HZ)
        # each step's views by iteration (half the cost of indexing them, see LSTM)
        steps = zip(Z[:, :, :2 * H], Z[:, :, :H], Z[:, :, H:2 * H], Z[:, :, 2 * H:], HZ,
                    HZ[:, :, :2 * H], HZ[:, :, 2 * H:], Hs[:-1], Hs[1:])
        for t, (zr, z, r, hh, hz, hz_zr, hz_h, h_prev, h) in enumerate(steps):
            recurrent(h_prev, hz)
            hz_h += b_hh
            zr += hz_zr
            xp.tanh(zr, out=zr)
            zr *= 0.5
            zr += 0.5
            xp.multiply(r, hz_h, out=tmp_h)
            hh += tmp_h
            xp.tanh(hh, out=hh)
            xp.subtract(h_prev, hh, out=tmp_h)
            tmp_h *= z
            xp.add(hh, tmp_h, out=h)
            if mk is not None and mk.partial[t]:
                xp.copyto(h, h_prev, where=mk.keep[t])

    def _forward_reset_before(self, X, Hs, mk):
        xp = backend.xp
        T, B, _ = X.shape
        H, U = self.units, self.recurrent_kernel
        Z = self._project_inputs(X)                  # x_t W + b, becomes the gate values [z, r, hh]
        U_zr = self._buf("U_zr", (H, 2 * H))
        xp.multiply(U[:, :2 * H], 0.5, out=U_zr)
        U_h = self._buf("U_h", (H, H))
        U_h[...] = U[:, 2 * H:]
        RH = self._buf("RH", (T, B, H))              # r * h_{t-1}, kept for dU_h
        tmp_h, tmp_zr = self._buf("tmp_h", (B, H)), self._buf("tmp_zr", (B, 2 * H))
        for t in range(T):
            z = Z[t]
            xp.matmul(Hs[t], U_zr, out=tmp_zr)
            zr = z[:, :2 * H]
            zr += tmp_zr
            xp.tanh(zr, out=zr)
            zr *= 0.5
            zr += 0.5
            xp.multiply(z[:, H:2 * H], Hs[t], out=RH[t])
            xp.matmul(RH[t], U_h, out=tmp_h)
            hh = z[:, 2 * H:]
            hh += tmp_h
            xp.tanh(hh, out=hh)
            xp.subtract(Hs[t], hh, out=tmp_h)
            tmp_h *= z[:, :H]
            xp.add(hh, tmp_h, out=Hs[t + 1])
            if mk is not None and mk.partial[t]:
                xp.copyto(Hs[t + 1], Hs[t], where=mk.keep[t])
        self._fw = (X, Z, Hs, RH)

    def _update_factors(self, Z, steps=slice(None)):
        """The gate values z, r, hh (views of Z) and, for the steps in ``steps``,
        Fh = (1 - z)(1 - hh^2) (dh_t Fh is the gradient of the candidate's pre-activation) and 1 - z."""
        xp = backend.xp
        T, B = Z.shape[0], Z.shape[1]
        gates = Z.reshape(T, B, 3, self.units)[steps]
        z, r, hh = gates[:, :, 0], gates[:, :, 1], gates[:, :, 2]
        Fh = self._buf("Fh", (T, B, self.units))[steps]
        one_minus_z = self._buf("one_minus_z", (T, B, self.units))[steps]
        xp.multiply(hh, hh, out=Fh)
        xp.subtract(1.0, Fh, out=Fh)
        xp.subtract(1.0, z, out=one_minus_z)
        Fh *= one_minus_z
        return z, r, hh, Fh, one_minus_z

    def _backward_factors(self, steps, mk):
        """reset_after: F (steps, B, 3, H) = [Fz, Fr, Fhr] of the steps in ``steps`` (F becomes
        dHZ in place in the loop), the masked Fh (kept whole for the input side) and z_pass."""
        xp = backend.xp
        X, Z, Hs, HZ = self._fw
        T, B, _ = X.shape
        H = self.units
        z, r, hh, Fh, one_minus_z = self._update_factors(Z, steps)
        F = self._buf("F", (T, B, 3, H))[steps]
        Fz, Fr, Fhr = F[:, :, 0], F[:, :, 1], F[:, :, 2]
        xp.subtract(Hs[:-1][steps], hh, out=Fz)
        Fz *= z
        Fz *= one_minus_z                            # (h_{t-1} - hh) z (1 - z)
        xp.subtract(1.0, r, out=Fr)
        Fr *= r
        Fr *= HZ[steps][:, :, 2 * H:]
        Fr *= Fh                                     # Fh hz_h r (1 - r)
        xp.multiply(Fh, r, out=Fhr)                  # Fh r
        z_pass = z
        if mk is not None:
            F *= mk.m[steps][..., None]
            Fh *= mk.m[steps]
            z_pass = self._pass_through("z_pass", z, mk, steps)
        return F, z_pass

    def _backward_loop(self, dH, dlast, mk):
        if not self.reset_after:
            return self._backward_loop_reset_before(dH, dlast, mk)
        xp = backend.xp
        X, Z, Hs, HZ = self._fw
        T, B, _ = X.shape
        H = self.units
        dh_next, tmp = self._buf("dh_next", (B, H)), self._buf("tmp_h", (B, H))
        dh_next[...] = dlast[0]
        F = self._buf("F", (T, B, 3, H))             # the factors, then dHZ, in place
        fused_steps = self._fused(Z.dtype)
        if self._compiled(Z.dtype):                  # the fused loop below, all steps in one call
            compiled.gru_backward_into(Z, HZ, xp.ascontiguousarray(self.recurrent_kernel), Hs, dH,
                                       F.reshape(T, B, 3 * H), self._buf("Fh", (T, B, H)), dh_next,
                                       None if mk is None else self._real_steps(T, B, mk))
        elif fused_steps:
            backprop = self._step_product("UT", self.recurrent_kernel.T, B, accumulate=True)
            dXh = self._buf("Fh", (T, B, H))          # the gradient of x_t W_h + b[0]_h
            steps = zip(Z, HZ, Hs[:-1], dH, self._real_steps(T, B, mk), F.reshape(T, B, 3 * H), dXh)
            for gates, hz, h_prev, dh, m, dhz, dxh in reversed(list(steps)):
                fused.gru_backward_step(gates, hz, h_prev, dh, dh_next, m, dhz, dxh)
                backprop(dhz, dh_next)               # dh_next += dhz_t U^T
        else:
            backprop = self._step_product("UT", self.recurrent_kernel.T, B)   # dhz_t U^T, part of dh_{t-1}
            for start, stop in self._step_blocks(T, B):
                F_block, z_pass = self._backward_factors(slice(start, stop), mk)
                steps = zip(dH[start:stop], F_block, F_block.reshape(stop - start, B, 3 * H), z_pass)
                for dh, dhz, dhz_flat, z in reversed(list(steps)):
                    dh += dh_next                    # dH keeps dh_t for the input side below
                    dhz *= dh[:, None, :]            # F becomes dHZ in place
                    backprop(dhz_flat, dh_next)
                    xp.multiply(dh, z, out=tmp)
                    dh_next += tmp
        dZ = F.reshape(T * B, 3 * H)
        xp.matmul(Hs[:-1].reshape(T * B, H).T, dZ, out=self._grads[1])
        xp.matmul(ones_vector(T * B, dZ.dtype), dZ, out=self._grads[2][1])
        # dHZ -> dXZ: the h block is dh Fh, not dh Fh r
        if fused_steps:
            F[:, :, 2] = self._buf("Fh", (T, B, H))  # the kernel wrote dh Fh there
        else:
            xp.multiply(dH, self._buf("Fh", (T, B, H)), out=F[:, :, 2])
        return self._input_side_grads(X, dZ, bias_grad=self._grads[2][0]), [dh_next]

    def _backward_loop_reset_before(self, dH, dlast, mk):
        xp = backend.xp
        X, Z, Hs, RH = self._fw
        T, B, _ = X.shape
        H = self.units
        z, r, hh, Fh, one_minus_z = self._update_factors(Z)
        Fz = self._buf("Fz", (T, B, H))
        xp.subtract(Hs[:-1], hh, out=Fz)
        Fz *= z
        Fz *= one_minus_z                            # (h_{t-1} - hh) z (1 - z)
        Fr = self._buf("Fr", (T, B, H))
        xp.subtract(1.0, r, out=Fr)
        Fr *= r
        Fr *= Hs[:-1]                                # h_{t-1} r (1 - r): da_r = d(r h) Fr
        z_pass = z
        if mk is not None:
            Fh *= mk.m
            Fz *= mk.m
            z_pass = self._pass_through("z_pass", z, mk)
        U = self.recurrent_kernel
        U_zrT, U_hT = self._buf("U_zrT", (2 * H, H)), self._buf("U_hT", (H, H))
        transpose_into(U_zrT, U[:, :2 * H])
        transpose_into(U_hT, U[:, 2 * H:])
        dZ3 = self._buf("dZ", (T, B, 3 * H))
        dh_next, tmp, drh = self._buf("dh_next", (B, H)), self._buf("tmp_h", (B, H)), self._buf("drh", (B, H))
        dh_next[...] = dlast[0]
        for t in range(T - 1, -1, -1):
            dh = dH[t]
            dh += dh_next
            dz = dZ3[t]
            xp.multiply(dh, Fh[t], out=dz[:, 2 * H:])
            xp.matmul(dz[:, 2 * H:], U_hT, out=drh)          # d(r h_{t-1})
            xp.multiply(dh, Fz[t], out=dz[:, :H])
            xp.multiply(drh, Fr[t], out=dz[:, H:2 * H])
            xp.matmul(dz[:, :2 * H], U_zrT, out=dh_next)
            xp.multiply(dh, z_pass[t], out=tmp)
            dh_next += tmp
            xp.multiply(drh, r[t], out=tmp)
            dh_next += tmp
        dZ = dZ3.reshape(T * B, 3 * H)
        self._grads[1][:, :2 * H] = Hs[:-1].reshape(T * B, H).T @ dZ[:, :2 * H]
        self._grads[1][:, 2 * H:] = RH.reshape(T * B, H).T @ dZ[:, 2 * H:]
        return self._input_side_grads(X, dZ), [dh_next]


LOOPS = {"rnn": SimpleRNNLoop, "lstm": LSTMLoop, "gru": GRULoop}

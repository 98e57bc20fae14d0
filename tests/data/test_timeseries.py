"""The sktime/UEA .ts reader, standardization from train, the real UEA files."""
import os
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.timeseries import amplitude_spread, apply_standardization, fold_frames, frames_per_step_for, \
    load_ts_classification, load_ts_dataset, needs_series_scale, read_ts, standardization, with_deltas, \
    with_series_scale

DATA = os.environ.get("RNNLAB_DATA")
needs_data = pytest.mark.skipif(not DATA or not Path(DATA, "timeseries").is_dir(),
                                reason="RNNLAB_DATA does not point at the shared datasets (timeseries/)")

HEADER = """# a comment
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
"""


def write(tmp_path, body, header=HEADER, name="toy.ts"):
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


def test_reads_dimensions_unequal_lengths_labels_and_missing(tmp_path):
    ts = read_ts(write(tmp_path, "1,2,3:4,5,6:up\n7,?:9,10:down\n"))
    assert ts.problem == "Toy" and ts.dimensions == 2 and ts.class_labels == ["up", "down"]
    assert ts.series[0].shape == (3, 2) and ts.series[0][:, 1].tolist() == [4, 5, 6]
    assert np.isnan(ts.series[1][1, 0]) and ts.labels == ["up", "down"] and ts.lines == [10, 11]


def test_standardization_uses_train_only_and_fills_missing_with_the_mean(tmp_path):
    train = write(tmp_path, "1,3:10,10:up\n5,?:10,30:down\n")
    test = write(tmp_path, "100,3:10,10:up\n", name="test.ts")
    data = load_ts_classification(train, test)
    mean, std = standardization(read_ts(train).series)
    assert mean.tolist() == [3.0, 15.0]
    assert std[1] == pytest.approx(np.std([10, 10, 10, 30]))
    assert data.train.inputs[1][1, 0] == 0.0                     # the missing value
    assert data.test.inputs[0][0, 0] == pytest.approx((100 - 3) / std[0])
    constant = apply_standardization([np.ones((2, 1))], *standardization([np.ones((3, 1))]))
    assert constant[0].tolist() == [[0.0], [0.0]]                # std 0 -> 1, not inf


def test_a_value_near_the_float_range_keeps_its_feature(tmp_path):
    """One 1e308 overflowed the variance: std inf, and the whole feature standardized to 0.
    The statistics are those of the values scaled by a power of two, so otherwise bit-equal."""
    train = write(tmp_path, "1,2,3:1e308,5,6:up\n4,5:-1e308,7:down\n")
    data = load_ts_classification(train, train)
    mean, std = data.mean, data.std
    assert np.isfinite(std).all() and std[1] == pytest.approx(np.sqrt(0.4) * 1e308)
    big = data.train.inputs[0][:, 1]
    assert np.isfinite(big).all() and big[0] > 1 and len(set(big.tolist())) == 3      # not all 0
    assert data.train.inputs[1][0, 1] == pytest.approx(-big[0])                        # -1e308: opposite
    plain = [np.random.default_rng(0).normal(size=(6, 3)) * 50 for _ in range(3)]
    stacked = np.concatenate(plain)
    assert standardization(plain)[0].tolist() == stacked.mean(axis=0).tolist()
    assert standardization(plain)[1].tolist() == stacked.std(axis=0).tolist()
    steep = write(tmp_path, "1,2:1e308,-1e308:up\n4,5:6,7:down\n", name="steep.ts")
    with pytest.raises(ValueError, match=r"steep\.ts, line 10, step 2, feature 2: the difference from the step before"):
        load_ts_classification(steep, steep, deltas=True)                       # -1e308 - 1e308: beyond the range
    with pytest.raises(ValueError, match=r"series 1, step 1, feature 1: -1e\+308 is beyond the float32 range"):
        apply_standardization([np.array([[-1e308]])], np.array([1e308]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"series 1, step 2, feature 1: 1e\+39 is beyond the float32 range"):
        apply_standardization([np.array([[0.0], [1e39]])], np.array([0.0]), np.array([1.0]))   # inf in float32


def test_deltas_are_first_differences_appended_as_features():
    x = np.array([[1.0, 10.0], [4.0, 8.0], [np.nan, 8.5]])
    (out,) = with_deltas([x])
    assert out.shape == (3, 4)
    assert np.array_equal(out[:, :2], x, equal_nan=True)
    assert out[0, 2:].tolist() == [0.0, 0.0] and out[1, 2:].tolist() == [3.0, -2.0] and out[2, 3] == 0.5
    assert np.isnan(out[2, 2])                                    # beside a missing value: missing


def test_deltas_are_standardized_from_train_and_applied_to_new_series(tmp_path):
    train = write(tmp_path, "1,3,6:10,10,20:up\n5,?:10,30:down\n")
    test = write(tmp_path, "100,3:10,10:up\n", name="test.ts")
    data = load_ts_classification(train, test, deltas=True)
    assert data.deltas and data.input_dim == 4 and data.series_features == 2
    assert load_ts_classification(train, test).series_features == 2             # without deltas: input_dim
    mean, std = standardization(with_deltas(read_ts(train).series))
    assert np.array_equal(data.mean, mean, equal_nan=True) and mean[2] == pytest.approx((0 + 2 + 3 + 0) / 4)
    raw_test = read_ts(test).series[0]
    assert np.allclose(data.encode_series(raw_test), data.test.inputs[0])   # prediction = evaluation
    assert data.test.inputs[0][1, 2] == pytest.approx((3 - 100 - mean[2]) / std[2])
    with pytest.raises(ValueError, match=r"shape \(time, 2\), got \(3, 4\)"):
        data.encode_series(np.zeros((3, 4)))                       # already with deltas: refused


@pytest.mark.parametrize("header, body, message", [
    (HEADER.replace("@dimensions 2", "@dimensions two"), "1:2:up\n", r"line 6: @dimensions must be a positive"),
    (HEADER.replace("@univariate false", "@univariate maybe"), "1:2:up\n", r"line 5: @univariate must be true or false"),
    (HEADER.replace("@classLabel true up down", "@classLabel"), "1:2:up\n", r"line 8: @classLabel must be"),
    (HEADER.replace("@classLabel true up down\n", ""), "1:2:up\n", r"no '@classLabel true"),
    (HEADER.replace("@data\n", ""), "", r"no @data line"),
    (HEADER.replace("@problemName Toy", "@frobnicate 3"), "1:2:up\n", r"line 2: unknown header tag @frobnicate"),
    (HEADER, "1,2:3,4:sideways\n", r"line 10: label 'sideways' is not among"),
    (HEADER, "1,2:3:up\n", r"line 10: the dimensions have different lengths"),
    (HEADER, "1,2:up\n", r"line 10: 1 dimensions, the header says 2"),
    (HEADER, "1,x:3,4:up\n", r"line 10: dimension 1: 'x' is not a number"),
    (HEADER.replace("@equalLength false", "@equalLength true\n@seriesLength 3"), "1,2:3,4:up\n",
     r"line 11: series of length 2, the header says @seriesLength 3"),
    # issue 29: three classes, two of them named "A"; a value beyond the float range read as inf
    (HEADER.replace("@classLabel true up down", "@classLabel true A A B"), "1:2:A\n",
     r"line 8: @classLabel lists the label 'A' twice"),
    (HEADER, "1,2:3,1e400:up\n", r"line 10: dimension 2: '1e400' is not a finite number"),
    (HEADER, "1,-inf:3,4:up\n", r"line 10: dimension 1: '-inf' is not a finite number"),
])
def test_malformed_files_name_file_and_line(tmp_path, header, body, message):
    with pytest.raises(ValueError, match=r"toy\.ts.*" + message):
        read_ts(write(tmp_path, body, header))


def test_test_file_with_other_dimensions_is_refused(tmp_path):
    train = write(tmp_path, "1,2:3,4:up\n")
    other = write(tmp_path, "1,2:up\n", HEADER.replace("@dimensions 2", "@dimensions 1"), name="other.ts")
    with pytest.raises(ValueError, match=r"other\.ts: 1 dimensions, but the training file"):
        load_ts_classification(train, other)


@needs_data
def test_japanese_vowels_and_basic_motions():
    jv = load_ts_dataset("JapaneseVowels")
    assert (len(jv.train), len(jv.test), jv.input_dim, jv.num_classes) == (270, 370, 12, 9)
    lengths = [len(s) for s in jv.train.inputs + jv.test.inputs]
    assert min(lengths) == 7 and max(lengths) == 29
    stacked = np.concatenate(jv.train.inputs)
    assert np.allclose(stacked.mean(axis=0), 0, atol=1e-9) and np.allclose(stacked.std(axis=0), 1)
    bm = load_ts_dataset("BasicMotions")
    assert (len(bm.train), len(bm.test), bm.input_dim) == (40, 40, 6)
    assert bm.labels == ["Standing", "Running", "Walking", "Badminton"]
    assert {len(s) for s in bm.train.inputs} == {100}
    batch = next(bm.train.batches(8))
    assert batch["x"].shape == (8, 100, 6) and batch["mask"].all()


def test_unlabelled_series_for_prediction(tmp_path):
    header = HEADER.replace("@classLabel true up down", "@classLabel false")
    path = write(tmp_path, "1,2:3,4\n5:6\n", header)
    with pytest.raises(ValueError, match="no '@classLabel true"):
        read_ts(path)
    ts = read_ts(path, require_labels=False)
    assert ts.labels == [None, None] and ts.series[1].tolist() == [[5.0, 6.0]]


def test_fold_frames_puts_k_frames_side_by_side_and_pads_the_last_step_with_zeros():
    series = np.arange(14, dtype=float).reshape(7, 2)           # 7 frames of 2 features
    folded, = fold_frames([series], 3)
    assert folded.shape == (3, 6)
    assert folded[0].tolist() == [0, 1, 2, 3, 4, 5]              # frames 0, 1, 2 of step 0
    assert folded[2].tolist() == [12, 13, 0, 0, 0, 0]           # frame 6, then two frames past the end
    assert fold_frames([series], 1)[0] is series


@pytest.mark.parametrize("longest, k", [(24, 1), (64, 1), (65, 2), (150, 3), (251, 4), (1460, 23)])
def test_automatic_folding_reads_the_longest_series_in_at_most_64_steps(longest, k):
    assert frames_per_step_for(longest) == k
    steps = lambda frames: -(-longest // frames)                 # noqa: E731 (ceil division)
    assert steps(k) <= 64 and (k == 1 or steps(k - 1) > 64)      # the fewest frames per step that fit


def test_percent_comment_lines_are_skipped(tmp_path):
    body = "1,2:3,4:up\n"
    path = write(tmp_path, "% a comment as archive files converted from ARFF write them\n" + HEADER + body,
                 header="")
    assert read_ts(path).labels == ["up"]


def test_loading_folds_after_standardizing_and_caps_the_steps(tmp_path):
    body = "".join(f"{','.join(str(v) for v in range(n))}:{','.join(str(-v) for v in range(n))}:up\n"
                   for n in (130, 10))
    train = write(tmp_path, body)
    data = load_ts_classification(train, train, frames_per_step=None)
    assert data.frames_per_step == 3 and data.input_dim == 6 and data.series_features == 2
    assert [len(x) for x in data.train.inputs] == [44, 4]       # ceil(130 / 3), ceil(10 / 3)
    flat = apply_standardization(read_ts(train).series, data.mean, data.std)[0]
    assert np.allclose(data.train.inputs[0][:43].reshape(-1, 2), flat[:129])
    assert np.allclose(data.encode_series(read_ts(train).series[0]), data.train.inputs[0])
    assert any("3 frames read as one step" in note for note in data.notes)
    capped = load_ts_classification(train, train, max_len=20, frames_per_step=None)
    assert [len(x) for x in capped.train.inputs] == [20, 4]     # the cap counts steps, after folding
    assert load_ts_classification(train, train).frames_per_step == 1   # the library's default reads every frame


def test_series_scale_standardizes_each_series_and_keeps_its_scale_as_features():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])          # feature 2 constant
    scaled, = with_series_scale([x])
    assert scaled.shape == (3, 6)
    assert np.allclose(scaled[:, 0], [-1.2247449, 0, 1.2247449]) and np.all(scaled[:, 1] == 0)
    assert np.allclose(scaled[:, 2:4], [3.0, 5.0])              # the means
    assert np.allclose(scaled[0, 4], np.log10(np.std([1, 3, 5]))) and scaled[0, 5] == -300   # log10 std


def test_per_series_scaling_follows_the_spread_of_the_amplitudes():
    rng = np.random.default_rng(0)
    alike = [rng.normal(0, 1, (20, 1)) for _ in range(30)]
    spread = [rng.normal(0, 1, (20, 1)) * 10.0 ** rng.uniform(-3, 3) for _ in range(30)]
    assert amplitude_spread(alike) < 3 and not needs_series_scale(alike)
    assert amplitude_spread(spread) > 1000 and needs_series_scale(spread)


def test_loading_scales_series_when_their_amplitudes_spread_and_new_series_alike(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        scale = 10.0 ** (i % 8 - 4)                            # amplitudes over eight decades
        rows.append(",".join(f"{v:.6g}" for v in scale * rng.normal(0, 1, 12)) + ":" +
                    ",".join(f"{v:.6g}" for v in rng.normal(0, 1, 12)) + ":" + ("up" if i % 2 else "down"))
    train = write(tmp_path, "\n".join(rows) + "\n")
    data = load_ts_classification(train, train, series_scale=None)
    assert data.series_scale and data.input_dim == 6 and data.series_features == 2
    assert any("standardized on its own" in note for note in data.notes)
    raw = read_ts(train).series[3]
    assert np.allclose(data.encode_series(raw), data.test.inputs[3])
    assert not load_ts_classification(train, train).series_scale    # the library's default: off

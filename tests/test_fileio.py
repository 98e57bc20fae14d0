"""fileio: json_default (what json.dumps writes for values it cannot write itself) and the output
rule of every command (issue 29: never over an existing file unasked, never over an input)."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from rnnlab import fileio
from rnnlab.fileio import OutputRefused, check_output, check_output_folder, json_default, write_output


def test_json_default_writes_numpy_scalars_as_numbers_and_the_rest_as_text():
    row = {"loss": np.float32(0.5), "step": np.int64(7), "ok": np.bool_(True), "path": Path("runs/x")}
    assert json.loads(json.dumps(row, default=json_default)) == {"loss": 0.5, "step": 7, "ok": True,
                                                                   "path": "runs/x"}


def _write(text):
    return lambda f: f.write(text.encode())


def test_write_output_refuses_an_existing_file_unless_overwrite(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    with pytest.raises(OutputRefused, match=r"--out .*precious.txt already exists: add --overwrite"):
        write_output(precious, _write("new"))
    assert precious.read_text() == "keep me" and os.listdir(tmp_path) == ["precious.txt"]  # no temp file left
    write_output(precious, _write("new"), overwrite=True)
    assert precious.read_text() == "new"


def test_an_input_is_refused_by_any_name_even_with_overwrite(tmp_path):
    source = tmp_path / "model.keras"
    source.write_bytes(b"weights")
    (tmp_path / "alias.keras").symlink_to(source)
    os.link(source, tmp_path / "hard.keras")
    for name in (source, tmp_path / "alias.keras", tmp_path / "hard.keras", tmp_path / "sub" / ".." / "model.keras"):
        with pytest.raises(OutputRefused, match="own input .*refused even with --overwrite"):
            check_output(name, overwrite=True, inputs=[source])
    assert source.read_bytes() == b"weights"


def test_empty_paths_folders_and_wrong_suffixes_are_refused(tmp_path):
    with pytest.raises(OutputRefused, match="--out is empty"):
        check_output("")
    with pytest.raises(OutputRefused, match="--out is empty"):
        check_output_folder("")
    with pytest.raises(OutputRefused, match=r"--plot .* is a folder: give the name of the file to write \(ending in "
                                            r"\.png\)"):
        check_output(tmp_path, flag="--plot", suffix=".png")
    with pytest.raises(OutputRefused, match=r"must end in \.png"):
        check_output(tmp_path / "a.txt", flag="--plot", suffix=".png")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputRefused, match="exists and is not a folder"):
        check_output_folder(tmp_path / "file")


def test_a_folder_holding_files_is_refused_unless_overwrite(tmp_path):
    assert check_output_folder(tmp_path / "new", overwrite=False) == tmp_path / "new"
    assert check_output_folder(tmp_path, overwrite=False) == tmp_path   # empty
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(OutputRefused, match="already holds files: add --overwrite"):
        check_output_folder(tmp_path, overwrite=False)
    assert check_output_folder(tmp_path, overwrite=True) == tmp_path
    assert check_output_folder(tmp_path) == tmp_path   # overwrite None: the caller checks the content


def test_a_file_appearing_during_the_write_is_not_replaced(tmp_path):
    """Without overwrite the finished file is linked into place only if the name is still free."""
    target = tmp_path / "out.tsv"

    def write(f):
        target.write_text("written meanwhile by someone else")
        f.write(b"ours")
    with pytest.raises(OutputRefused, match="already exists"):
        write_output(target, write)
    assert target.read_text() == "written meanwhile by someone else" and os.listdir(tmp_path) == ["out.tsv"]


def test_without_hard_links_the_write_still_refuses_an_existing_file(tmp_path, monkeypatch):
    def no_link(src, dst):
        raise OSError(fileio.errno.EPERM, "hard links not supported")
    monkeypatch.setattr(fileio.os, "link", no_link)
    write_output(tmp_path / "a.txt", _write("first"))
    assert (tmp_path / "a.txt").read_text() == "first"
    with pytest.raises(OutputRefused):
        fileio.atomic_write(tmp_path / "a.txt", _write("second"), replace=False)
    assert (tmp_path / "a.txt").read_text() == "first" and os.listdir(tmp_path) == ["a.txt"]


def test_split_lines_breaks_at_newlines_only():
    from rnnlab.fileio import split_lines

    assert split_lines("a\u2028b\u0085c\x0cd\x1ce\tf\r\ng\n") == ["a\u2028b\u0085c\x0cd\x1ce\tf", "g"]
    assert split_lines("a\n\nb") == ["a", "", "b"] and split_lines("") == [] and split_lines("\n") == [""]

"""``tnml structure``: images, animated GIFs and .npy tensors reshaped, learned, written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tnml import io
from tnml.cli import app
from tnml.tensor.network import TensorNetwork
from tnml.workflows.structure import factor_axis, plan_reshape


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def image_file(tmp_path):
    x = np.linspace(0, 1, 32)
    pixels = np.stack([np.outer(x, x), np.outer(x, 1 - x), np.outer(1 - x, x)], axis=-1)
    path = tmp_path / "image.png"
    Image.fromarray((pixels * 255).round().astype(np.uint8)).save(path)
    return path


def test_factoring_and_reshape_plan():
    assert factor_axis(600, 10) == (10, 10, 6)
    assert factor_axis(64, 10) == (8, 8)
    assert factor_axis(61, 10) == (61,)
    plan = plan_reshape((600, 600, 3))
    assert plan.modes == (10, 10, 6, 10, 10, 6, 3)
    array = np.arange(600 * 600 * 3).reshape(600, 600, 3)
    assert np.array_equal(array.reshape(plan.modes).reshape(plan.original_shape), array)
    assert plan_reshape((4, 6), modes=(2, 2, 6)).modes == (2, 2, 6)


def test_image_to_network_and_back(tmp_path, image_file):
    out = tmp_path / "out"
    result = run("structure", str(image_file), "--rse", "0.05", "--out", str(out), "-q")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["reshape"]["modes"] == [8, 4, 8, 4, 3]
    assert report["rse"] <= 0.05 and report["n_params"] < report["entries"]
    net = io.load(out / "network.tnml")
    pixels = np.asarray(Image.open(image_file), dtype=np.float64) / 255
    dense = net.to_dense().numpy().reshape(pixels.shape)
    assert np.linalg.norm(dense - pixels) / np.linalg.norm(pixels) == pytest.approx(
        report["rse"], rel=1e-6
    )
    for name in ("graph.png", "path.png", "reconstruction.png"):
        assert (out / name).stat().st_size > 0
    assert "parameters" in result.output and "rse" in result.output


def test_npy_with_explicit_modes_and_completion(tmp_path):
    truth = TensorNetwork.chain((4, 4, 4, 4), 2, generator=torch.Generator().manual_seed(0))
    np.save(tmp_path / "t.npy", truth.to_dense().numpy().reshape(16, 16))
    out = tmp_path / "out"
    result = run(
        "structure",
        str(tmp_path / "t.npy"),
        "--params",
        "80",
        "--modes",
        "4,4,4,4",
        "--missing",
        "0.3",
        "--out",
        str(out),
        "-q",
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["reshape"]["modes"] == [4, 4, 4, 4]
    assert report["n_params"] <= 80
    assert report["hidden_rse"] < 0.05  # a rank-2 chain is completed from 70% of its entries


def test_animated_gif_is_a_video(tmp_path):
    frames = [Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)) for k in range(4)]
    frames[0].save(tmp_path / "v.gif", save_all=True, append_images=frames[1:])
    out = tmp_path / "out"
    result = run("structure", str(tmp_path / "v.gif"), "--params", "200", "--out", str(out), "-q")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "video" and report["reshape"]["original_shape"] == [4, 8, 8, 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rse", "0"), "rse must be"),
        (("--rse", "1.5"), "rse must be"),
        (("--params", "3"), "max_params must be at least"),
        ((), "give --rse or --params"),
        (("--rse", "0.1", "--modes", "5,5"), "modes must be"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, image_file, args, message):
    result = run("structure", str(image_file), *args, "--out", str(tmp_path / "o"), "-q")
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_unreadable_files_exit_2(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    (tmp_path / "bad.png").write_text("not an image")
    for name in ("x.txt", "bad.png", "missing.npy"):
        result = run("structure", str(tmp_path / name), "--rse", "0.1", "-q")
        assert result.exit_code == 2 and "FILE" in result.output


@pytest.mark.parametrize(
    ("mode", "dtype", "scale", "shape"),
    [
        ("L", np.uint8, 255, (12, 12)),
        ("I;16", np.uint16, 65535, (12, 12)),
        ("RGBA", np.uint8, 255, (12, 12, 4)),
    ],
)
def test_grey_16_bit_and_alpha_images_keep_their_values(tmp_path, mode, dtype, scale, shape):
    from tnml.workflows.structure import load_array

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, scale, size=shape).astype(dtype)
    Image.fromarray(pixels).save(tmp_path / "x.png")  # mode follows the dtype and shape
    assert Image.open(tmp_path / "x.png").mode.startswith(mode[0])
    array, kind = load_array(tmp_path / "x.png")
    assert kind == "image" and array.shape == shape
    np.testing.assert_allclose(array, pixels / scale)


def test_black_image_and_a_mask_that_hides_nothing_exit_2(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "black.png")
    result = run("structure", str(tmp_path / "black.png"), "--rse", "0.1", "-q")
    assert result.exit_code == 2 and "zero on every observed entry" in result.output
    Image.fromarray(np.full((2, 2), 9, np.uint8)).save(tmp_path / "tiny.png")
    result = run("structure", str(tmp_path / "tiny.png"), "--rse", "0.1", "--missing", "0.01")
    assert result.exit_code == 2 and "hides no entry" in result.output

"""Fixtures for the .npy reader's byte and memory orders, written by numpy itself.

    /usr/bin/python3 tools/reference/make_npy_orders.py

packages/core/test/fixtures/npy_orders/
  model_fortran.npz   tiny_f32's weights (model.safetensors) converted to Google ViT names the
                      way a numpy user does it, keeping the transposed views: every rank >= 2
                      kernel is stored with fortran_order True (np.savez of a transposed array).
  cases.npz           header cases a real writer produces: Fortran-order and big-endian arrays,
                      '<f2', 0-d arrays, '|u1', '|b1', '>i8', '<u4'.
  cases.json          the same arrays as nested lists in C order, for the test to compare with.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_ref as R  # noqa: E402
from make_fixtures import CORE, HEADS, fixed_zip_timestamps  # noqa: E402

OUT = os.path.join(CORE, "npy_orders")


def fortran_google_npz(sd: dict) -> dict:
    """timm_to_google_npz without its final np.ascontiguousarray: the transposes stay column-major."""
    g = R.timm_to_google_npz(sd, HEADS)
    out = {}
    for name, a in g.items():
        out[name] = np.asfortranarray(a) if a.ndim >= 2 else a
    return out


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    sd, _ = R.load_safetensors(os.path.join(CORE, "tiny_f32", "model.safetensors"))
    sd = {k: np.asarray(v, dtype=np.float32) for k, v in sd.items()}
    g = fortran_google_npz(sd)
    assert sum(a.flags.f_contiguous and not a.flags.c_contiguous for a in g.values()) >= 10
    rng = np.random.default_rng(7)
    base = rng.standard_normal((2, 3, 4)).astype(np.float32)
    cases = {
        "f4_fortran_2d": np.asfortranarray(base[0]),
        "f4_fortran_3d": np.asfortranarray(base),
        "f4_big_endian": base.astype(">f4"),
        "f8_big_endian_fortran": np.asfortranarray(base.astype(">f8")),
        "f2_little": base.astype("<f2"),
        "f2_fortran": np.asfortranarray(base.astype("<f2")),
        "i8_big_endian": np.arange(-3, 3, dtype=">i8").reshape(2, 3),
        "u4_little": np.array([0, 1, 2**32 - 1], dtype="<u4"),
        "u1_fortran": np.asfortranarray(np.arange(12, dtype="|u1").reshape(3, 4)),
        "b1": np.array([True, False, True]),
        "scalar_f4": np.array(3.5, dtype="<f4"),
        "scalar_big_f8": np.array(-1.25, dtype=">f8"),
    }
    with fixed_zip_timestamps():
        np.savez_compressed(os.path.join(OUT, "model_fortran.npz"), **g)
        np.savez(os.path.join(OUT, "cases.npz"), **cases)
    expected = {k: {"dtype": v.dtype.str, "shape": list(v.shape), "values": v.astype(np.float64).tolist()} for k, v in cases.items()}
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    # round trip through numpy: what we wrote is what np.load gives back
    loaded = np.load(os.path.join(OUT, "cases.npz"))
    for k, v in cases.items():
        assert loaded[k].dtype == v.dtype and np.array_equal(loaded[k], v), k
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

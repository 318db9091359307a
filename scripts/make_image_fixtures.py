#!/usr/bin/env python3
"""Writes the image fixtures the Rust tests read:

- tests/fixtures/legacy/state_dict.pth: a small state dict in torch.save's
  legacy (pre-1.6, not zip) format, as torchvision's and most older `.pth`
  files are, with float, int64 and a non-contiguous (transposed) tensor,
  two tensors sharing one storage, and an OrderedDict with `_metadata`;
- tests/fixtures/legacy/expected.safetensors: the same tensors, contiguous;
- tests/fixtures/rotation.safetensors: a random [3, 7, 9] image and
  torchvision's bilinear rotations of it (`rotated_<degrees>`), which the
  loader's `rotate` augmentation must match.

Run with the test venv's torch (scripts/test-venv): it is deterministic.

Usage: .cache/test-venv/bin/python scripts/make_image_fixtures.py
"""

import collections
import pathlib

import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "legacy"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 4, generator=g)
    sd = collections.OrderedDict()
    sd["features.0.weight"] = torch.randn(3, 2, 3, 3, generator=g)
    sd["features.1.running_mean"] = torch.randn(3, generator=g)
    sd["features.1.num_batches_tracked"] = torch.tensor(7)
    sd["classifier.weight"] = base.t()  # non-contiguous: strides (1, 4)
    sd["classifier.bias"] = base[2]  # a view into the same storage, at an offset
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    torch.save(sd, OUT / "state_dict.pth", _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous().clone() for k, v in sd.items()}, OUT / "expected.safetensors")
    print(f"wrote {OUT}")
    write_rotations()


# Angles of both signs, a right angle and one off the grid; the odd,
# unequal sides put the centre between pixels on one axis only.
ROTATIONS = [10.0, -25.0, 90.0, 33.5]


def write_rotations():
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 7, 10, generator=g)
    tensors = {"image": image}
    for degrees in ROTATIONS:
        tensors[f"rotated_{degrees}"] = F.rotate(image, degrees, interpolation=InterpolationMode.BILINEAR).contiguous()
    path = OUT.parent / "rotation.safetensors"
    save_file(tensors, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

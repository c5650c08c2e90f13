"""How much a freshly initialised tree classifier's root output depends on its input.

For MNIST images at 14x14 and 28x28 and a few bonds, builds ``TTNClassifierModule`` with the
estimator's start (folded copies plus noise, a random root; ``reset_parameters``) and prints,
over the first 300 training images, the mean and smallest cosine between the unit-norm root
outputs of two different images, and the mean and spread of the amplitudes' log-scale.

Usage (the command behind the figures in benchmarks/RESULTS.md):

    python benchmarks/ttn_start_diagnostics.py --bonds 10,20
"""

from __future__ import annotations

import argparse

import torch

from tnml.data import downsample, flatten_images, load_mnist
from tnml.nn import TTNClassifierModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--bonds", default="10,20")
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images, _ = load_mnist(args.data_dir, "train")
    print("pixels  bond  layout  cosine mean  cosine min  log-scale mean  log-scale std")
    for size in (14, 28):
        x = torch.as_tensor(flatten_images(downsample(images[: args.n], size)))
        for bond in (int(b) for b in args.bonds.split(",")):
            for layout in ("1d", [size, size]):
                module = TTNClassifierModule(size * size, 10, bond, layout=layout)
                module.reset_parameters(generator=torch.Generator().manual_seed(0))
                with torch.no_grad():
                    mantissa, log_scale = module.amplitudes(x.to(torch.float32))
                cosine = mantissa @ mantissa.T
                off = cosine[~torch.eye(len(x), dtype=torch.bool)]
                name = "1d" if layout == "1d" else "image"
                print(
                    f"{size * size:6d}  {bond:4d}  {name:>6}  {float(off.mean()):11.4f}  "
                    f"{float(off.min()):10.4f}  {float(log_scale.mean()):14.2f}  "
                    f"{float(log_scale.std()):13.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

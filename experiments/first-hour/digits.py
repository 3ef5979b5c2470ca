"""scikit-learn's bundled digits as a 32 px PNG image folder: a real data set nobody on the project made.

``root/train/<digit>/*.png`` (1,347 images; nascomp holds 10 % of them out for validation) and ``root/test/<digit>/*.png``
(450 images), split per class with a fixed seed. The 8x8 originals (16 grey levels) are scaled to 32 px with bilinear
interpolation, as a user exporting them for a 32 px model would.

    python experiments/first-hour/digits.py runs/digits     # then nascomp train ... --data imagefolder:runs/digits
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def write_digits(root: Path, test_share: float = 0.25, seed: int = 0) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    for label in range(10):
        idx = rng.permutation(np.flatnonzero(digits.target == label))
        n_test = int(round(len(idx) * test_share))
        for split, chosen in (("test", idx[:n_test]), ("train", idx[n_test:])):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                pixels = (digits.images[i] * (255.0 / 16.0)).round().astype(np.uint8)
                Image.fromarray(pixels, mode="L").resize((32, 32), Image.BILINEAR).save(folder / f"{i:04d}.png")
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    print(write_digits(parser.parse_args().root))

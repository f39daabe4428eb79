"""Convert Once-for-All's ImageNet accuracy predictor (``acc_predictor.pth``) into the file mnas ships.

    python experiments/convert_ofa_predictor.py [--pth acc_predictor.pth] [--out PATH]   # default: `mnas data fetch ofa_predictor`'s copy

The source is the tutorial predictor of Cai et al. (repository mit-han-lab/once-for-all, file
``ofa/acc_predictor.pth`` of han-cai/files, MIT licence): a torch state dict of
Linear(128, 400)-ReLU-Linear(400, 400)-ReLU-Linear(400, 400)-ReLU-Linear(400, 1), loaded here weights-only.
The output (``mnas/accuracy/models/ofa_acc_predictor.json``) holds every tensor's float32 bytes
(little-endian, base64) with its shape, so it is lossless; beside them the licence notice, the citation, the
encoding and the source file's sha256. The same input gives the same file byte for byte
(``tests/test_ofa_evaluator.py`` checks it when the shared data is present).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PTH = None  # the data root's copy (`mnas data fetch ofa_predictor`), else ../shared/data's
DEFAULT_OUT = REPO / "mnas" / "accuracy" / "models" / "ofa_acc_predictor.json"
LAYERS = ("0", "2", "4", "6")  # the Linear layers of the nn.Sequential (1, 3, 5 are ReLUs)

LICENCE = """MIT License

Copyright (c) 2021 Han Cai

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

CITATION = ("Han Cai, Chuang Gan, Tianzhe Wang, Zhekai Zhang, Song Han. Once-for-All: Train One Network and "
            "Specialize it for Efficient Deployment. ICLR 2020. https://github.com/mit-han-lab/once-for-all")


def tensor_record(t) -> dict:
    import numpy as np

    a = np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4"))
    return {"shape": list(a.shape), "dtype": "<f4", "base64": base64.b64encode(a.tobytes()).decode("ascii")}


def convert(pth: Path) -> str:
    import torch

    raw = pth.read_bytes()
    state = torch.load(pth, map_location="cpu", weights_only=True)
    expected = {f"{i}.{w}" for i in LAYERS for w in ("weight", "bias")}
    if set(state) != expected:
        raise SystemExit(f"{pth}: keys {sorted(state)} are not OFA's predictor's {sorted(expected)}")
    data = {
        "format": "mnas-ofa-mlp-1",
        "name": "ofa-acc-predictor-mbv3-w1.2",
        "description": ("Once-for-All's ImageNet accuracy predictor for the sub-networks of its MobileNetV3 supernet "
                        "ofa_mbv3_d234_e346_k357_w1.2 (an MLP its authors fitted on ~16K sub-networks measured with "
                        "inherited weights). Output: top-1 as a fraction on OFA's 10,000-image holdout of ImageNet "
                        "train, which reads 3-5 pp above the official validation set."),
        "citation": CITATION,
        "licence": "MIT",
        "licence_notice": LICENCE,
        "source": "https://hanlab.mit.edu/files/OnceForAll/tutorial/acc_predictor.pth (han-cai/files, ofa/acc_predictor.pth)",
        "source_sha256": hashlib.sha256(raw).hexdigest(),
        "encoding": ("128 inputs: 20 block slots (5 stages x 4) x one-hot kernel {3, 5, 7}, then 20 x one-hot "
                     "expansion {3, 4, 6}, then 8 one-hot resolution slots at (r - 112) // 16; slots beyond a "
                     "stage's depth are all zero. Only the slots of r 160-224 were trained."),
        "architecture": "Linear(128,400)-ReLU-Linear(400,400)-ReLU-Linear(400,400)-ReLU-Linear(400,1)",
        "layers": [{"weight": tensor_record(state[f"{i}.weight"]), "bias": tensor_record(state[f"{i}.bias"])}
                   for i in LAYERS],
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pth", type=Path, default=DEFAULT_PTH, help="OFA's acc_predictor.pth")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON file to write")
    args = ap.parse_args(argv)
    if args.pth is None:
        sys.path.insert(0, str(REPO))
        from mnas.data.registry import default_path

        args.pth = default_path("ofa_predictor")
    if not args.pth.is_file():
        print(f"{args.pth}: no such file (give --pth PATH to OFA's acc_predictor.pth, or get it with "
              "`mnas data fetch ofa_predictor`)", file=sys.stderr)
        return 2
    text = convert(args.pth)
    args.out.write_text(text)
    licence = args.out.with_name("ofa_acc_predictor.LICENSE")
    licence.write_text(f"{args.out.name}: the weights of Once-for-All's accuracy predictor, converted losslessly by "
                       f"experiments/convert_ofa_predictor.py.\n\nCite: {CITATION}\n\n{LICENCE}")
    print(f"{args.out}: {len(text)} characters ({args.pth}, sha256 {json.loads(text)['source_sha256'][:12]}...)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

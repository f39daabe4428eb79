"""Search spaces: stable names, decoding, encodings, enumeration, file errors."""

import json
import random

import pytest

from mnas.counting import count
from mnas.errors import MnasError
from mnas.space import list_spaces, load_space


def test_shipped_spaces_load():
    assert {"v3_small", "v3_large", "mnasnet", "nasbench_macro"} <= set(list_spaces())


def test_nasbench_macro_counts_equal_the_benchmark_for_all_6561(shared_data):
    """Independent check of decoding: the benchmark's own params and FLOPs for every key."""
    bench = json.loads((shared_data / "nas_bench_macro" / "nas-bench-macro_cifar10.json").read_text())
    sp = load_space("nasbench_macro")
    assert sp.size == len(bench) == 6561
    for key, rec in bench.items():
        c = count(sp.decode(sp.decode_string(key)), num_classes=10)
        assert (c.params, c.madds) == (rec["params"], rec["flops"]), key


def test_nasbench_identity_moved_to_end_names_same_network():
    sp = load_space("nasbench_macro")
    assert sp.decode(sp.decode_string("10120000")) == sp.decode(sp.decode_string("10102000"))
    assert sp.decode(sp.decode_string("01200000")) != sp.decode(sp.decode_string("10200000"))


def test_choice_names_are_stable_and_ordered():
    sp = load_space("v3_small")
    names = [c.name for c in sp.choices()]
    assert names[:4] == ["s1.kernel", "s1.expand", "s1.se", "s1.act"]
    assert names[4:6] == ["s2.depth", "s2.width"]
    lw = load_space("v3_small", mode="layer")
    assert "s3.l4.kernel" in [c.name for c in lw.choices()]  # depth 3 + 1


@pytest.mark.parametrize("name", ["v3_small", "v3_large", "mnasnet"])
def test_random_samples_decode_and_enumeration_covers_them(name):
    sp = load_space(name)
    rng = random.Random(0)
    distinct = {(la.block, la.cin, la.hin, la.cout, la.hout) for la in sp.distinct_layers()}
    for _ in range(50):
        s = sp.sample(rng)
        assert sp.decode_string(sp.encode_string(s)) == s
        for _, layer in sp.decode_layers(s):
            assert (layer.block, layer.cin, layer.hin, layer.cout, layer.hout) in distinct


def test_space_file_errors_name_the_field(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: x\nstem: {out: 16, stride: 2}\nstages:\n  - {out: 24, stride: 2, choices: {kernal: [3, 5]}}\n")
    with pytest.raises(MnasError, match=r"s.yaml: stages\[0\]: unknown choice field 'kernal'"):
        load_space(p)
    p.write_text("name: x\nstem: {out: 16, stride: 2}\nstages:\n  - {out: 24, stride: 3}\n")
    with pytest.raises(MnasError, match="stride must be 1 or 2"):
        load_space(p)
    p.write_text("name: x\nstages: [\n")
    with pytest.raises(MnasError, match="line"):
        load_space(p)
    with pytest.raises(MnasError, match="unknown search space 'nope'"):
        load_space("nope")


def test_bad_sample_and_encoding():
    sp = load_space("nasbench_macro")
    with pytest.raises(MnasError, match="expected 8"):
        sp.decode_string("2221")
    with pytest.raises(MnasError, match="not an option index"):
        sp.decode_string("22212229")

"""Accel-NASBench CSV loading and the choices of a network, checked against the file read independently."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mnas import anb
from conftest import anb_code
from mnas.errors import MnasError


@pytest.fixture(scope="session")
def csv_path(anb_csv_path):
    return anb_csv_path


@pytest.fixture(scope="session")
def rows(anb_rows):
    return anb_rows


@pytest.fixture(scope="session")
def space(anb_space):
    return anb_space


code_of = anb_code


def test_load_matches_the_file_read_with_csv(csv_path, rows):
    data = anb.load_csv(csv_path)
    assert len(data) == len(rows) == 4626  # the README: 4,114 train + 512 validation rows
    assert int((data.split == "val").sum()) == 512
    for i in random.Random(0).sample(range(len(rows)), 300):
        assert anb.format_code(data.choices[i]) == code_of(rows[i])
        assert data.columns["val_top1"][i] == float(rows[i]["val_top1"])
    # ten networks were trained twice (same choices, two ids): 4,616 distinct networks
    assert data.networks == len({code_of(r) for r in rows}) == 4616


def test_default_path_and_env_variable(csv_path, monkeypatch, tmp_path):
    monkeypatch.setenv("MNAS_ANB_CSV", str(csv_path))
    assert len(anb.load_csv()) == 4626
    monkeypatch.setenv("MNAS_ANB_CSV", str(tmp_path / "nope.csv"))
    with pytest.raises(MnasError, match=r"nope.csv not found \(the default; set \$MNAS_ANB_CSV"):
        anb.load_csv()


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_bad_csv_files_are_one_clear_line(csv_path, tmp_path):
    text = csv_path.read_text()
    header, *lines = text.splitlines()
    with pytest.raises(MnasError, match="missing.csv not found"):
        anb.load_csv(tmp_path / "missing.csv")
    with pytest.raises(MnasError, match="is empty"):
        anb.load_csv(_write(tmp_path, "empty.csv", ""))
    with pytest.raises(MnasError, match="has a header but no rows"):
        anb.load_csv(_write(tmp_path, "header.csv", header + "\n"))
    # cut in the middle of a row: its last columns are missing
    cut = "\n".join([header] + lines[:20]) + "\n" + lines[20][: len(lines[20]) // 3]
    with pytest.raises(MnasError, match=r"truncated.csv: line 22 has \d+ fields, the header 49 \(the last line: the file looks truncated"):
        anb.load_csv(_write(tmp_path, "truncated.csv", cut))
    wrong = header.replace("val_top1", "top1")
    with pytest.raises(MnasError, match="wrong.csv lacks column.*val_top1"):
        anb.load_csv(_write(tmp_path, "wrong.csv", "\n".join([wrong] + lines[:5])))
    cells = lines[3].split(",")
    cells[header.split(",").index("macs_m")] = "lots"
    bad = "\n".join([header] + lines[:3] + [",".join(cells)] + lines[4:6])
    with pytest.raises(MnasError, match=r"nonnum.csv: line 5, column 'macs_m': 'lots' is not a number"):
        anb.load_csv(_write(tmp_path, "nonnum.csv", bad))
    cells = lines[0].split(",")
    cells[header.split(",").index("block2_l")] = "4"
    with pytest.raises(MnasError, match=r"choice.csv: line 2: anb block 2: 4 layers is outside 1..3"):
        anb.load_csv(_write(tmp_path, "choice.csv", "\n".join([header, ",".join(cells)])))
    with pytest.raises(MnasError, match="not a readable CSV|lacks column"):
        anb.load_csv(_write(tmp_path, "binary.csv", "\x00\x01\x02,\n\"unterminated"))


def test_encoding_errors_name_the_problem():
    assert anb.format_code(anb.parse_code(anb.EFFICIENTNET_B0)) == anb.EFFICIENTNET_B0
    with pytest.raises(MnasError, match="has 6 group"):
        anb.parse_code("1311-6321-6521-6331-6531-6541")
    with pytest.raises(MnasError, match="block 1: expansion 3 is not one of"):
        anb.parse_code("1311-3321-6521-6331-6531-6541-6311")
    with pytest.raises(MnasError, match="block 0: kernel 7"):
        anb.parse_code("1711-6321-6521-6331-6531-6541-6311")
    with pytest.raises(MnasError, match=r"block 2: 4 layers is outside 1..3 \(only block 5 takes 4\)"):
        anb.parse_code("1311-6321-6541-6331-6531-6541-6311")
    assert anb.parse_code("1311-6321-6521-6331-6531-6541-6311")[5, 2] == 4  # block 5 does take 4
    with pytest.raises(MnasError, match="group 3 '65x1' is not four digits"):
        anb.parse_code("1311-6321-65x1-6331-6531-6541-6311")


def test_inverse_decoding_recovers_every_way_a_network_is_given(rows, space):
    """Choices from a code, a space sample and a Network (decoded by the space itself) agree."""
    for row in random.Random(1).sample(rows, 200):
        code = code_of(row)
        sample = space.decode_string(code)
        net = space.decode(sample)
        for x in (code, sample, net, str(net)):
            assert anb.format_code(anb.choices_of(x)) == code
        assert anb.network_of(anb.parse_code(code)) == net  # the fast per-block assembly == the space's decoder


def test_networks_outside_the_space_are_named(space):
    from mnas import zoo
    from mnas.arch import parse_network

    with pytest.raises(MnasError, match="not an Accel-NASBench.*stem"):
        anb.choices_of(zoo.get("mobilenet_v3_large"))
    net = space.decode(space.decode_string(anb.EFFICIENTNET_B0))
    text = str(net)
    with pytest.raises(MnasError, match="outputs? .*channels, expected 16/24/40/80/112/192/320"):
        anb.choices_of(parse_network(text.replace("_c320_", "_c328_")))
    with pytest.raises(MnasError, match=r"layer 0 is ir_k3_e32_c16_se16_re_s1, the benchmark's is ir_k3_e32_c16_se8_re_s1"):
        anb.choices_of(parse_network(text.replace("ir_k3_e32_c16_se8_re_s1", "ir_k3_e32_c16_se16_re_s1")))
    with pytest.raises(MnasError, match="differs from the first layer of block 2"):
        anb.choices_of(parse_network(text.replace("ir_k5_e240_c40_se10_re_s1", "ir_k3_e240_c40_se10_re_s1")))
    with pytest.raises(MnasError, match="head"):
        anb.choices_of(parse_network(text.replace("head_c1280", "head_c1024")))


def test_block_costs_equal_mnas_counting(rows, space):
    """The features' per-block multiply-adds, plus stem and head, equal mnas.counting on the decoded network."""
    from mnas.counting import count

    picked = random.Random(2).sample(rows, 100)
    C = np.stack([anb.parse_code(code_of(r)) for r in picked])
    macs, _ = anb.block_costs(C)
    stem = 3 * 32 * 9 * 112 * 112
    head = 320 * 1280 * 49 + 1280 * 1000
    for c, m in zip(C, macs):
        assert round(m.sum() * 1e6) + stem + head == count(anb.network_of(c)).madds

"""`mnas data`: where datasets are looked for, fetching (resumable, sha256-checked) and converting them.

Offline: downloads come from a local HTTP server started here (never the real URLs), inputs are
fixtures built in tmp_path, or the developers' ../shared/data (skipped where it is absent).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import pickle
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from mnas.data import registry
from mnas.data.fetch import download, fetch
from mnas.errors import MnasError

B0_ARCH = {f"block{b}_{f}": v for b, blk in enumerate(
    [(1, 3, 1, True), (6, 3, 2, True), (6, 5, 2, True), (6, 3, 3, True), (6, 5, 3, True), (6, 5, 4, True),
     (6, 3, 1, True)]) for f, v in zip(("e", "k", "l", "se"), blk)}


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """An empty data root, no developer fallback, no per-dataset variables: a fresh user's machine."""
    root = tmp_path / "data"
    monkeypatch.setenv("MNAS_DATA", str(root))
    monkeypatch.setenv("MNAS_SHARED_DATA", str(tmp_path / "no-shared"))
    monkeypatch.setenv("MNAS_CACHE", str(tmp_path / "cache"))
    for ds in registry.DATASETS.values():
        if ds.env:
            monkeypatch.delenv(ds.env, raising=False)
    return root


def _doc(arch: dict, top1, macs, *, zcu=None, a100=None, a100_std=None) -> dict:
    return {"architecture": arch, "metrics": {"val_top1": top1, "val_top5": 90.5, "train_time": 1234.5},
            "model_info": {"macs": macs, "params": 5.288548},
            "platform_perf": {"latency_zcu102": {"latency_mean": zcu, "latency_std": None},
                              "throughput_a100": {"throughput_mean": a100, "throughput_std": a100_std}}}


def _release(path: Path, docs: dict[str, dict], prefix: str = "anb_dataset_jsons/") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, doc in docs.items():
            data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


# ---------------------------------------------------------------- Accel-NASBench: release -> CSV


def test_a_release_tarball_converts_row_by_row_with_the_benchmarks_split(roots, tmp_path):
    # ids 10 and 2 are in the benchmark's val and test lists (configs/data_splits/default_split), 0 in neither
    other = dict(B0_ARCH, block0_se=False, block6_l=2)
    tar = _release(tmp_path / "rel.tar.gz", {
        "result_10.json": _doc(B0_ARCH, 71.25, 399.5, zcu=3.5, a100=9000.25, a100_std=1.5),
        "result_2.json": _doc(other, 70.0, 420.0),
        "result_0.json": _doc(other, 69.5, 420.0, zcu=4.0),
        "README.txt": b"not a result",
    })
    report = fetch("accel_nasbench", tar, progress=False)
    assert report["converted"] == {"from": "release JSON tarball", "to": "csv", "networks": 3, "train": 1, "val": 1,
                                   "test": 1}
    assert report["inputs"][0]["verified"].startswith("not pinned")
    out = roots / "accel_nasbench" / "accel_nasbench.csv"
    rows = list(csv.DictReader(out.open()))
    assert [(r["id"], r["split"]) for r in rows] == [("0", "train"), ("2", "test"), ("10", "val")]
    b0 = rows[2]
    assert (b0["block0_e"], b0["block0_se"], b0["block5_l"], b0["block6_l"]) == ("1", "1", "4", "1")
    assert (b0["val_top1"], b0["macs_m"], b0["params_m"], b0["train_time_s"]) == ("71.25", "399.5", "5.288548", "1234.5")
    assert (b0["latency_zcu102_ms"], b0["throughput_a100_ips"], b0["throughput_a100_std"]) == ("3.5", "9000.25", "1.5")
    assert rows[1]["latency_zcu102_ms"] == "" and rows[1]["block0_se"] == "0"  # null -> empty, False -> 0
    from mnas.anb import EFFICIENTNET_B0, format_code, load_csv

    data = load_csv()  # the default path now finds the data root's copy
    assert data.path == out and format_code(data.choices[2]) == EFFICIENTNET_B0
    assert list(data.split) == ["train", "test", "val"]


@pytest.mark.parametrize("docs, match", [
    ({"notes.txt": b"hello"}, "holds no result_<id>.json"),
    ({"result_5.json": b"{not json"}, "result_5.json is not an Accel-NASBench result"),
    ({"result_5.json": {"architecture": {}}}, "result_5.json is not an Accel-NASBench result"),
])
def test_a_wrong_tarball_is_one_error_naming_what_is_wrong(roots, tmp_path, docs, match):
    tar = _release(tmp_path / "bad.tar.gz", docs)
    with pytest.raises(MnasError, match=match):
        fetch("accel_nasbench", tar, progress=False)
    assert not (roots / "accel_nasbench" / "accel_nasbench.csv").exists()  # nothing half-written


def test_the_shared_release_tarball_converts_to_exactly_the_shared_csv(shared_data, roots):
    tar = shared_data / "accel_nasbench" / "anb_dataset_jsons_trainval.tar.gz"
    want = shared_data / "accel_nasbench" / "accel_nasbench.csv"
    if not (tar.is_file() and want.is_file()):
        pytest.skip("the Accel-NASBench tarball or CSV is absent from the shared data folder")
    report = fetch("accel_nasbench", tar, progress=False)
    assert report["inputs"][0]["verified"].startswith("the release's train+val networks")
    got = roots / "accel_nasbench" / "accel_nasbench.csv"
    a, b = list(csv.reader(got.open())), list(csv.reader(want.open()))
    assert a[0] == b[0] and len(a) == len(b) == 4627
    assert [i for i, (x, y) in enumerate(zip(a, b)) if x != y] == []  # value for value
    assert got.read_bytes() == want.read_bytes()  # and byte for byte (the csv module's CRLF dialect)


def test_the_shipped_split_lists_are_the_benchmarks(anb_rows):
    from mnas.anb.release import splits

    s = splits()
    val = {int(r["id"]) for r in anb_rows if r["split"] == "val"}
    assert {i for i, v in s.items() if v == "val"} == val and len(val) == 512
    # the test split is exactly the ids 0..5137 missing from the train+val release
    assert {i for i, v in s.items() if v == "test"} == set(range(5138)) - {int(r["id"]) for r in anb_rows}


# ---------------------------------------------------------------- lookup order and messages


def test_missing_data_errors_name_the_fetch_command(roots):
    from mnas.accuracy.table import load_table
    from mnas.anb import load_csv
    from mnas.data import load_dataset

    with pytest.raises(MnasError, match=r"not found.*`mnas data fetch accel_nasbench`"):
        load_csv()
    with pytest.raises(MnasError, match=r"not found.*`mnas data fetch nasbench_macro`"):
        load_table()
    with pytest.raises(MnasError, match=r"`mnas data fetch cifar10-folder`"):
        load_dataset("cifar10-folder")
    with pytest.raises(MnasError, match=r"`mnas data fetch cifar10`"):
        load_dataset("cifar10")


def test_an_explicit_variable_comes_before_the_data_root_and_the_data_root_before_the_fallback(roots, tmp_path,
                                                                                              monkeypatch):
    shared = tmp_path / "no-shared" / "nas_bench_macro" / "nas-bench-macro_cifar10.json"
    shared.parent.mkdir(parents=True)
    shared.write_text("{}")
    assert registry.locate("nasbench_macro") == shared
    mine = roots / "nas_bench_macro" / "nas-bench-macro_cifar10.json"
    mine.parent.mkdir(parents=True)
    mine.write_text("{}")
    assert registry.locate("nasbench_macro") == mine
    env = tmp_path / "elsewhere.json"
    env.write_text("{}")
    monkeypatch.setenv("MNAS_NASBENCH_MACRO", str(env))
    assert registry.locate("nasbench_macro") == env
    assert [w for w, _ in registry.candidates("nasbench_macro")] == ["$MNAS_NASBENCH_MACRO", "data root",
                                                                      "developer fallback"]


# ---------------------------------------------------------------- download: resume, sha256


class _Server:
    """A local HTTP server for one payload; honours Range unless told not to; records the Range headers it got."""

    def __init__(self, payload: bytes, ranges: bool = True):
        self.payload, self.ranges, self.seen = payload, ranges, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                rng = self.headers.get("Range")
                outer.seen.append(rng)
                body, status = outer.payload, 200
                if rng and outer.ranges:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.end_headers()
                        return
                    body, status = body[start:], 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file.bin"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def payload():
    return np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("ranges", [True, False])
def test_an_interrupted_download_resumes_from_its_part_file(tmp_path, payload, ranges):
    server = _Server(payload, ranges=ranges)
    try:
        dest = tmp_path / "dl" / "file.bin"
        dest.parent.mkdir()
        (tmp_path / "dl" / "file.bin.part").write_bytes(payload[:123_456])  # what an interrupted run left
        download(server.url, dest, sha256=hashlib.sha256(payload).hexdigest(), progress=False)
        assert dest.read_bytes() == payload and not (tmp_path / "dl" / "file.bin.part").exists()
        assert server.seen == ["bytes=123456-"]  # it asked for the rest only (a server ignoring it resends all)
    finally:
        server.close()


def test_a_download_with_the_wrong_sha256_is_refused_and_its_part_removed(tmp_path, payload):
    server = _Server(payload)
    try:
        dest = tmp_path / "file.bin"
        with pytest.raises(MnasError, match="sha256 .* expected 0000"):
            download(server.url, dest, sha256="0" * 64, progress=False)
        assert not dest.exists() and not dest.with_name("file.bin.part").exists()
    finally:
        server.close()


def test_no_network_is_one_error_that_points_at_from(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(MnasError, match="no network here.*--from FILE"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "x", progress=False, timeout=5)


def _pixel1_doc() -> bytes:
    return json.dumps({str(i): {str(c): 1.0 + i + c / 10 for c in range(4)} for i in range(22)}).encode()


def test_fetch_downloads_from_the_registry_url_checks_its_pin_and_installs(roots, monkeypatch):
    import dataclasses

    body = _pixel1_doc()
    server = _Server(body)
    try:
        ds = registry.DATASETS["pixel1_singlepath"]
        good = dataclasses.replace(ds, sources=(registry.Source(server.url, "pixel1_runtime_model.json",
                                                                hashlib.sha256(body).hexdigest()),))
        monkeypatch.setitem(registry.DATASETS, "pixel1_singlepath", good)
        report = fetch("pixel1_singlepath", progress=False)
        target = roots / "latency" / "pixel1_singlepath" / "pixel1_runtime_model.json"
        assert target.read_bytes() == body and report["inputs"][0]["verified"].startswith("sha256 of the published")
        assert not (roots / ".downloads" / "pixel1_singlepath").exists()  # the download is cleaned up
        assert fetch("pixel1_singlepath", progress=False)["already_present"]
        bad = dataclasses.replace(good, sources=(dataclasses.replace(good.sources[0], sha256="f" * 64),))
        monkeypatch.setitem(registry.DATASETS, "pixel1_singlepath", bad)
        with pytest.raises(MnasError, match="expected ffff"):
            fetch("pixel1_singlepath", progress=False, force=True)
    finally:
        server.close()


def test_a_local_file_that_is_not_the_published_one_needs_no_check(roots, tmp_path):
    fake = tmp_path / "nas-bench-macro_cifar10.json"
    fake.write_text(json.dumps({"22212220": {"test_acc": [93.0, 93.2, 93.2], "mean_acc": 93.13, "std": 0.1,
                                             "params": 1, "flops": 2}}))
    with pytest.raises(MnasError, match="is not that of the published nas-bench-macro_cifar10.json.*--no-check"):
        fetch("nasbench_macro", fake, progress=False)
    report = fetch("nasbench_macro", fake, progress=False, check=False)
    assert report["inputs"][0]["verified"] == "no (--no-check)"
    from mnas.accuracy.table import load_table

    assert load_table()["22212220"]["mean_acc"] == 93.13
    wrong = tmp_path / "other.json"
    wrong.write_text("[1, 2]")
    with pytest.raises(MnasError, match="malformed"):  # read as mnas reads it before it is installed
        fetch("nasbench_macro", wrong, progress=False, check=False, force=True)


# ---------------------------------------------------------------- CIFAR-10 (both forms), OFA's tables


def _cifar_tarball(path: Path) -> Path:
    rng = np.random.default_rng(1)
    with tarfile.open(path, "w:gz") as tf:
        for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
            d = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
            data = pickle.dumps(d)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_cifar10_python_tarball_is_unpacked_where_the_loader_finds_it(roots, tmp_path):
    tar = _cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(MnasError, match="not that of the published cifar-10-python.tar.gz"):
        fetch("cifar10", tar, progress=False)  # the official tarball's sha256 is pinned
    fetch("cifar10", tar, progress=False, check=False)
    from mnas.data import load_dataset

    ds = load_dataset("cifar10")
    assert ds.train.x.shape == (20, 32, 32, 3) and len(ds.test) == 4  # 5 batches of 4, a test batch of 4


def test_cifar10_jpeg_archive_is_checked_for_its_class_folders(roots, tmp_path):
    from PIL import Image

    from mnas.data import CIFAR10_CLASSES

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buf, format="JPEG")
    jpg = buf.getvalue()

    def archive(name, classes):
        with tarfile.open(tmp_path / name, "w:gz") as tf:
            for split in ("train", "test"):
                for c in classes:
                    info = tarfile.TarInfo(f"CIFAR-10-images-master/{split}/{c}/0000.jpg")
                    info.size = len(jpg)
                    tf.addfile(info, io.BytesIO(jpg))
        return tmp_path / name

    with pytest.raises(MnasError, match="train/ has class folders .* expected airplane"):
        fetch("cifar10-folder", archive("nine.tar.gz", CIFAR10_CLASSES[:9]), progress=False)
    report = fetch("cifar10-folder", archive("ten.tar.gz", CIFAR10_CLASSES), progress=False)
    assert report["inputs"][0]["verified"].startswith("not pinned")
    assert registry.locate("cifar10-folder") == roots / "cifar10" / "cifar10_jpg.tar.gz"


def test_ofa_note10_tables_install_and_each_matches_its_pin(shared_data, roots):
    folder = shared_data / "latency" / "note10_ofa"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    report = fetch("note10_ofa", folder, progress=False)
    assert len(report["inputs"]) == 17 and all(e["verified"].startswith("sha256 of the published")
                                               for e in report["inputs"])
    from mnas.latency.ofa import load_ofa_table

    assert load_ofa_table(registry.locate("note10_ofa")).meta["per_resolution"] == list(range(160, 225, 4))


def test_note10_with_tables_missing_names_them(roots, tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "160_lookup_table.yaml").write_text("{}")
    with pytest.raises(MnasError, match="16 of 17 missing \\(164_lookup_table.yaml"):
        fetch("note10_ofa", tmp_path / "t", progress=False)


# ---------------------------------------------------------------- the command line


def test_cli_list_shows_what_is_there_and_fetch_installs_it(roots, tmp_path, capsys):
    from mnas.cli import main

    assert main(["data", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["datasets"]}
    assert set(rows) == {"accel_nasbench", "nasbench_macro", "cifar10", "cifar10-folder", "note10_ofa",
                         "ofa_predictor", "pixel1_singlepath"}
    assert not rows["accel_nasbench"]["present"] and rows["accel_nasbench"]["licence"] == "Apache-2.0"
    assert rows["ofa_predictor"]["shipped"]  # ships as JSON inside mnas
    tar = _release(tmp_path / "r.tar.gz", {"result_0.json": _doc(B0_ARCH, 70.0, 400.0)})
    assert main(["data", "fetch", "accel_nasbench", "--from", str(tar), "--no-progress"]) == 0
    assert "converted release JSON tarball -> csv (networks 1, train 1" in capsys.readouterr().out
    assert main(["data", "list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("accel_nasbench "))
    assert line.split()[1] == "yes" and str(roots) in line
    assert main(["data", "fetch", "accel_nasbench", "--from", str(tmp_path / "nope.tar.gz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file or folder" in err


def test_from_a_url_downloads_that_file_and_checks_it_against_the_published_pin(roots):
    body = _pixel1_doc()
    server = _Server(body)
    try:
        with pytest.raises(MnasError, match="is not that of the published pixel1_runtime_model.json"):
            fetch("pixel1_singlepath", server.url, progress=False)
        report = fetch("pixel1_singlepath", server.url, progress=False, check=False)
        assert report["inputs"][0]["sha256"] == hashlib.sha256(body).hexdigest()
        assert registry.locate("pixel1_singlepath").read_bytes() == body
    finally:
        server.close()

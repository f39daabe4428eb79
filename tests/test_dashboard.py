"""`mnas dashboard RUN`: bad input in one line; live, read-only view beside a running search."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from mnas.cli import main
from test_interrupt import _completed, _mnas, _search, _trials


def test_dashboard_bad_input_is_one_line(capsys, tmp_path):
    for argv, needle in ((["dashboard", tmp_path / "nothing"], "no such run folder"),
                         (["dashboard", tmp_path], "not a search run folder"),
                         (["dashboard", tmp_path, "--port", "0"], "argument --port")):
        code = main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and needle in err, err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.slow  # a search and a dashboard subprocess, ~25 s
def test_dashboard_shows_a_running_search_and_the_search_loses_nothing(tmp_path):
    pytest.importorskip("optuna_dashboard")
    out, trials, port = tmp_path / "run", 40, _free_port()
    search = _search(out, "slowmadds", trials, "--evaluator-option", "delay=0.3")  # ~12 s: time to watch
    dash = None
    try:
        deadline = time.time() + 120
        while _completed(out) < 1:
            assert search.poll() is None and time.time() < deadline, search.stderr.read()[-2000:]
            time.sleep(0.1)
        dash = _mnas("dashboard", out, "--port", port)
        assert "http://127.0.0.1:" in dash.stdout.readline()  # listening
        seen = []
        while search.poll() is None:
            studies = _api(port, "/api/studies")["study_summaries"]
            assert [s["study_name"] for s in studies] == ["mnas-search"]
            study = _api(port, f"/api/studies/{studies[0]['study_id']}")
            seen.append(sum(t["state"] == "Complete" for t in study["trials"]))
            time.sleep(0.3)
        _, err = search.communicate(timeout=120)
        assert search.returncode == 0, err
        # the dashboard re-reads the journal on its own schedule: it shows every trial within a few seconds
        shown, until = 0, time.time() + 30
        while shown < trials and time.time() < until:
            final = _api(port, f"/api/studies/{studies[0]['study_id']}")
            shown = sum(t["state"] == "Complete" for t in final["trials"])
            time.sleep(0.5)
        assert shown == trials
    finally:
        for p in (search, dash):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
    assert seen == sorted(seen) and any(0 < n < trials for n in seen)  # watched it grow, live
    stored = _trials(out)  # the search itself lost nothing and left nothing running
    assert sum(t.state.name == "COMPLETE" for t in stored) == trials
    assert not [t for t in stored if t.state.name == "RUNNING"]
    assert dash.returncode == 0  # SIGTERM stops the dashboard cleanly

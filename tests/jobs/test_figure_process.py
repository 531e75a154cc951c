"""The validation's figures drawn in a helper process (jobs._figure_process): the same bytes
as drawn here, errors and messages carried back, and every way the helper can fail ending in
the figures drawn here, with one warning."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import time

import numpy as np
import pandas as pd
import pytest

from cpc_core.render import figures
from jobs import _figure_process as fp

FORMATS = ["png", "svg"]


def _specs():
    lags = pd.DataFrame({"commune": np.repeat(["a", "b", "c", "d", "e", "f"], 3),
                         "lag_h": np.tile([-1, 0, 1], 6),
                         "rho": np.linspace(0.05, 0.6, 18)})  # fmt: skip
    return [
        figures.FigureSpec("composition", (0.011, 0.41705, 0.41502, 0.165)),
        figures.FigureSpec("lag_sweep", (lags,), {"marks": {"Table 7": 0}}),
        figures.FigureSpec("composition", (0.011, 0.3, 0.41502, 0.2)),
    ]


def test_helper_draws_the_same_bytes_and_the_caller_takes_from_the_back():
    """Figures drawn by the helper are byte-identical to those drawn here (the independent
    reference: figures.draw in this process). take_last hands the caller the last job the
    helper has not taken, and only once; the helper answers the others."""
    specs = _specs()
    want = [figures.draw(s, FORMATS) for s in specs]
    # the hash computed here travels with the spec: the helper does not hash the data again
    assert pickle.loads(pickle.dumps(specs[1])).__dict__["inputs"] == specs[1].inputs
    with fp.FigureProcess() as proc:
        assert not proc.started
        futs = [proc.submit(s, FORMATS, 110) for s in specs]
        assert proc.started
        taken = proc.take_last()  # the helper is still importing: nothing sent yet
        assert taken is not None and taken[0] is specs[-1] and taken[1] is futs[-1]
        taken[1].set_result(figures.draw(taken[0], FORMATS))
        assert [f.result(timeout=60) for f in futs] == want
        assert proc.take_last() is None
        assert proc.ended is None
    assert proc._proc.returncode == 0  # ended by closing its input, not killed


def test_started_early_and_given_nothing_is_stopped_without_waiting():
    """start() boots the helper before any job; a caller that stops before submitting one
    (its inputs failed) does not wait for the boot to finish: the helper is killed."""
    with fp.FigureProcess() as proc:
        proc.start()
        proc.start()  # once
        assert proc.started
        pid = proc._proc.pid
    assert proc._proc.returncode == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_started_early_then_given_jobs_answers_them():
    specs = _specs()
    want = figures.draw(specs[0], FORMATS)
    with fp.FigureProcess() as proc:
        proc.start()
        assert proc.submit(specs[0], FORMATS, 110).result(timeout=60) == want
    assert proc._proc.returncode == 0


def test_a_drawing_error_is_raised_here_with_its_type():
    with fp.FigureProcess() as proc:
        bad = proc.submit(figures.FigureSpec("composition", ("not a share",)), FORMATS, 110)
        good = proc.submit(_specs()[0], FORMATS, 110)
        with pytest.raises(TypeError):
            bad.result(timeout=60)
        assert good.result(timeout=60)["png"][:4] == b"\x89PNG"  # the helper goes on


def test_the_helpers_log_records_and_warnings_reach_this_process(caplog):
    """Records are re-emitted under this process's logging (levels respected), warnings under
    its warning filters."""
    rec = logging.LogRecord("cpc_core.render.figures", logging.WARNING, "figures.py", 1, "drawn %s",
                            ("x",), None)  # fmt: skip
    h = fp._Collect()
    h.emit(rec)
    with caplog.at_level(logging.INFO, logger="cpc_core"):
        fp._emit(h.records[0])
        debug = dict(h.records[0], levelno=logging.DEBUG, levelname="DEBUG", msg="hidden")
        fp._emit(debug)
    got = [(r.name, r.levelno, r.getMessage(), r.processName) for r in caplog.records]
    assert got == [("cpc_core.render.figures", logging.WARNING, "drawn x", "cpc-figures")]


def test_helper_ignores_ctrl_c_and_ends_with_its_input():
    with fp.FigureProcess() as proc:
        first = proc.submit(_specs()[0], ["png"], 50)
        first.result(timeout=60)
        os.kill(proc._proc.pid, signal.SIGINT)
        time.sleep(0.2)
        assert proc._proc.poll() is None
        assert proc.submit(_specs()[2], ["png"], 50).result(timeout=60)["png"][:4] == b"\x89PNG"
    assert proc._proc.returncode == 0


def _wait_ended(proc, limit=30.0):
    t0 = time.monotonic()
    while proc.ended is None and time.monotonic() - t0 < limit:
        time.sleep(0.02)
    return proc.ended


def test_a_helper_that_dies_fails_its_jobs_with_the_reason():
    """Killed with jobs in hand: what it answered stands, what it was sent fails with the
    reason, what was never sent stays queued for the caller; later jobs fail at once."""
    with fp.FigureProcess() as proc:
        proc.submit(_specs()[0], ["png"], 50).result(timeout=60)
        futs = [proc.submit(s, ["png"], 50) for s in _specs()]
        proc._proc.kill()
        proc._proc.wait()
        taken = []
        while (t := proc.take_last()) is not None:
            taken.append(t[1])
        for f in futs:
            if any(f is t for t in taken):
                continue
            try:
                f.result(timeout=60)
            except fp.FigureProcessError as e:
                assert str(e) == "ended with exit code -9"
        assert _wait_ended(proc) == "ended with exit code -9"
        with pytest.raises(fp.FigureProcessError, match="exit code -9"):
            proc.submit(_specs()[0], ["png"], 50).result(timeout=0)


def test_a_helper_that_cannot_start_or_boot_says_why(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with fp.FigureProcess() as proc:
        with pytest.raises(fp.FigureProcessError, match="could not start"):
            proc.submit(_specs()[0], ["png"], 50).result(timeout=5)
    monkeypatch.setattr(sys, "executable", "")
    with fp.FigureProcess() as proc:
        with pytest.raises(fp.FigureProcessError, match="no Python executable"):
            proc.submit(_specs()[0], ["png"], 50).result(timeout=5)
    monkeypatch.undo()
    monkeypatch.setattr(fp, "_BOOT", "import sys; sys.exit('cpc figure helper: broken install')")
    with fp.FigureProcess() as proc:
        fut = proc.submit(_specs()[0], ["png"], 50)
        assert _wait_ended(proc) == "ended with exit code 1 (cpc figure helper: broken install)"
        assert proc.take_last()[1] is fut  # never sent: the caller draws it


def test_use_process_follows_the_setting_then_the_cpus_and_memory(monkeypatch):
    monkeypatch.setattr(fp, "usable_cpus", lambda: 1)
    monkeypatch.setattr(fp, "available_bytes", lambda: 8 << 30)
    assert (fp.use_process(None), fp.use_process(True), fp.use_process(False)) == (False, True, False)
    monkeypatch.setattr(fp, "usable_cpus", lambda: 2)
    assert (fp.use_process(None), fp.use_process(False)) == (True, False)
    monkeypatch.setattr(fp, "available_bytes", lambda: fp.MIN_AVAILABLE_BYTES - 1)
    assert (fp.use_process(None), fp.use_process(True)) == (False, True)
    monkeypatch.setattr(fp, "available_bytes", lambda: None)  # unknown: the CPUs decide
    assert fp.use_process(None)
    monkeypatch.undo()
    assert fp.available_bytes() > 0 and fp.usable_cpus() >= 1  # this machine's own answers


# --------------------------------------------------------------------------------------------
# through the validation
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from tests.validation.test_validation_stage import build_run_dir

    return build_run_dir(tmp_path_factory.mktemp("run"), ("Lyon", "Nice"), 0.05, days=7, seed=5)


def _validate(run_dir, out, process):
    from cpc_core.config.validation_options import FiguresConfig, ValidationConfig
    from jobs.validate import run_validation

    cfg = ValidationConfig(figures=FiguresConfig(process=process))
    return run_validation(run_dir / "communes.csv", out, cfg, run_dir=run_dir)


def test_validation_figures_identical_with_and_without_the_helper(run_dir, tmp_path):
    """Every figure file and the report's embedded figures are the same bytes whether drawn
    in the helper (with the caller taking some) or here; so is inputs.json."""
    _validate(run_dir, tmp_path / "here", False)
    _validate(run_dir, tmp_path / "helper", True)
    here = sorted((tmp_path / "here" / "figures").iterdir())
    assert {p.name for p in here} >= {"figure1.png", "figure1.svg", "figure3.svg", "figure5.png",
                                      "lag_sweep.svg", "inputs.json"}  # fmt: skip
    for p in here:
        assert p.read_bytes() == (tmp_path / "helper" / "figures" / p.name).read_bytes(), p.name
    page = [(tmp_path / k / "report.html").read_text() for k in ("here", "helper")]
    imgs = [[ln for ln in pg.splitlines() if "data:image/png;base64" in ln] for pg in page]
    assert imgs[0] and imgs[0] == imgs[1]


def test_validation_draws_here_when_the_helper_dies(run_dir, tmp_path, monkeypatch, caplog):
    """A helper that ends early (here: it exits after its first answer) costs a warning, never
    a figure."""
    _validate(run_dir, tmp_path / "ref", False)
    # the helper's figures.draw exits the process at its second figure
    dies = ("from cpc_core.render import figures; import os; n = []; d = figures.draw; "
            "figures.draw = lambda *a, **k: os._exit(3) if n.append(1) or len(n) > 1 else d(*a, **k); ")
    monkeypatch.setattr(fp, "_BOOT", fp._BOOT.replace("from jobs._figure_process", dies + "from jobs._figure_process"))
    with caplog.at_level(logging.WARNING, logger="jobs.validate"):
        _validate(run_dir, tmp_path / "out", True)
    warned = [r.getMessage() for r in caplog.records if "helper process" in r.getMessage()]
    assert len(warned) == 1 and "ended with exit code 3; drawing the rest here" in warned[0], warned
    for p in (tmp_path / "ref" / "figures").iterdir():
        assert p.read_bytes() == (tmp_path / "out" / "figures" / p.name).read_bytes(), p.name


def test_no_helper_when_every_figure_is_stored(run_dir, tmp_path, monkeypatch):
    """A re-run whose figures are all stored starts no helper process (nothing to draw)."""
    started = []
    orig = fp.FigureProcess._start
    monkeypatch.setattr(fp.FigureProcess, "_start", lambda self: started.append(1) or orig(self))
    _validate(run_dir, tmp_path / "out", True)
    assert started == [1]
    before = {p.name: p.read_bytes() for p in (tmp_path / "out" / "figures").iterdir()}
    _validate(run_dir, tmp_path / "out", True)
    assert started == [1]
    assert {p.name: p.read_bytes() for p in (tmp_path / "out" / "figures").iterdir()} == before

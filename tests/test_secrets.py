"""Secrets stay secret: a sentinel password given through the config file, ``--set``, the
environment (``DASK_GATEWAY__AUTH__KWARGS__PASSWORD``) or ``storage.options`` never appears in
any byte of any file a real ``cpc`` run writes (outputs, store, QC report, run.json, the HTML
report), nor in its stdout, stderr or log; and the example CI workflow neither pastes its
inputs into a shell script nor uploads paths the shipped configs do not write.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import yaml

from cpc_core.config.core import (
    REDACTED,
    ClusterConfig,
    ConfigError,
    RunConfig,
    is_secret_key,
    load_config,
    parse_config,
    redacted,
)

ROOT = Path(__file__).resolve().parents[1]
CPC = [sys.executable, "-m", "jobs.cli"]
WORKFLOW = ROOT / ".github" / "workflows" / "cpc-submit.yml"
# one city, three days: the smallest run that goes through every stage (~30 s here)
SYNTH = {"cities": ["Nice"], "days": 3, "scale": 0.002, "seed": 3}


def encodings(secret: str, username: str = "someone") -> dict[str, bytes]:
    """The forms a leaked secret could take in a file: as is, UTF-16, URL-quoted, and inside a
    basic-auth header (base64 of user:password)."""
    forms = {
        "plain": secret.encode(),
        "utf-16": secret.encode("utf-16-le"),
        "url-quoted": urllib.parse.quote(secret, safe="").encode(),
        "basic-auth": base64.b64encode(f"{username}:{secret}".encode()),
    }
    if forms["url-quoted"] == forms["plain"]:
        del forms["url-quoted"]
    return forms


def leaks(paths, secrets: list[str], username: str = "someone") -> list[str]:
    """Every (file, secret, form) where a secret appears in the bytes of a file under
    ``paths`` (files or folders; every file, binary too)."""
    found = []
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend([p] if p.is_file() else [f for f in p.rglob("*") if f.is_file() and not f.is_symlink()])
    assert files, f"nothing to scan under {paths}"
    for f in files:
        data = f.read_bytes()
        for s in secrets:
            for form, needle in encodings(s, username).items():
                if needle in data:
                    found.append(f"{f}: {s} ({form})")
    return found


def run_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_GATEWAY__", "AWS_"))}
    env.update({"PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"})
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------------------------
# The configuration: typed secrets, one redacted dump, messages that never echo a secret


def test_password_is_a_secret_and_every_dump_is_redacted():
    cfg = parse_config({
        "synth": {"days": 2},
        "cluster": {"kind": "gateway", "auth": "basic", "username": "me", "password": "pw-SENTINEL-a",
                    "address": "https://me:pw-SENTINEL-u@gw.example.org",
                    "cluster_options": {"image": "cpc:0.1", "env": {"API_TOKEN": "pw-SENTINEL-c"}}},
        "storage": {"options": {"key": "AKIA-SENTINEL-k", "secret": "pw-SENTINEL-s", "token": "pw-SENTINEL-t",
                                "endpoint_url": "http://127.0.0.1:9000",
                                "client_kwargs": {"region_name": "eu-west-3",
                                                  "aws_session_token": "pw-SENTINEL-n"}}},
    })
    # the values are there for the code that needs them ...
    assert cfg.cluster.password.get_secret_value() == "pw-SENTINEL-a"
    assert cfg.storage.options["client_kwargs"]["aws_session_token"] == "pw-SENTINEL-n"
    # ... and in no dump, repr or str of the configuration
    dump = redacted(cfg)
    for text in (str(dump), cfg.model_dump_json(), str(cfg.model_dump()), repr(cfg), str(cfg),
                 yaml.safe_dump(dump)):
        assert "SENTINEL" not in text, text[:2000]
    assert dump["cluster"]["password"] == REDACTED
    assert dump["cluster"]["address"] == f"https://me:{REDACTED}@gw.example.org"
    assert dump["cluster"]["cluster_options"] == {"image": "cpc:0.1", "env": {"API_TOKEN": REDACTED}}
    assert dump["storage"]["options"] == {
        "key": REDACTED, "secret": REDACTED, "token": REDACTED, "endpoint_url": "http://127.0.0.1:9000",
        "client_kwargs": {"region_name": "eu-west-3", "aws_session_token": REDACTED}}
    # everything else is kept: the dump is still the run's record
    assert dump["cluster"]["username"] == "me" and dump["synth"]["days"] == 2
    assert dump["estimate"]["lags"] == list(range(-6, 7))


def test_no_typed_key_of_the_config_is_mistaken_for_a_secret():
    """Redaction by key name must not blank a method constant from the record."""
    dump = redacted(RunConfig.model_validate({"synth": {}}))
    hidden = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if v == REDACTED:
                    hidden.append(".".join([*path, k]))
                walk(v, [*path, k])

    walk(redacted(parse_config({"synth": {}, "cluster": {"kind": "gateway", "auth": "basic",
                                                         "password": "x"}})), [])
    assert hidden == ["cluster.password"]
    assert REDACTED not in str(dump)
    assert [k for k in ("key", "Secret", "SESSION_TOKEN", "password", "account_key", "credentials", "sas_token")
            if not is_secret_key(k)] == []
    assert [k for k in ("endpoint_url", "region_name", "client_kwargs", "anon", "use_ssl", "lag_h")
            if is_secret_key(k)] == []


@pytest.mark.parametrize("raw_or_yaml", [
    # a wrong type for the password: pydantic's message must not carry it
    {"synth": {}, "cluster": {"kind": "gateway", "auth": "basic", "password": ["pw-SENTINEL-x"]}},
    {"synth": {}, "cluster": {"kind": "gateway", "auth": "basic", "password": {"v": "pw-SENTINEL-x"}}},
    # another error in the same section as a good password
    {"synth": {}, "cluster": {"kind": "gateway", "auth": "basix", "password": "pw-SENTINEL-x"}},
    # a misspelt key holding the password
    {"synth": {}, "cluster": {"kind": "gateway", "auth": "basic", "pasword": "pw-SENTINEL-x"}},
    {"synth": {}, "storage": {"options": "secret=pw-SENTINEL-x"}},
    # YAML errors quote the offending line in PyYAML's own text: not in ours
    'cluster:\n  password: "pw-SENTINEL-x\n  auth: basic\n',
    "cluster:\n  password: pw-SENTINEL-x\n   auth: basic\n",
    "cluster: {password: pw-SENTINEL-x, [\n",
], ids=["list", "mapping", "other-key", "misspelt", "options-not-mapping", "unterminated", "indent", "flow"])
def test_validation_errors_never_echo_a_secret(raw_or_yaml, tmp_path):
    if isinstance(raw_or_yaml, str):
        path = tmp_path / "c.yaml"
        path.write_text(raw_or_yaml)
        with pytest.raises(ConfigError) as err:
            load_config(path)
    else:
        with pytest.raises(ConfigError) as err:
            parse_config(raw_or_yaml)
    assert "SENTINEL" not in str(err.value)
    assert "cluster" in str(err.value) or "storage" in str(err.value) or "line" in str(err.value)


def test_set_without_equals_does_not_echo_a_credential():
    with pytest.raises(ConfigError, match="expected KEY=VALUE") as err:
        load_config(None, ["synth.days=2", "cluster.password:pw-SENTINEL-x"])
    assert "SENTINEL" not in str(err.value)


def test_cluster_spec_errors_never_echo_the_password():
    from jobs.cli import _cluster_spec

    cfg = ClusterConfig(kind="gateway", auth="kerberos", password="pw-SENTINEL-x")
    with pytest.raises(ConfigError, match="cluster") as err:
        _cluster_spec(cfg, None)
    assert "SENTINEL" not in str(err.value)


def test_config_show_prints_defaults_with_secrets_redacted(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"synth": {"days": 2}, "storage": {"options": {"secret": "pw-SENTINEL-s"}},
                                   "cluster": {"kind": "gateway", "auth": "basic", "password": "pw-SENTINEL-f"}}))
    proc = subprocess.run([*CPC, "config", "show", str(cfg), "--set", "cluster.username=me",
                           "--set", "storage.options.token=pw-SENTINEL-t"], capture_output=True, text=True,
                          env=run_env({"DASK_GATEWAY__AUTH__KWARGS__PASSWORD": "pw-SENTINEL-e"}), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "SENTINEL" not in proc.stdout + proc.stderr
    shown = yaml.safe_load(proc.stdout)
    assert shown["cluster"]["password"] == REDACTED and shown["cluster"]["username"] == "me"
    assert shown["storage"]["options"] == {"secret": REDACTED, "token": REDACTED}
    # the defaults are filled in: the effective configuration, not the file
    assert shown["estimate"]["min_hours"] == 168 and shown["synth"]["days"] == 2
    assert shown["output"]["dir"] == "cpc-output"
    assert list(tmp_path.iterdir()) == [cfg]  # a read-only command: nothing written


def test_report_redacts_what_it_is_given():
    """The report is redacted once more: a config or run record from elsewhere is not trusted."""
    from cpc_core.render.report import build_report

    page = build_report(title="t", summary=[], tables=[], figures=[],
                        disclosure={"min_population": 500, "min_tiles": 3},
                        config={"storage": {"options": {"secret": "pw-SENTINEL-r"}}},
                        provenance={"run": {"config": {"cluster": {"password": "pw-SENTINEL-p"}}}})
    assert "SENTINEL" not in page and REDACTED in page


# --------------------------------------------------------------------------------------------
# The example CI workflow


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_never_pastes_an_expression_into_a_script():
    """``${{ github.event.inputs.* }}`` inside ``run:`` is script injection: inputs go through
    ``env:`` and are quoted."""
    steps = [s for job in _workflow()["jobs"].values() for s in job["steps"]]
    scripts = [s["run"] for s in steps if "run" in s]
    assert scripts
    for script in scripts:
        assert "${{" not in script, script
    submit = next(s for s in steps if "cpc submit" in s.get("run", ""))
    assert {"CPC_CONFIG", "CPC_OVERRIDES"} <= set(submit["env"])
    assert '"$CPC_CONFIG"' in submit["run"] and '"$kv"' in submit["run"]


def test_workflow_submit_script_keeps_a_hostile_input_one_argument(tmp_path):
    """Run the workflow's own script with a stand-in ``cpc``: a config value with quotes, ``;``
    and ``$(...)`` stays one argument and runs nothing."""
    steps = [s for job in _workflow()["jobs"].values() for s in job["steps"]]
    submit = next(s for s in steps if "cpc submit" in s.get("run", ""))
    (tmp_path / ".venv/bin").mkdir(parents=True)
    fake = tmp_path / ".venv/bin/cpc"
    fake.write_text('#!/usr/bin/env bash\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    hostile = 'x"; touch PWNED; echo "$(touch PWNED2)'
    env = {"PATH": os.environ["PATH"], "CPC_CONFIG": hostile, "CPC_OUTPUT": "cpc-output",
           "CPC_OVERRIDES": "estimate.lag_h=-2 'areas.tiles=$(touch PWNED3)'", "CPC_RUN_ID": "gh-1-1"}
    proc = subprocess.run(["bash", "-c", submit["run"]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    args = proc.stdout.splitlines()
    assert args[:2] == ["submit", hostile]
    assert args[args.index("--run-id") + 1] == "gh-1-1"
    assert ["--set", "estimate.lag_h=-2"] == args[args.index("estimate.lag_h=-2") - 1:args.index("estimate.lag_h=-2") + 1]
    assert "'areas.tiles=$(touch" in args
    assert args[-2:] == ["--set", "output.dir=cpc-output"]
    assert not list(tmp_path.glob("PWNED*"))


def test_workflow_uploads_only_what_its_runs_write():
    """Every uploaded path lies in the output folder the workflow's run writes to: the one it
    forces (``--set output.dir=$CPC_OUTPUT``), which is configs/gateway.yaml's own, and the
    default config is a shipped one."""
    wf = _workflow()
    job = wf["jobs"]["submit"]
    out_dir = job["env"]["CPC_OUTPUT"]
    default_cfg = wf[True]["workflow_dispatch"]["inputs"]["config"]["default"]  # YAML 1.1: on -> True
    assert (ROOT / default_cfg).is_file()
    assert load_config(ROOT / default_cfg).output.dir == out_dir
    assert load_config(ROOT / "configs/gateway.yaml").output.dir == out_dir
    upload = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    paths = [p.strip() for p in upload["with"]["path"].splitlines() if p.strip()]
    assert paths and all(Path(p).parts[0] == out_dir for p in paths), paths
    assert not any("internal" in p or "cube.zarr" in p for p in paths)  # public outputs only


def workflow_upload_paths() -> list[str]:
    """The uploaded paths relative to the output folder."""
    job = _workflow()["jobs"]["submit"]
    upload = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    out_dir = job["env"]["CPC_OUTPUT"]
    return [str(Path(p.strip()).relative_to(out_dir)) for p in upload["with"]["path"].splitlines() if p.strip()]


# --------------------------------------------------------------------------------------------
# Real runs: no byte of any record carries a sentinel


def _write(path: Path, raw: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.integration
def test_no_secret_in_any_file_or_output_of_a_local_run(tmp_path):
    """Sentinels through the config file, --set, the environment and storage.options; a real
    ``cpc submit`` on a local cluster with --debug (the most it ever logs)."""
    s_file, s_set, s_env, s_store, s_aws = ("pw-SENTINEL-file-7f3a", "pw-SENTINEL-set-91c2", "pw-SENTINEL-env-0d4e",
                                            "pw-SENTINEL-store-5b6f", "pw-SENTINEL-aws-88aa")
    cfg = _write(tmp_path / "cfg" / "c.yaml", {
        "synth": SYNTH, "estimate": {"min_hours": 48},
        "cluster": {"kind": "gateway", "auth": "basic", "username": "someone", "password": s_file},
        "storage": {"options": {"secret": s_store, "client_kwargs": {"region_name": "eu-west-3"}}},
        "output": {"dir": "out"}})
    work = tmp_path / "work"
    work.mkdir()
    env = run_env({"DASK_GATEWAY__AUTH__KWARGS__USERNAME": "someone", "DASK_GATEWAY__AUTH__KWARGS__PASSWORD": s_env,
                   "AWS_SECRET_ACCESS_KEY": s_aws})
    proc = subprocess.run([*CPC, "--debug", "submit", str(cfg), "--cluster", "local", "--run-id", "secret-test",
                           "--set", f"cluster.password={s_set}"], cwd=work, env=env, capture_output=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:].decode(errors="replace")
    sentinels = [s_file, s_set, s_env, s_store, s_aws]
    (tmp_path / "stdout").write_bytes(proc.stdout)
    (tmp_path / "stderr").write_bytes(proc.stderr)
    assert b"DEBUG" in proc.stderr  # the debug log was captured, and is clean
    assert leaks([work, tmp_path / "stdout", tmp_path / "stderr"], sentinels) == []
    # the scan finds what is there: the config file holds its sentinel
    assert leaks([cfg], sentinels) == [f"{cfg}: {s_file} (plain)", f"{cfg}: {s_store} (plain)"]
    out = work / "out"
    # the records exist and say "***" where the secrets were
    import json

    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "ok" and run["config"]["cluster"]["password"] == REDACTED
    assert run["config"]["storage"]["options"]["secret"] == REDACTED
    report = (out / "validation" / "report.html").read_text()
    assert '&quot;password&quot;: &quot;***&quot;' in report or '"password": "***"' in report
    assert (out / "cube.zarr").is_dir() and any((out / "reports").iterdir())
    # the example workflow uploads files that this run wrote (its output.dir)
    for rel in workflow_upload_paths():
        assert (out / rel).exists(), f"the workflow uploads {rel}, which a run does not write"


@pytest.fixture(scope="module")
def sentinel_gateway(tmp_path_factory):
    from tests.gateway import running_gateway

    with running_gateway(tmp_path_factory.mktemp("gw"), username="someone",
                         password="pw-SENTINEL-gateway-6c1d") as info:
        yield info


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("channel", ["config", "environment"])
def test_no_secret_in_any_file_or_output_of_a_gateway_run(tmp_path, sentinel_gateway, channel):
    """Through the real local Dask Gateway with basic auth: the sentinel is the real password,
    given in the config file or only in DASK_GATEWAY__AUTH__KWARGS__PASSWORD."""
    gw = sentinel_gateway
    cluster = {"kind": "gateway", "address": gw.address, "proxy_address": gw.proxy_address, "auth": "basic",
               "username": gw.username, "workers": 2}
    if channel == "config":
        cluster["password"] = gw.password
        env = run_env()
    else:
        env = run_env(gw.env())
    # an absolute output folder: the gateway's workers run in folders of their own
    cfg = _write(tmp_path / "cfg" / "c.yaml", {"synth": SYNTH, "estimate": {"min_hours": 48}, "cluster": cluster,
                                               "output": {"dir": str(tmp_path / "work" / "out")}})
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([*CPC, "-v", "submit", str(cfg), "--run-id", f"gw-{channel}"], cwd=work, env=env,
                          capture_output=True, timeout=600)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, err[-3000:] + "\n--- gateway log ---\n" + gw.log_tail()
    assert re.search(r"gateway", err), err[-2000:]  # it did run on the gateway
    (tmp_path / "stdout").write_bytes(proc.stdout)
    (tmp_path / "stderr").write_bytes(proc.stderr)
    assert leaks([work, tmp_path / "stdout", tmp_path / "stderr"], [gw.password], gw.username) == []
    import json

    run = json.loads((work / "out" / "run.json").read_text())
    assert run["status"] == "ok"
    assert run["config"]["cluster"]["password"] == (REDACTED if channel == "config" else None)

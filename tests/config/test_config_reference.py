"""The configuration reference (docs/config.md) and the command line's help texts."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, SecretStr

from cpc_core.config.core import RunConfig, load_config, redacted
from cpc_core.config.reference import iter_keys, iter_sections, render_markdown
from jobs.cli import DEMO_CONFIG, build_parser

ROOT = Path(__file__).resolve().parents[2]


def _models(model: type[BaseModel], seen: set | None = None):
    """Every pydantic model reachable from ``model`` through its fields' annotations."""
    seen = set() if seen is None else seen
    if model in seen:
        return seen
    seen.add(model)
    stack = [f.annotation for f in model.model_fields.values()]
    while stack:
        t = stack.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            _models(t, seen)
        stack.extend(getattr(t, "__args__", ()))
    return seen


def test_every_key_has_a_description():
    models = _models(RunConfig)
    assert len(models) >= 18  # RunConfig, its 12 sections, the validation sub-sections
    missing = [f"{m.__name__}.{name}" for m in models for name, f in m.model_fields.items()
               if not (f.description or "").strip()]
    assert missing == []


def test_docs_config_md_is_the_generator_output():
    on_disk = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert on_disk == render_markdown(), "docs/config.md is stale: run `cpc config reference --out docs/config.md`"


def _flat(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k not in ("options", "cluster_options", "departments"):
            yield from _flat(v, key + ".")
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            yield from _flat(v[0], key + "[].")
        else:
            yield key


def test_reference_lists_exactly_the_keys_of_an_effective_configuration(tmp_path):
    # pydantic's own dump of a config with every optional section present is the independent list
    cfg = load_config(DEMO_CONFIG, ["validation.covariates=[c.csv]", "validation.search_interest=s.csv",
                                    "validation.geo=g.gpkg", "validation.disclosure={}"])
    dumped = set(_flat(redacted(cfg)))
    listed = {k.key for k in iter_keys()}
    assert listed == dumped
    text = render_markdown()
    for s in iter_sections():
        if s.keys:
            assert f"## `{s.key}`" in text
            for k in s.keys:
                assert f"| `{k.key.rsplit('.', 1)[-1]}` |" in text


def test_reference_rows_show_type_default_bounds_and_choices():
    rows = {k.key: k for k in iter_keys()}
    z = rows["estimate.zero_value"]
    assert (z.type, z.default, z.allowed) == ("float", "0.001", "> 0; <= 1_000_000")
    k = rows["cluster.kind"]
    assert (k.default, k.allowed) == ("local", "local, gateway, address")
    lags = rows["estimate.lags"]
    assert lags.type == "list of int" and "each >= -48" in lags.allowed and "at most 97 items" in lags.allowed
    assert lags.default == "[" + ", ".join(str(i) for i in range(-6, 7)) + "]"
    assert rows["validation.figures.formats"].allowed == "png, svg, pdf"
    assert rows["validation.covariates[].path"].default == "required"
    assert rows["synth.start"].default == "2019-03-16"
    assert rows["cluster.password"].type == "str (secret) or null" and rows["cluster.password"].secret
    assert len(rows) >= 94


class _WithSecrets(BaseModel):
    token: str = Field("tok-123-plain", description="an API token")
    password: SecretStr = Field(SecretStr("pw-456-plain"), description="a password")
    level: int = Field(3, ge=0, description="not a secret")


def test_reference_never_shows_a_secret_value():
    text = render_markdown(_WithSecrets)
    assert "tok-123-plain" not in text and "pw-456-plain" not in text and "**********" not in text
    assert "| `token` | str | `(secret, not shown)` |" in text
    assert "| `level` | int | `3` | >= 0 |" in text


def test_config_reference_command_writes_the_reference(tmp_path):
    out = tmp_path / "config.md"
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "config", "reference", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert out.read_text(encoding="utf-8") == (ROOT / "docs" / "config.md").read_text(encoding="utf-8")


def _parsers(parser: argparse.ArgumentParser, path=("cpc",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_option_and_argument_has_help():
    missing = []
    n = 0
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                missing += [f"{' '.join(path)} {name}" for name in action.choices if not (helps.get(name) or "").strip()]
                continue
            n += 1
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert n > 60
    assert missing == []


@pytest.mark.parametrize("args", [[], ["synth"], ["sweep"], ["run"], ["config"], ["config", "show"], ["validate"],
                                  ["covariates"], ["ingest"], ["demo"], ["submit"], ["config", "reference"]])
def test_help_has_no_rest_markup(args):
    parser = build_parser()
    target = parser
    for name in args:
        target = next(a for a in target._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    text = target.format_help()
    assert "``" not in text and ":mod:" not in text and ":func:" not in text
    assert len(text) > 100


def test_synth_help_explains_its_options():
    parser = build_parser()
    synth = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["synth"]
    text = " ".join(synth.format_help().split())
    for option in ("--start", "--days", "--seed", "--services", "--directions"):
        assert option in text
    assert "YYYY-MM-DD" in text and "2019-03-16" in text and "random seed" in text


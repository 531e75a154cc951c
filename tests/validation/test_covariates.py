"""``cpc covariates``: the public source files as published -> the validation's covariate table.

The sources are written here in their published layouts (``docs/real-data.md`` section 2):
the SSMSI communal base (long: one row per commune, year and indicator, with a published flag),
INSEE's comparateur and couples-familles-ménages bases (one row per commune, ``;``, year
prefixed columns), the ministry's 2017 results (Latin-1, ``;``, decimal commas, one block of
columns per candidate along the row). The expected table is computed independently with
pandas from the planted records, never from the command's own readers; every loss is counted
exactly. The built table is then given to a real ``cpc validate``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.faults.harness import expect, run_cpc

YEARS = range(2016, 2023)
INDICATORS = ("Violences sexuelles", "Usage de stupéfiants", "Cambriolages de logement")
CANDIDATES = [("DUPONT-AIGNAN", "Nicolas"), ("LE PEN", "Marine"), ("MACRON", "Emmanuel"), ("HAMON", "Benoît"),
              ("MÉLENCHON", "Jean-Luc"), ("FILLON", "François")]  # fmt: skip


def _fr(x: float, digits: int = 2) -> str:
    """A number as French files write it: decimal comma."""
    return f"{x:.{digits}f}".replace(".", ",")


def planted(seed: int = 3) -> dict[str, pd.DataFrame]:
    """The truth: 40 communes with their values per source (codes as text)."""
    rng = np.random.default_rng(seed)
    codes = ([f"0100{i}" for i in range(1, 8)] + [f"2A00{i}" for i in range(1, 5)]  # 01: lost zeros later
             + [f"6938{i}" for i in range(1, 10)] + [f"132{i:02d}" for i in range(1, 11)]
             + [f"38{i:03d}" for i in range(180, 190)])  # fmt: skip
    names = {c: f"Commune {c} Saint-Étienne-lès-Été" for c in codes}
    n = len(codes)
    com = pd.DataFrame({
        "commune": codes, "name": [names[c] for c in codes],
        "pop": rng.integers(800, 60000, n), "area": rng.uniform(0.8, 40, n).round(2),
        "poverty": rng.uniform(5, 30, n).round(1), "act": rng.integers(400, 30000, n),
        "households": rng.uniform(300, 25000, n).round(5),
    })  # fmt: skip
    com["chom"] = (com["act"] * rng.uniform(0.04, 0.2, n)).round(0)
    com["one_person"] = (com["households"] * rng.uniform(0.2, 0.6, n)).round(5)
    com.loc[3, "poverty"] = np.nan  # Filosofi secret: empty cell
    rows = []
    for c in codes:
        for y in YEARS:
            for ind in INDICATORS:
                published = rng.random() > 0.3
                rate = round(float(rng.uniform(0, 3)), 4)
                rows.append({"commune": c, "year": y, "indicator": ind, "published": published,
                             "rate": rate if published else np.nan, "estimate": round(float(rng.uniform(0, 2)), 4)})  # fmt: skip
    ssmsi = pd.DataFrame(rows)
    # commune 38181 never published for sexual violence in 2017-2021 (but published in 2016)
    never = (
        (ssmsi.commune == "38181")
        & (ssmsi.indicator == INDICATORS[0])
        & ssmsi.year.between(2017, 2021)
    )
    ssmsi.loc[never, ["published", "rate"]] = [False, np.nan]
    # 38185 not published for sexual violence in 2018 (its file row will carry an estimate)
    hidden = (ssmsi.commune == "38185") & (ssmsi.indicator == INDICATORS[0]) & (ssmsi.year == 2018)
    ssmsi.loc[hidden, ["published", "rate"]] = [False, np.nan]
    elec = pd.DataFrame({"commune": codes, "registered": rng.integers(500, 40000, n),
                         "turnout": rng.uniform(60, 85, n).round(2)})  # fmt: skip
    shares = rng.dirichlet(np.ones(len(CANDIDATES)), n) * 100
    for j, (cand, _) in enumerate(CANDIDATES):
        elec[cand] = shares[:, j].round(2)
        elec[cand + "_ins"] = (shares[:, j] * elec["turnout"] / 100).round(2)
    return {"communes": com, "ssmsi": ssmsi, "election": elec}


def write_ssmsi(path: Path, truth: pd.DataFrame, layout: str) -> int:
    """The SSMSI base, gzip-compressed, in the 2023 (2-digit years, decimal comma) or 2024 layout.

    Non-published rows carry no rate; one of them (38185, 2018, sexual violence) carries one,
    which must be blanked. Returns the number of such rows.
    """
    if layout == "2023":
        head = "CODGEO_2023;annee;classe;unité.de.compte;valeur.publiée;faits;tauxpourmille;complementinfoval;complementinfotaux;POP;millPOP;LOG;millLOG"
    else:
        head = "CODGEO_2024;annee;indicateur;unite_de_compte;nombre;taux_pour_mille;est_diffuse;complement_info_nombre;complement_info_taux;insee_pop;insee_pop_millesime;insee_log;insee_log_millesime"
    lines = [head]
    blanked = 0
    for r in truth.itertuples():
        flag = "diff" if r.published else "ndiff"
        rate = (
            "NA" if not r.published else (_fr(r.rate, 4) if layout == "2023" else f"{r.rate:.4f}")
        )
        if (
            not r.published
            and r.commune == "38185"
            and r.year == 2018
            and r.indicator == INDICATORS[0]
        ):
            rate, blanked = (
                _fr(r.estimate, 4),
                blanked + 1,
            )  # a release that fills non-published cells
        facts = "NA" if not r.published else str(int(r.rate * 10))
        unit = "victime" if "Violences" in r.indicator else "infraction"
        if layout == "2023":
            lines.append(f"{r.commune};{r.year % 100};{r.indicator};{unit};{flag};{facts};{rate};"
                         f"{_fr(r.estimate, 2)};{_fr(r.estimate, 4)};10000;20;5000;20")  # fmt: skip
        else:
            lines.append(f"{r.commune};{r.year};{r.indicator};{unit};{facts};{rate};{flag};"
                         f"{r.estimate:.2f};{r.estimate:.4f};10000;2021;5000;2021")  # fmt: skip
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    return blanked


def write_comparateur(path: Path, com: pd.DataFrame, lose_zeros: bool) -> None:
    """base_cc_comparateur.csv: ';', Latin-1, decimal comma; codes of 01 without their zero."""
    head = "CODGEO;REG;DEP;LIBGEO;P20_POP;P14_POP;SUPERF;P20_MEN;MED20;TP6020;P20_POP1564;P20_CHOM1564;P20_ACT1564"
    lines = [head]
    for r in com.itertuples():
        code = r.commune.lstrip("0") if lose_zeros else r.commune
        pov = "" if np.isnan(r.poverty) else _fr(r.poverty, 1)
        lines.append(f"{code};84;{r.commune[:2]};{r.name};{r.pop};{r.pop - 37};{_fr(r.area, 2)};{r.pop // 2};"
                     f"21450;{pov};{r.pop * 2 // 3};{int(r.chom)};{r.act}")  # fmt: skip
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


def write_households(path: Path, com: pd.DataFrame, duplicate: str) -> None:
    """base-cc-coupl-fam-men: ';', UTF-8 with BOM, decimal point; C17 and C20 columns; one
    commune's row twice (identical)."""
    head = "CODGEO;C17_MEN;C17_MENPSEUL;C20_MEN;C20_MENPSEUL;C20_MENHSEUL;C20_MENFSEUL;C20_MENFAM"
    lines = [head]
    for r in com.itertuples():
        line = (f"{r.commune};{r.households * 0.9:.5f};{r.one_person * 1.1:.5f};{r.households:.5f};"
                f"{r.one_person:.5f};{r.one_person / 2:.5f};{r.one_person / 2:.5f};{r.households - r.one_person:.5f}")  # fmt: skip
        lines.append(line)
        if r.commune == duplicate:
            lines.append(line)
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8-sig"))


def write_election(path: Path, elec: pd.DataFrame, com: pd.DataFrame, missing: str) -> None:
    """The ministry's results per commune: Latin-1, ';', decimal commas, the header naming one
    candidate block, every row carrying six; Paris as a whole commune; Z* departments; the
    commune ``missing`` absent."""
    head = ("Code du département;Libellé du département;Code de la commune;Libellé de la commune;Etat saisie;"
            "Inscrits;Abstentions;% Abs/Ins;Votants;% Vot/Ins;Blancs;% Blancs/Ins;% Blancs/Vot;Nuls;% Nuls/Ins;"
            "% Nuls/Vot;Exprimés;% Exp/Ins;% Exp/Vot;N°Panneau;Sexe;Nom;Prénom;Voix;% Voix/Ins;% Voix/Exp")  # fmt: skip
    lines = [head]
    names = dict(zip(com.commune, com.name, strict=False))
    extra = [("75", "056", "Paris"), ("ZA", "101", "Les Abymes"), ("ZZ", "1", "Amérique du Nord")]
    rows = [
        (c[:2], str(int(c[2:])), names[c], i) for i, c in enumerate(elec.commune) if c != missing
    ]
    rows += [(d, n, nm, 0) for d, n, nm in extra]
    for dep, num, name, i in rows:
        r = elec.iloc[i]
        reg = int(r.registered)
        voters = round(reg * r.turnout / 100)
        line = (f"{dep};Département;{num};{name};Complet;{reg};{reg - voters};{_fr(100 - r.turnout)};{voters};"
                f"{_fr(r.turnout)};10;0,05;0,10;5;0,02;0,05;{voters - 15};{_fr(r.turnout - 1)};{_fr(99.0)}")  # fmt: skip
        for k, (cand, first) in enumerate(CANDIDATES):
            line += (f";{k + 1};{'F' if cand == 'LE PEN' else 'M'};{cand};{first};{int(voters * r[cand] / 100)};"
                     f"{_fr(r[cand + '_ins'])};{_fr(r[cand])}")  # fmt: skip
        lines.append(line)
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


def expected_table(
    truth: dict[str, pd.DataFrame], missing: str, share_of: str = "expressed"
) -> pd.DataFrame:
    """The covariate table computed with pandas from the planted records."""
    com = truth["communes"].set_index("commune")
    s = truth["ssmsi"]
    s = s[s.year.between(2017, 2021) & s.published]
    means = s.groupby(["commune", "indicator"])["rate"].mean().unstack()
    elec = truth["election"].set_index("commune").drop(index=missing)
    out = pd.DataFrame(index=com.index)
    out["department"] = [c[:2] for c in com.index]
    out["sexual_violence_per_1000"] = means[INDICATORS[0]]
    out["density"] = com["pop"] / com["area"]
    out["share_singles"] = 100 * com["one_person"] / com["households"]
    out["poverty_rate"] = com["poverty"]
    out["unemployment_rate"] = 100 * com["chom"] / com["act"]
    out["turnout_2017"] = elec["turnout"]
    suffix = "" if share_of == "expressed" else "_ins"
    out["le_pen_2017"] = elec["LE PEN" + suffix]
    out["macron_2017"] = elec["MACRON" + suffix]
    out["drug_abuse_per_1000"] = means[INDICATORS[1]]
    # Paris as a whole commune is only in the election file, with the values of its first row
    paris = truth["election"].iloc[0]
    out.loc["75056", ["department", "turnout_2017", "le_pen_2017", "macron_2017"]] = [
        "75",
        paris["turnout"],
        paris["LE PEN" + suffix],
        paris["MACRON" + suffix],
    ]
    return out.rename_axis("commune").reset_index()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("public")
    truth = planted()
    blanked = write_ssmsi(d / "ssmsi2024.csv.gz", truth["ssmsi"], "2024")
    write_ssmsi(d / "ssmsi2023.csv.gz", truth["ssmsi"], "2023")
    write_comparateur(d / "base_cc_comparateur.csv", truth["communes"], lose_zeros=True)
    write_households(d / "base-cc-coupl-fam-men-2020.csv", truth["communes"], duplicate="69382")
    write_election(
        d / "PR17_T1_communes.txt", truth["election"], truth["communes"], missing="13205"
    )
    spec = {"ssmsi": {"path": "ssmsi2024.csv.gz", "drug_indicator": "Usage de stupéfiants"},
            "comparateur": "base_cc_comparateur.csv", "households": "base-cc-coupl-fam-men-2020.csv",
            "election": {"path": "PR17_T1_communes.txt"}, "out": "covariates.csv"}  # fmt: skip
    (d / "spec.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    return d, truth, blanked


def _losses(report: dict) -> dict[tuple[str, str], int]:
    return {(x["source"], x["reason"]): x["rows"] for x in report["losses"]}


def test_lost_leading_zeros_are_refused_with_the_fix(sources, tmp_path):
    d, _, _ = sources
    a = expect(run_cpc("covariates", d / "spec.yaml", "--out", tmp_path / "cov.csv"), 1,
               "base_cc_comparateur.csv", "lost its leading zero", "'01001'", "7 such codes", "--pad-codes")  # fmt: skip
    assert "line 2" in a.err and len(a.err.strip().splitlines()) == 1
    assert not (tmp_path / "cov.csv").exists()


@pytest.mark.parametrize("layout", ["2024", "2023"])
def test_table_matches_pandas_and_every_loss_is_counted(sources, tmp_path, layout):
    d, truth, blanked = sources
    out = tmp_path / "cov.csv"
    expect(run_cpc("covariates", d / "spec.yaml", "--out", out, "--pad-codes",
                       "--set", f"ssmsi.path=ssmsi{layout}.csv.gz"), 0, "41 communes")  # fmt: skip
    got = pd.read_csv(out, dtype={"commune": str, "department": str})
    want = expected_table(truth, missing="13205")
    assert list(got.columns) == list(want.columns)
    assert got["commune"].tolist() == sorted(want["commune"])  # codes as text, zeros restored
    want = want.set_index("commune").loc[got["commune"]].reset_index()
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=1e-9)

    report = json.loads((tmp_path / "cov_report.json").read_text())
    losses = _losses(report)
    # election: Z* rows out, Paris as 75056 kept but 13205 absent; households: one duplicate
    assert (
        losses[("election", "department Z* (overseas collectivity or French abroad): left out")]
        == 2
    )
    assert losses[("households", "duplicate row (same code, identical values): kept once")] == 1
    assert losses[("ssmsi", "value on a non-published (ndiff) row: blanked")] == blanked == 1
    never = "sexual_violence_per_1000: not published in any year 2017-2021: empty"
    assert losses[("ssmsi", never)] == 1
    assert np.isnan(got.set_index("commune").loc["38181", "sexual_violence_per_1000"])
    absent = {k[0]: v for k, v in losses.items() if k[1].startswith("commune without a row")}
    assert absent == {
        "election": 1,
        "comparateur": 1,
        "households": 1,
        "ssmsi": 1,
    }  # 13205 resp. 75056
    assert report["join"]["election"]["examples"] == ["13205"]
    assert report["sources"]["election"]["encoding"].startswith("latin-1")
    assert report["sources"]["households"]["encoding"] == "utf-8-sig"
    assert report["sources"]["households"]["columns_used"]["households"] == "C20_MEN"  # latest year
    assert (
        report["missing_values"]["poverty_rate"] == int(got["poverty_rate"].isna().sum()) == 2
    )  # secret + 75056
    assert any(n.startswith("75056 is the whole city") for n in report["sources"]["election"]["notes"])
    assert not any("whole city" in n for n in report["sources"]["comparateur"]["notes"])
    md = (tmp_path / "cov_report.md").read_text()
    assert (
        "| election | department Z* (overseas collectivity or French abroad): left out | 2 |" in md
    )
    assert "zero-padded" in json.dumps(report["sources"]["comparateur"]["notes"])
    assert "Saint" not in got.to_csv()  # names stay out: the commune table has its own


def test_commune_list_restricts_and_counts(sources, tmp_path):
    d, truth, _ = sources
    codes = truth["communes"]["commune"].tolist()[5:]  # the run has 35 of the 40 communes
    pd.DataFrame({"commune": codes}).to_csv(tmp_path / "communes.csv", index=False)
    out = tmp_path / "cov.csv"
    expect(run_cpc("covariates", d / "spec.yaml", "--out", out, "--pad-codes", "--communes",
                   tmp_path / "communes.csv"), 0, "35 communes")  # fmt: skip
    got = pd.read_csv(out, dtype={"commune": str})
    assert got["commune"].tolist() == sorted(codes)
    losses = _losses(json.loads((tmp_path / "cov_report.json").read_text()))
    # the five left-out communes, plus Paris 75056 in the election file
    assert losses[("election", "code not in the commune list communes.csv: left out")] == 6
    assert losses[("comparateur", "code not in the commune list communes.csv: left out")] == 5


def test_share_of_registered_voters(sources, tmp_path):
    d, truth, _ = sources
    out = tmp_path / "cov.csv"
    expect(run_cpc("covariates", d / "spec.yaml", "--out", out, "--pad-codes",
                   "--set", "election.share_of=registered"), 0)  # fmt: skip
    got = pd.read_csv(out, dtype={"commune": str}).set_index("commune")
    want = expected_table(truth, "13205", share_of="registered").set_index("commune").loc[got.index]
    np.testing.assert_allclose(got["le_pen_2017"], want["le_pen_2017"], rtol=1e-9)
    np.testing.assert_allclose(got["macron_2017"], want["macron_2017"], rtol=1e-9)


def test_built_table_is_accepted_by_cpc_validate(sources, tmp_path):
    """The table goes into a real ``cpc validate`` on a hand-made commune table of the same codes."""
    d, truth, _ = sources
    cov = tmp_path / "cov.csv"
    expect(run_cpc("covariates", d / "spec.yaml", "--out", cov, "--pad-codes"), 0)
    rng = np.random.default_rng(7)
    com = truth["communes"]
    n = len(com)
    rho = rng.uniform(0.05, 0.6, n)
    table = pd.DataFrame({"commune": com["commune"], "city": "Lyon", "name": com["name"],
                          "population": com["pop"], "tor": rng.integers(1000, 10**6, n),
                          "web_adult": rng.integers(10**5, 10**7, n), "youtube": rng.integers(10**7, 10**9, n),
                          "rho": rho, "n_tiles": rng.integers(3, 30, n)})  # fmt: skip
    table.to_csv(tmp_path / "communes.csv", index=False)
    cfg = {"validation": {"covariates": [str(cov)], "discover": False, "report": False}}
    (tmp_path / "v.yaml").write_text(yaml.safe_dump(cfg))
    expect(run_cpc("validate", "--table", tmp_path / "communes.csv", "--config", tmp_path / "v.yaml",
                   "--out", tmp_path / "v"), 0)  # fmt: skip
    tj = json.loads((tmp_path / "v" / "tables.json").read_text())
    join = tj["joins"][0]
    # 41 rows: the 40 communes + Paris 75056, which the commune table does not have
    assert (
        join["rows"],
        join["matched"],
        join["rows_not_in_table"],
        join["unmatched_table_rows"],
    ) == (41, 40, 1, 0)
    assert set(join["columns_joined"]) == set(pd.read_csv(cov, nrows=0).columns) - {"commune"}
    assert join["columns_ignored"] == []
    # the outcome arrived as the validation's outcome role: Table 2's sample is the published communes
    published = pd.read_csv(cov, dtype={"commune": str}).set_index("commune")[
        "sexual_violence_per_1000"
    ]
    assert tj["roles"]["outcome"] == "sexual_violence_per_1000"
    assert int(published.reindex(com["commune"]).notna().sum()) == n - 1  # 38181 never published
    assert {row["n"] for row in tj["spearman"]} == {n - 1}
    assert (
        tj["roles"]["drug_abuse"] == "drug_abuse_per_1000"
        and tj["roles"]["department"] == "department"
    )


def test_regions_from_the_spec(sources, tmp_path):
    """``regions`` maps departments to Google Trends region names; a department in none is counted."""
    d, truth, _ = sources
    spec = yaml.safe_load((d / "spec.yaml").read_text())
    spec = {"comparateur": str(d / spec["comparateur"]), "pad_codes": True,
            "regions": {"Rhône-Alpes": ["01", "38", "69"], "Provence-Alpes-Côte d'Azur": ["13"]}}  # fmt: skip
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    expect(run_cpc("covariates", tmp_path / "spec.yaml", "--out", tmp_path / "cov.csv"), 0)
    got = pd.read_csv(tmp_path / "cov.csv", dtype=str, keep_default_na=False).set_index("commune")
    dep_region = {
        "01": "Rhône-Alpes",
        "38": "Rhône-Alpes",
        "69": "Rhône-Alpes",
        "13": "Provence-Alpes-Côte d'Azur",
    }
    want = pd.Series([dep_region.get(c[:2], "") for c in got.index], index=got.index)
    pd.testing.assert_series_equal(got["region"], want, check_names=False)
    losses = _losses(json.loads((tmp_path / "cov_report.json").read_text()))
    assert (
        losses[("regions", "department in no region of the spec: region empty")] == 4
    )  # the 2A communes

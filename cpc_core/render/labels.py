"""One map from variable identifiers to the labels a reader sees.

The machine-readable outputs (``tables.json``, the CSV files) keep the identifiers
(``log_YouTube_per_1000``, ``c_j``): scripts select on them. Everything a person reads (the
report, the Markdown, LaTeX and HTML tables, figure axes) goes through :func:`label`, so the
three table formats and the page can never disagree on a name.

Both spellings of a variable are keys: the analysis name (``log_youtube_per_1000``) and the
paper's identifier that :data:`cpc_core.validation.stage.LABELS` gives it
(``log_YouTube_per_1000``); the lagged cpc variable (``log_cpc_per_1000_lag-2h``) is matched by
pattern. An identifier not in the map is shown with its underscores as spaces, never raw.
"""

from __future__ import annotations

import re

import pandas as pd

__all__ = ["LABELS", "METHOD_SHORT", "label", "relabel"]

#: Display label by identifier (analysis name or the paper's identifier).
LABELS: dict[str, str] = {
    # traffic per 1000 inhabitants, log (NetMob23 download volume, see docs/outputs.md)
    "log_youtube_per_1000": "YouTube per 1000, log",
    "log_YouTube_per_1000": "YouTube per 1000, log",
    "log_web_adult_per_1000": "Web Adult per 1000, log",
    "log_Web_Adult_per_1000": "Web Adult per 1000, log",
    "log_tor_per_1000": "Tor per 1000, log",
    "log_Tor_per_1000": "Tor per 1000, log",
    "log_cpc_per_1000": "cpc per 1000, log",
    "log_cpc_per_1000_lag": "cpc per 1000, log, lagged Tor",
    "log_cpc_per_1000_lagged": "cpc per 1000, log, lagged Tor",
    "cpc_per_1000": "cpc per 1000",
    "tor_per_1000": "Tor per 1000",
    # commune covariates
    "log_pop_density": "Population density, log",
    "share_singles": "Share of singles",
    "Share_of_singles": "Share of singles",
    "drug_abuse": "Drug-abuse rate",
    "Drug_abuse_rate": "Drug-abuse rate",
    "poverty_rate": "Poverty rate",
    "Poverty_rate": "Poverty rate",
    "unemployment_rate": "Unemployment rate",
    "Unemployment_rate": "Unemployment rate",
    "turnout_2017": "Turnout, 2017 presidential election",
    "Electoral_turnout_2017": "Turnout, 2017 presidential election",
    "share_le_pen": "Vote share Le Pen, 2017",
    "Share_Le_Pen": "Vote share Le Pen, 2017",
    "share_macron": "Vote share Macron, 2017",
    "Share_Macron": "Vote share Macron, 2017",
    "poi_adult_entertainment": "POIs: adult entertainment",
    "POI_adult_entertainment": "POIs: adult entertainment",
    "poi_amateur_sports_team": "POIs: amateur sports teams",
    "POI_sports_teams": "POIs: amateur sports teams",
    "poi_church_cathedral": "POIs: churches and cathedrals",
    "POI_church": "POIs: churches and cathedrals",
    "poi_mosque": "POIs: mosques",
    "POI_mosque": "POIs: mosques",
    "poi_religious_organization": "POIs: religious organisations",
    "POI_religious_org": "POIs: religious organisations",
    "poi_school": "POIs: schools",
    "POI_school": "POIs: schools",
    "const": "Constant",
    "Constant": "Constant",
    # the outcome (validation.outcome_label's default) and the model names of Table 3
    "outcome": "Sexual violence per 1000",
    "Sexual_violence_per_1000": "Sexual violence per 1000",
    "sexual_violence_per_1000": "Sexual violence per 1000",
    "Sexual_violence": "Sexual violence per 1000",
    "log_cpc": "cpc per 1000, log",
    # Table 1 and the plain tables' columns
    "rho_j": "rho_j (porn-like timing correlation)",
    "c_j": "c_j (correction factor)",
    "indicator": "Indicator",
    "rho": "Spearman rho",
    "p_value": "p-value",
    "n": "n",
    "count": "n",
    "mean": "mean",
    "std": "sd",
    "min": "min",
    "max": "max",
    "25%": "25 %",
    "50%": "median",
    "75%": "75 %",
    "other": "compared with",
    "r_target": "r(outcome, cpc)",
    "r_other": "r(outcome, other)",
    "r_target_other": "r(cpc, other)",
}

_LAG = re.compile(r"^log_cpc_per_1000_lag([+-]\d+)h$")
_PC = re.compile(r"^PC(\d+)$")


def label(name: object) -> str:
    """The reader's label of an identifier.

    Parameters
    ----------
    name : object
        A variable or column identifier; anything else is shown as text.

    Returns
    -------
    str

    Examples
    --------
    >>> label("log_YouTube_per_1000"), label("log_cpc_per_1000_lag-2h"), label("PC3")
    ('YouTube per 1000, log', 'cpc per 1000, log, Tor lag -2 h', 'Search interest PC3')
    >>> label("some_new_column")
    'some new column'
    """
    text = str(name)
    if text in LABELS:
        return LABELS[text]
    m = _LAG.match(text)
    if m:
        return f"cpc per 1000, log, Tor lag {int(m.group(1)):+d} h"
    m = _PC.match(text)
    if m:
        return f"Search interest PC{m.group(1)}"
    return text.replace("_", " ") if re.fullmatch(r"[A-Za-z0-9_%]+", text) else text


def relabel(df, columns: bool = True, index: bool = True, values: tuple[str, ...] = ()):
    """A copy of a DataFrame with its labels (and the text of ``values`` columns) relabelled.

    Examples
    --------
    >>> relabel(pd.DataFrame({"indicator": ["log_Tor_per_1000"], "rho": [0.5]}),
    ...         values=("indicator",)).to_dict("records")
    [{'Indicator': 'Tor per 1000, log', 'Spearman rho': 0.5}]
    """
    out = df.copy()
    for col in values:
        out[col] = [label(v) for v in out[col]]
    if index:
        name = label(out.index.name) if out.index.name is not None else None
        out.index = pd.Index([label(i) if isinstance(i, str) else i for i in out.index], name=name)
    if columns:
        out.columns = [label(c) for c in out.columns]
    return out


#: Short column labels of the dependent-correlation methods (the long ones, with the
#: references, are :data:`cpc_core.validation.stage.METHOD_LABELS`).
METHOD_SHORT: dict[str, str] = {
    "williams": "Williams t",
    "steiger": "Steiger z",
    "hittner": "Hittner z",
    "meng": "Meng z",
    "dunn_clark": "Dunn-Clark z",
    "hotelling": "Hotelling t",
    "zou": "Zou interval",
    "koebe2024": "koebe2024 t (authors')",
}

"""The validation's variables, labels and regression tables, as data.

- :data:`TRAFFIC`, :data:`COVARIATES`, :data:`CONTROLS` -- the analysis variables of the
  regressions (docs/method.md section 6.2).
- :data:`LABELS`, :data:`METHOD_LABELS` and :func:`variable_label` -- the paper's names.
- :class:`ModelSpec`, :class:`TableSpec` and :data:`TABLES` -- Tables 3, 5, 6 and 7 as data:
  each lists its models as (dependent variable, regressors added to the common controls, row
  filters).
"""

from __future__ import annotations

from dataclasses import dataclass

from cpc_core.validation.choices import POI_ROLES

__all__ = [
    "COMPUTE_STEPS",
    "CONTROLS",
    "COVARIATES",
    "FILTERS",
    "LABELS",
    "METHOD_LABELS",
    "RATE_ROLES",
    "SOURCES",
    "TABLES",
    "TRAFFIC",
    "ModelSpec",
    "TableSpec",
    "variable_label",
]


#: Traffic regressors (log per 1000 inhabitants).
TRAFFIC = ("log_youtube_per_1000", "log_web_adult_per_1000", "log_tor_per_1000")
#: Commune covariates, in the paper's row order (docs/method.md section 6).
COVARIATES = (
    "log_pop_density",
    "share_singles",
    "poverty_rate",
    "unemployment_rate",
    "turnout_2017",
    "share_le_pen",
    "share_macron",
    *POI_ROLES,
)
#: The controls common to every regression; the search-interest PCs are appended at run
#: time (their names come from the configuration, PC1 and PC3 by default).
CONTROLS = (*TRAFFIC, *COVARIATES)

#: Display labels (the paper's), by analysis variable.
LABELS: dict[str, str] = {
    "log_youtube_per_1000": "log_YouTube_per_1000",
    "log_web_adult_per_1000": "log_Web_Adult_per_1000",
    "log_tor_per_1000": "log_Tor_per_1000",
    "log_cpc_per_1000": "log_cpc_per_1000",
    "log_cpc_per_1000_lag": "log_cpc_per_1000_lagged",
    "log_pop_density": "log_pop_density",
    "share_singles": "Share_of_singles",
    "drug_abuse": "Drug_abuse_rate",
    "poverty_rate": "Poverty_rate",
    # The paper labels it "Employment_rate"; the variable is the unemployment rate.
    "unemployment_rate": "Unemployment_rate",
    "turnout_2017": "Electoral_turnout_2017",
    "share_le_pen": "Share_Le_Pen",
    "share_macron": "Share_Macron",
    "poi_adult_entertainment": "POI_adult_entertainment",
    "poi_amateur_sports_team": "POI_sports_teams",
    "poi_church_cathedral": "POI_church",
    "poi_mosque": "POI_mosque",
    "poi_religious_organization": "POI_religious_org",
    "poi_school": "POI_school",
    "const": "Constant",
}

#: Human names of the dependent-correlation methods for tables and the report.
METHOD_LABELS: dict[str, str] = {
    "williams": "Williams (1959) t",
    "steiger": "Steiger (1980) z",
    "hittner": "Hittner, May & Silver (2003) z",
    "meng": "Meng, Rosenthal & Rubin (1992) z",
    "dunn_clark": "Dunn & Clark (1969) z",
    "hotelling": "Hotelling (1940) t",
    "zou": "Zou (2007) interval",
    "koebe2024": "koebe2024: the authors' replication formula (non-standard)",
}

#: Which role (or input) each analysis variable comes from, to explain a skipped table.
SOURCES: dict[str, str] = {
    "log_cpc_per_1000": "roles 'c' or 'rho', 'tor', 'population'",
    "log_tor_per_1000": "roles 'tor', 'population'",
    "log_web_adult_per_1000": "roles 'web_adult', 'population'",
    "log_youtube_per_1000": "roles 'youtube', 'population'",
    "log_pop_density": "role 'density'",
    "share_le_pen": "role 'le_pen'",
    "share_macron": "role 'macron'",
    "drug_abuse": "role 'drug_abuse'",
    "outcome": "role 'outcome'",
    "log_cpc_per_1000_lag": "the lagged c (estimates_by_lag.csv or role 'c_lagged')",
}

#: The rate covariates (docs/method.md section 6.2): role -> analysis variable. They enter the
#: regressions as shares in [0, 1], as the paper's coefficients imply (decisions.md, "Units").
RATE_ROLES: dict[str, str] = {
    "share_singles": "share_singles",
    "poverty_rate": "poverty_rate",
    "unemployment_rate": "unemployment_rate",
    "turnout_2017": "turnout_2017",
    "le_pen": "share_le_pen",
    "macron": "share_macron",
}

#: Filters a model can apply to its rows: name -> the reason a filtered row is counted under.
FILTERS = {
    "nonzero_outcome": "outcome is zero (dropped in this table)",
}


@dataclass(frozen=True)
class ModelSpec:
    """One regression: ``y`` on the controls plus ``extra`` (in this order).

    Attributes
    ----------
    name : str
        Column label in the table.
    y : str
        Dependent analysis variable (``"outcome"`` is the configured outcome).
    extra : tuple of str
        Regressors added after the controls.
    """

    name: str
    y: str
    extra: tuple[str, ...]


@dataclass(frozen=True)
class TableSpec:
    """A regression table: its models, row filters, sample, lag and label rules.

    Attributes
    ----------
    key, title : str
    models : tuple of ModelSpec
    filters : tuple of str
        Keys of row filters (:data:`FILTERS`).
    common_sample : bool
        Fit every model on the rows complete for all of them (the paper's Tables 5 and 7
        report the same N in both columns).
    compares_lags : bool
        The first model is the unlagged cpc and the second the cpc at Table 7's lag: the
        table is skipped when the unlagged cpc is not at lag 0, or when the lag is 0 (its two
        columns would be one model).
    column_labels : tuple of str, optional
        One label per model, above its column; ``{lag_h:+d}`` is replaced by the lag of the
        lagged cpc (:meth:`labels`).
    """

    key: str
    title: str
    models: tuple[ModelSpec, ...]
    filters: tuple[str, ...] = ()
    common_sample: bool = False
    compares_lags: bool = False
    column_labels: tuple[str, ...] | None = None

    def labels(self, lag_h: int | None = None) -> tuple[str, ...] | None:
        """The column labels with the lag filled in (None when the table has none).

        Examples
        --------
        >>> [t.labels(-2) for t in TABLES if t.column_labels]
        [('(without)', '(with drug abuse)'), ('no lag (Tor lag 0 h)', 'Tor lag -2 h')]
        """
        if self.column_labels is None:
            return None
        return tuple(label.format(lag_h=lag_h) for label in self.column_labels)


_TO_CPC = ModelSpec("log_cpc", "log_cpc_per_1000", ("outcome",))
_TO_OUTCOME = ModelSpec("Sexual_violence", "outcome", ("log_cpc_per_1000",))

#: The regression tables of the paper (Tables 3, 5, 6, 7).
TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "table3",
        "Table 3: log cpc per 1000 and the outcome, each on the other and the controls",
        (_TO_CPC, _TO_OUTCOME),
    ),
    TableSpec(
        "table5",
        "Table 5: log cpc per 1000 without and with the drug-abuse rate",
        (
            ModelSpec("without drug abuse", "log_cpc_per_1000", ("outcome",)),
            ModelSpec("with drug abuse", "log_cpc_per_1000", ("drug_abuse", "outcome")),
        ),
        common_sample=True,
        column_labels=("(without)", "(with drug abuse)"),
    ),  # fmt: skip
    TableSpec(
        "table6",
        "Table 6: as Table 3 without the communes with zero reported cases",
        (_TO_CPC, _TO_OUTCOME),
        filters=("nonzero_outcome",),
    ),
    TableSpec(
        "table7",
        "Table 7: log cpc per 1000 without and with the Tor lag",
        (
            ModelSpec("no lag", "log_cpc_per_1000", ("outcome",)),
            ModelSpec("lagged", "log_cpc_per_1000_lag", ("outcome",)),
        ),
        common_sample=True,
        compares_lags=True,
        column_labels=("no lag (Tor lag 0 h)", "Tor lag {lag_h:+d} h"),
    ),  # fmt: skip
)
#: Steps :func:`compute` reports to its ``on_step`` callback: Spearman, the dependent tests,
#: one per regression table.
COMPUTE_STEPS = 2 + len(TABLES)


def variable_label(
    var: str, outcome_label: str, lag_h: int | None = None, cpc_lag_h: int | None = None
) -> str:
    """Display label of an analysis variable, with the lag of each cpc variable.

    Parameters
    ----------
    var : str
        Analysis variable (``"outcome"`` is the configured outcome).
    outcome_label : str
        The outcome's name in the tables (``validation.outcome_label``).
    lag_h : int, optional
        Lag of ``log_cpc_per_1000_lag`` (Table 7's second column).
    cpc_lag_h : int, optional
        Lag of ``log_cpc_per_1000``; a label states it unless it is 0 (or unknown).

    Examples
    --------
    >>> variable_label("log_cpc_per_1000_lag", "SV", -2), variable_label("log_cpc_per_1000", "SV", -2, 0)
    ('log_cpc_per_1000_lag-2h', 'log_cpc_per_1000')
    >>> variable_label("log_cpc_per_1000", "SV", cpc_lag_h=-2), variable_label("outcome", "SV")
    ('log_cpc_per_1000_lag-2h', 'SV')
    """
    if var == "outcome":
        return outcome_label
    if var == "log_cpc_per_1000_lag" and lag_h is not None:
        return f"log_cpc_per_1000_lag{lag_h:+d}h"
    if var == "log_cpc_per_1000" and cpc_lag_h:
        return f"log_cpc_per_1000_lag{cpc_lag_h:+d}h"
    return LABELS.get(var, var)

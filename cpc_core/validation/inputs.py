"""What the validation receives: one object of frames and the estimate's constants.

The pipeline builds a :class:`ValidationInputs` from what it holds; ``cpc validate`` builds
the same object from the files on disk (``jobs.validate.read_inputs``). Either way the
statistics see one object, and the estimate's constants (:class:`EstimateConstants`: the
shares, the floor and the lag of the table's c_j) come from one place: the run's estimate
for a run's own table, the validation's own settings for an external table
(:func:`effective_constants`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from cpc_core.validation.results import CovariateInput, EstimateConstants

__all__ = ["EstimateConstants", "ValidationInputs", "effective_constants"]


#: validation.* setting -> the EstimateConstants field it stands for on an external table.
SETTING_OF = {"onion_share": "onion_share", "csam_share": "csam_share", "c_floor": "c_floor",
              "lag_h": "table_lag_h"}  # fmt: skip


def effective_constants(own: EstimateConstants, explicitly_set: Sequence[str],
                        run: EstimateConstants | None) -> tuple[EstimateConstants, list[dict]]:  # fmt: skip
    """The constants the validation uses: the run's for a run's own table, else its own.

    On a pipeline run's own table the estimate's constants are the one source (decisions.md):
    the validation's copies of them apply to external tables only. A validation value set
    explicitly to something else is overridden, with a warning note.

    Parameters
    ----------
    own : EstimateConstants
        The validation's settings (``validation.onion_share``, ``csam_share``, ``c_floor``,
        ``table_lag_h``).
    explicitly_set : sequence of str
        The validation settings the user set (their ``validation.*`` names).
    run : EstimateConstants or None
        The run's estimate when the table is the run's own, else None.

    Returns
    -------
    constants : EstimateConstants
    notes : list of dict
        ``{"scope", "level", "text"}``: what was taken from the run, what was ignored.

    Examples
    --------
    >>> c, notes = effective_constants(EstimateConstants(c_floor=3e-5), ["c_floor"],
    ...                                EstimateConstants(c_floor=2e-6, lag_h=2))
    >>> c.c_floor, c.lag_h, notes[0]["text"]
    (2e-06, 2, 'validation.c_floor = 3e-05 ignored: the commune table was estimated with estimate.c_floor = 2e-06')
    >>> effective_constants(EstimateConstants(lag_h=-1), ["table_lag_h"], None)[0].lag_h
    -1
    """
    if run is None:
        return own, []
    notes = []
    for name, setting in SETTING_OF.items():
        mine, theirs = getattr(own, name), getattr(run, name)
        if setting in explicitly_set and mine != theirs:
            notes.append({"scope": "data", "level": "warning",
                          "text": f"validation.{setting} = {mine} ignored: the commune table was "
                                  f"estimated with estimate.{name} = {theirs}"})  # fmt: skip
    shown = ", ".join(f"{name} = {getattr(run, name)}" for name in SETTING_OF)
    notes.append({"scope": "data", "level": "info",
                  "text": f"the commune table is the run's: its estimate section gives {shown}"})  # fmt: skip
    return run, notes


@dataclass(frozen=True, eq=False)
class ValidationInputs:
    """Everything the validation reads, as frames and constants (no paths, no configuration).

    Attributes
    ----------
    table : pandas.DataFrame
        The commune table (the pipeline's ``communes.csv`` or any other).
    table_name : str
        How notes refer to it.
    constants : EstimateConstants
        The constants the table's c_j were estimated with (:func:`effective_constants`).
    own_run : bool
        Whether the table is the run's own (its record then describes it).
    covariates : tuple of CovariateInput
        Joined on the commune code, in this order (the pipeline's POI counts first).
    search_interest : pandas.DataFrame, optional
        Region x term popularity.
    estimates_by_lag : pandas.DataFrame, optional
        ``commune, lag_h, c, ...``: c at lag 0 and at Table 7's lag.
    rho_by_lag : pandas.DataFrame, optional
        ``commune, lag_h, rho, ...``: the lag sweep figure.
    hourly : xarray.Dataset, optional
        The hourly area series (``youtube``, ``web_adult``, ``tor``; lazy).
    run : mapping, optional
        The run record.
    provenance : dict
        Input name -> ``{"path", "sha256", "bytes"}`` of the files read.
    notes : tuple of dict
        ``{"scope", "level", "text"}`` from building the inputs (constants, POI source).
    paths : dict
        Input name -> path of the optional inputs found (``hourly``, ``rho_by_lag``, ``geo``,
        ``search_interest``: the figures read some lazily).
    folders : tuple of path
        Where the inputs were looked for (the run folder, the table's folder): the
        synthetic-data marker and the planted truth are looked up there too.
    """

    table: pd.DataFrame
    table_name: str = "commune table"
    constants: EstimateConstants = field(default_factory=EstimateConstants)
    own_run: bool = False
    covariates: tuple[CovariateInput, ...] = ()
    search_interest: pd.DataFrame | None = None
    estimates_by_lag: pd.DataFrame | None = None
    rho_by_lag: pd.DataFrame | None = None
    hourly: object | None = None
    run: Mapping | None = None
    provenance: dict = field(default_factory=dict)
    notes: tuple[dict, ...] = ()
    paths: dict = field(default_factory=dict)
    folders: tuple = ()

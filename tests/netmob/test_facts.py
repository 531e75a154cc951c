"""The calendar facts of NetMob files: slots per local day and day offsets on the UTC axis,
computed with datetime alone, against the slot index pandas builds (the independent
reference: ``day_slots_utc``, a ``pd.date_range`` between the local midnights)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from cpc_core.netmob import facts


def test_slots_and_offsets_match_the_slot_index_over_four_years():
    days = [dt.date(2018, 1, 1) + dt.timedelta(days=i) for i in range(4 * 365 + 1)]
    want = [len(facts.day_slots_utc(d)) for d in days]
    assert [facts.slots_per_day(d) for d in days] == want
    assert want.count(92) == want.count(100) == 4  # one spring and one autumn change a year
    for first in (days[0], dt.date(2019, 3, 31), dt.date(2019, 10, 27)):
        later = [d for d in days if d >= first]
        t0 = facts.day_slots_utc(first)[0]
        ref = [(facts.day_slots_utc(d)[0] - t0) // pd.Timedelta(minutes=facts.SLOT_MINUTES) for d in later]
        got = facts.day_offsets(first, later)
        assert got.dtype == np.int64 and got.tolist() == ref

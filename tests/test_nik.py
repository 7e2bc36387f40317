"""NIK rules: 16 digits, a real province, non-zero regency/district/serial, a possible birth date (+40 for women)."""

from __future__ import annotations

import datetime

import pytest

from fr_gateway.gallery.nik import make_nik, synthetic_nik, validate_nik
from fr_gateway.reasons import Problem, Reason

VALID = [
    "3171014101900001",  # Jakarta, woman born 1 Jan 1990
    "6401011212850123",  # East Kalimantan, man born 12 Dec 1985
    "3273017112990001",  # woman born 31 Dec (71 = 31 + 40)
    "1101012902000001",  # 29 Feb: 2000 is a leap year
    "9601010101010001",  # Papua Barat Daya, a 2022 province
]
INVALID = {
    "": "16 digits",
    "317101410190000": "16 digits",
    "31710141019000011": "16 digits",
    "31710141019O0001": "16 digits",
    "3171 14101900001": "16 digits",
    "".join(chr(0xFF10 + int(d)) for d in "3171014101900001"): "16 digits",  # full-width digits are not ASCII
    "9971014101900001": "province",
    "0071014101900001": "province",
    "3100014101900001": "regency",
    "3171004101900001": "district",
    "3171010013900001": "date",  # day 00
    "3171013202900001": "date",  # 32 February
    "3171013104900001": "date",  # 31 April
    "3171017202900001": "date",  # 32 + 40: a woman's day 72 is day 32
    "3171011513900001": "date",  # month 13
    "3171012902010001": "date",  # 29 Feb 1901 / 2001: neither is a leap year
    "3171014101900000": "serial",
}


@pytest.mark.parametrize("nik", VALID)
def test_valid_niks_pass(nik):
    assert validate_nik(nik) == nik


@pytest.mark.parametrize(("nik", "what"), INVALID.items())
def test_malformed_niks_say_why(nik, what):
    with pytest.raises(Problem) as error:
        validate_nik(nik)
    assert error.value.reason is Reason.NIK_INVALID
    assert what in error.value.detail


def test_make_nik_encodes_women_with_day_plus_40():
    nik = make_nik(64, 1, 2, datetime.date(1991, 3, 7), female=True, serial=42)
    assert nik == "6401024703910042"
    assert make_nik(64, 1, 2, datetime.date(1991, 3, 7), female=False, serial=42)[6:8] == "07"


def test_synthetic_series_is_distinct_and_well_formed():
    niks = [synthetic_nik(n) for n in range(0, 60_000, 3)]
    assert len(set(niks)) == len(niks)
    assert all(validate_nik(nik) == nik for nik in niks)

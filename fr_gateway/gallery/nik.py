"""The NIK (Nomor Induk Kependudukan): 16 digits = province, regency, district, birth date (day + 40 for
women), serial. Malformed NIKs are refused before any face work is done."""

from __future__ import annotations

import calendar
import datetime

from fr_gateway.reasons import Problem, Reason

# Province codes in use by Dukcapil (Kemendagri), including the Papua provinces created in 2022.
PROVINCE_CODES = frozenset({
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21,
    31, 32, 33, 34, 35, 36,
    51, 52, 53,
    61, 62, 63, 64, 65,
    71, 72, 73, 74, 75, 76,
    81, 82,
    91, 92, 93, 94, 95, 96,
})
WOMEN_DAY_OFFSET = 40


def _day_exists(day: int, month: int, two_digit_year: int) -> bool:
    """The century is not in the NIK, so 29 February is possible when either 19YY or 20YY is a leap year."""
    if not 1 <= month <= 12 or day < 1:
        return False
    longest = max(calendar.monthrange(century + two_digit_year, month)[1] for century in (1900, 2000))
    return day <= longest


def validate_nik(nik: str) -> str:
    """Return the NIK unchanged when it is well formed; raise Problem(NIK_INVALID) saying what is wrong."""
    if len(nik) != 16 or not nik.isascii() or not nik.isdigit():
        raise Problem(Reason.NIK_INVALID, f"NIK must be 16 digits, got {len(nik)} characters")
    province, regency, district = int(nik[0:2]), int(nik[2:4]), int(nik[4:6])
    day, month, year = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    serial = int(nik[12:16])
    if province not in PROVINCE_CODES:
        raise Problem(Reason.NIK_INVALID, f"NIK province code {nik[0:2]} does not exist")
    if regency == 0 or district == 0:
        raise Problem(Reason.NIK_INVALID, "NIK regency and district codes cannot be 00")
    if day > WOMEN_DAY_OFFSET:
        day -= WOMEN_DAY_OFFSET
    if not _day_exists(day, month, year):
        raise Problem(Reason.NIK_INVALID, f"NIK birth date part {nik[6:12]} is not a possible date")
    if serial == 0:
        raise Problem(Reason.NIK_INVALID, "NIK serial number cannot be 0000")
    return nik


def make_nik(province: int, regency: int, district: int, birth: datetime.date, female: bool, serial: int) -> str:
    """Compose a well-formed NIK, for demo and test galleries."""
    day = birth.day + (WOMEN_DAY_OFFSET if female else 0)
    nik = f"{province:02d}{regency:02d}{district:02d}{day:02d}{birth.month:02d}{birth.year % 100:02d}{serial:04d}"
    return validate_nik(nik)


def synthetic_nik(number: int, province: int = 64) -> str:
    """The number-th NIK of a synthetic series (demo, tests, benchmarks): distinct for the first 9999 * 99 * 99
    numbers, well formed, with varied birth dates and sexes."""
    serial, rest = number % 9999 + 1, number // 9999
    birth = datetime.date(1950 + number % 50, 1 + number % 12, 1 + number % 28)
    return make_nik(province, 1 + rest % 99, 1 + rest // 99 % 99, birth, number % 2 == 1, serial)

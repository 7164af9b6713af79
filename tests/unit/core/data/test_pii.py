"""PII masking: each kind is masked, checksums keep look-alikes visible, dates, times, amounts and IDs survive."""

import pytest

from core.data.pii import luhn_ok, mask_pii, mask_pii_report


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+x@example.co.uk now", "mail [EMAIL] now"),
        ("call +1 (415) 555-2671 or 020 7946 0958", "call [PHONE] or [PHONE]"),
        ("phone 415-555-2671 today", "phone [PHONE] today"),
        ("手机: 13812345678", "手机: [PHONE]"),
        ("tel 13812345678", "tel [PHONE]"),
        ("+86 138 1234 5678 is his", "[PHONE] is his"),
        ("card 4111 1111 1111 1111 used", "card [CARD] used"),
        ("card 4111 1111 1111 1111, then", "card [CARD], then"),
        ("card 5500-0000-0000-0004 used", "card [CARD] used"),
        ("amex 378282246310005.", "amex [CARD]."),
        ("pay DE89 3704 0044 0532 0130 00 today", "pay [IBAN] today"),
        ("pay GB82WEST12345698765432 today", "pay [IBAN] today"),
        ("SSN 536-90-4399, NINO AB123456C", "SSN [NATIONAL_ID], NINO [NATIONAL_ID]"),
        ("身份证 11010519491231002X 已核验", "身份证 [NATIONAL_ID] 已核验"),
        ("NHS 943 476 5919 registered", "NHS [NATIONAL_ID] registered"),
        ("MRN: 00123456. Passport no. X1234567", "MRN: [NATIONAL_ID]. Passport no. [NATIONAL_ID]"),
        ("Patient: Jane Q. Doe, 54 y", "Patient: [NAME], 54 y"),
        ("Name: O'Brien, Mary transferred", "Name: [NAME] transferred"),
        ("Patient: John Smith, MRN: 00123456.", "Patient: [NAME], MRN: [NATIONAL_ID]."),
        ("DOB: 1950-01-02; seen 2024-03-01", "DOB: [DATE]; seen 2024-03-01"),
        ("出生日期:1950-01-02", "出生日期:[DATE]"),
    ],
)
def test_masks_each_kind(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # dates, times and timestamps in every common layout
        "transaction at 2019-03-14 02:41:05 from DE",
        "at 2019-03-14T02:41:05Z and 2019-03-14T02:41:05+08:00",
        "on 14/03/2019 at 2:41 PM, again 03.14.2019 02:41",
        "2026年1月5日 settled; 02:41:05.123 local",
        "time 23:59, window 00:00-05:59",
        # amounts, decimals, percentages, coordinates, IP addresses
        "amount 1,234,567.89 USD, fee $12.50, 1 234 EUR",
        "amount 1234567 EUR on 2024-03-01 at 10:15",
        "coordinates 40.7128, -74.0060 then 51.5072 -0.1276",
        "rate 12.5% up 3.25 %, from 192.168.10.254",
        # identifiers that are data: transaction, merchant, account, MCC, UUID, ICD-10, years, counts
        "transaction T000123 merchant 5411 MCC 5812 account acct_0042",
        "txn 20190314024105 ref 123e4567-e89b-12d3-a456-426614174000",
        "order 4111111111111112 fails Luhn",
        "card 4111 1111 1111 1112 fails Luhn",
        "IBAN-like DE00 3704 0044 0532 0130 00 fails mod 97",
        "SSN-like 000-12-3456 and 666-12-3456 are never issued",
        "编号 110105194912310021 wrong check digit",
        "ICD-10 J18.9 and S72.001A; 4 mm nodule, risk level 3 of 5, 12 transactions in 24 h",
        "Impression: No acute findings.",
        "years 2019 2020 2021, zip 94103",
    ],
)
def test_leaves_data_visible(text: str) -> None:
    assert mask_pii(text) == text


def test_timestamp_is_not_a_phone_next_to_one() -> None:
    assert mask_pii("2019-03-14 02:41:05 call +44 20 7946 0958") == "2019-03-14 02:41:05 call [PHONE]"


def test_counts_and_luhn() -> None:
    report = mask_pii_report("a@b.io, c@d.io, 4111111111111111")
    assert report.text == "[EMAIL], [EMAIL], [CARD]"
    assert report.counts == {"EMAIL": 2, "CARD": 1}
    assert luhn_ok("79927398713") and not luhn_ok("79927398710") and not luhn_ok("12a4")

"""PII masking: each kind is masked, checksums keep look-alikes visible, ordinary numbers survive."""

import pytest

from core.data.pii import luhn_ok, mask_pii, mask_pii_report


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+x@example.co.uk now", "mail [EMAIL] now"),
        ("call +1 (415) 555-2671 or 020 7946 0958", "call [PHONE] or [PHONE]"),
        ("card 4111 1111 1111 1111 used", "card [CARD] used"),
        ("card 5500-0000-0000-0004 used", "card [CARD] used"),
        ("pay DE89 3704 0044 0532 0130 00 today", "pay [IBAN] today"),
        ("pay GB82WEST12345698765432 today", "pay [IBAN] today"),
        ("SSN 123-45-6789, NINO AB123456C", "SSN [NATIONAL_ID], NINO [NATIONAL_ID]"),
        ("MRN: 00123456. Passport no. X1234567", "MRN: [NATIONAL_ID]. Passport no. [NATIONAL_ID]"),
        ("Patient: Jane Q. Doe, 54 y", "Patient: [NAME], 54 y"),
        ("Name: O'Brien, Mary transferred", "Name: [NAME] transferred"),
        ("Patient: John Smith, MRN: 00123456.", "Patient: [NAME], MRN: [NATIONAL_ID]."),
    ],
)
def test_masks_each_kind(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "IBAN-like DE00 3704 0044 0532 0130 00 fails mod 97",
        "amount 1234567 EUR on 2024-03-01 at 10:15",
        "4 mm nodule, risk level 3 of 5, 12 transactions in 24 h",
        "Impression: No acute findings.",
    ],
)
def test_leaves_look_alikes_and_numbers(text: str) -> None:
    assert mask_pii(text) == text


def test_counts_and_luhn() -> None:
    report = mask_pii_report("a@b.io, c@d.io, 4111111111111111")
    assert report.text == "[EMAIL], [EMAIL], [CARD]"
    assert report.counts == {"EMAIL": 2, "CARD": 1}
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")

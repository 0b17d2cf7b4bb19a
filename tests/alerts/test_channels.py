"""controller/alerts/channels.py: the signature (RFC 4231 test case 2) and the e-mail's text in Astana time."""

from __future__ import annotations

from controller.alerts.channels import astana, sign, subject_line, text_body


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?"
    assert sign("Jefe", b"what do ya want for nothing?") == \
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_mail_subject_and_text() -> None:
    payload = {"event": "resolved", "at": "2026-12-02T19:30:00+00:00", "alert": {
        "id": 7, "rule": "hot", "condition": "temperature_high", "threshold": 85, "severity": "warning",
        "status": "resolved", "subject": "machine:kz1/m1", "site": "kz1", "message": "S21 S1 at 80.0 °C",
        "since": "2026-12-02T18:55:00+00:00", "fired_at": "2026-12-02T19:00:00+00:00",
        "ended_at": "2026-12-02T19:30:00+00:00", "acknowledged_by": "operator:anna",
        "acknowledged_at": "2026-12-02T19:10:00+00:00"}}
    assert subject_line(payload) == "[Kuat WARNING] RESOLVED: hot — S21 S1 at 80.0 °C"
    text = text_body(payload, "https://ops.example/ui/")
    assert "Since:      2026-12-02 23:55:00 Astana (UTC+5)" in text
    assert "Ended:      2026-12-03 00:30:00 Astana (UTC+5)" in text  # past Astana midnight: the next day
    assert "Acknowledged by operator:anna at 2026-12-03 00:10:00 Astana (UTC+5)" in text
    assert text.rstrip().endswith("https://ops.example/ui#alerts")
    assert astana(None) == "—"

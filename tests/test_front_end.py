"""What the browser is told: scripts only from our files; tables aligned by kind."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from flask import Flask, render_template
from flask.testing import FlaskClient

from portal.performance.charts import partners_chart, tier_chart

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TAG = re.compile(r"<[a-zA-Z][^<>]*>")
HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


def test_scripts_may_only_come_from_the_portals_own_files(client: FlaskClient) -> None:
    response = client.get("/auth/sign-in")

    policy = response.headers["Content-Security-Policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split(";") if part
    )
    assert directives["script-src"] == ["'self'"]
    assert "unsafe" not in policy
    assert directives["frame-ancestors"] == ["'none'"]


def test_no_template_writes_script_into_the_page() -> None:
    """Inline scripts, handler attributes and hx-on would be refused by the policy."""
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        for tag in TAG.findall(path.read_text(encoding="utf-8")):
            inline_script = tag.startswith("<script") and " src=" not in tag
            if inline_script or HANDLER.search(tag) or "hx-on" in tag:
                found.append(f"{path.relative_to(TEMPLATES)}: {tag[:80]}")
            if "javascript:" in tag.lower():
                found.append(f"{path.relative_to(TEMPLATES)}: {tag[:80]}")

    assert found == []


def test_chart_tables_set_words_left_and_numbers_right(clean_app: Flask) -> None:
    charts = [
        tier_chart([("Growth", "Gold", 2)]),
        partners_chart([("Acme & Sons", Decimal("12.5"))]),
    ]

    with clean_app.test_request_context():
        html = re.sub(
            r">\s+<", "><", render_template("manager/_charts.html", charts=charts)
        )

    heads = re.findall(r'<th scope="col"( class="num")?>([^<]+)</th>', html)
    assert [(name, bool(num)) for num, name in heads] == [
        ("Program", False),
        ("Tier", False),
        ("Partners", True),
        ("Rank", True),
        ("Partner", False),
        ("Revenue", True),
    ]
    assert '<th scope="row">Growth</th><td>Gold</td><td class="num">2</td>' in html
    assert (
        '<th scope="row" class="num">1</th><td>Acme &amp; Sons</td>'
        '<td class="num">$12.50</td>'
    ) in html

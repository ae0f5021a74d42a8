"""The PDF performance report: real PDF bytes with a title page, the charts and the worker table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboard.report_pdf import build_report_pdf
from desk.services.store.queries import StoreReader
from tests.dashboard.read_store import DAY, T0, build_tiny_store

# A page object in the PDF's object tree (not the /Pages tree node).
PAGE_OBJECT = re.compile(rb"/Type\s*/Page\b")


def pdf_pages(pdf: bytes) -> int:
    return len(PAGE_OBJECT.findall(pdf))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> StoreReader:
    store_dir = build_tiny_store(tmp_path_factory.mktemp("tiny_pdf"))
    reader = StoreReader(f"sqlite:///{store_dir / 'desk.db'}", store_dir / "journal")
    yield reader
    reader.close()


def test_build_report_pdf_when_store_has_trades_then_pdf_of_at_least_two_pages(tiny) -> None:
    pdf = build_report_pdf(tiny, None, None)
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert pdf_pages(pdf) >= 2


def test_build_report_pdf_when_period_given_then_still_a_complete_report(tiny) -> None:
    assert pdf_pages(build_report_pdf(tiny, T0 + DAY, T0 + 2 * DAY - 1)) == 3  # title, charts, workers


def test_build_report_pdf_when_store_does_not_exist_then_report_says_so_without_failing(tmp_path: Path) -> None:
    reader = StoreReader(f"sqlite:///{tmp_path / 'desk.db'}", tmp_path / "journal")
    pdf = build_report_pdf(reader, None, None)
    assert pdf.startswith(b"%PDF-") and pdf_pages(pdf) == 3
    assert not (tmp_path / "desk.db").exists()

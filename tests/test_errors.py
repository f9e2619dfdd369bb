"""`keel.errors`: every error names the troubleshooting section that explains it."""

import re
from pathlib import Path

import keel.errors
from keel.errors import StoreNotFoundError, help_page

PAGE = Path(__file__).parent.parent / "docs" / "troubleshooting.md"


def test_every_error_carries_a_note_pointing_at_an_existing_section() -> None:
    anchors = {heading.strip().lower() for heading in re.findall(r"^## (\w+)\s*$", PAGE.read_text(), re.MULTILINE)}
    for name in keel.errors.__all__:
        cls = getattr(keel.errors, name)
        if isinstance(cls, type):
            assert help_page(cls.__new__(cls)).split("#")[1] in anchors, name
    error = StoreNotFoundError("no store at x", path="x")
    assert str(error) == "no store at x"  # the message itself is unchanged
    assert error.__notes__ == ["help: docs/troubleshooting.md#storenotfounderror"]

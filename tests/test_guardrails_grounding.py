"""GroundingGuard on support-desk answers checked against the demo desk's own tool results.

Each case is an answer, what the run saw, and the spans a careful reviewer would call invented. Over the set:
26 invented claims, all flagged (26 true positives, 0 false negatives); 1 false positive — a correct total the
model computed itself ($49.00 for 2 × $24.50), which grounding cannot tell from an invented one (documented in
keel.guardrails.grounding); every faithful restatement in another format passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pytest

from keel.errors import ConfigError
from keel.guardrails.base import Guard, GuardContext
from keel.guardrails.grounding import GroundingGuard

DESK: dict[str, Any] = json.loads(
    resources.files("keel.demo").joinpath("data/support.json").read_text(encoding="utf-8")
)


def order(order_id: str) -> str:
    """What get_order returns to the model."""
    return json.dumps(next(o for o in DESK["orders"] if o["id"] == order_id))


def customer(customer_id: str) -> str:
    return json.dumps(next(c for c in DESK["customers"] if c["id"] == customer_id))


POLICY = (
    "Returns are accepted within 30 days of delivery. Refunds are paid within 5-10 business days. "
    "Gold members get free return shipping. Start a return at https://northwind.example/returns"
)
REFUND = json.dumps({"refund_id": "R-0001", "order_id": "A-1005", "amount": "32.00", "currency": "USD"})
TRACKING = json.dumps(
    {
        "carrier": "DHL",
        "tracking": "JD014600006281234567",
        "events": [
            {"at": "2025-06-02T08:14:00Z", "where": "Leipzig hub", "what": "held after a weather disruption"},
            {"at": "2025-06-05T16:40:00Z", "where": "Leipzig hub", "what": "back in transit"},
        ],
    }
)


@dataclass(frozen=True)
class Case:
    answer: str
    sources: tuple[str, ...]
    invented: tuple[str, ...] = ()
    """The spans a reviewer would call invented (expected findings)."""
    task: str = "Where is my order?"
    computed: tuple[str, ...] = ()
    """Correct values the model derived (flagged all the same: grounding does no arithmetic)."""


FAITHFUL = [
    Case("Your order A-1002 is delayed; it is now expected on June 9, 2025.", (order("A-1002"),)),
    Case("The total for order a-1002 was $89.97 (USD).", (order("A-1002"),)),
    Case("Order A-1002 was placed on 28 May 2025 and promised by 06/03/2025.", (order("A-1002"),)),
    Case("The boots cost $74.99 and the socks $14.98, for a total of USD 89.97.", (order("A-1002"),)),
    Case(
        "Your parcel is with DHL under JD014600006281234567; it has been back in transit since June 5.",
        (order("A-1002"),),
    ),
    Case("Hi Dana, I've sent the update to DANA@example.com.", (customer("C-100"),)),
    Case(
        "You can start a return at https://www.northwind.example/returns/ within 30 days; refunds take 5-10 "
        "business days.",
        (POLICY,),
    ),
    Case("Refund R-0001 of $32.00 for order #1005 is pending.", (REFUND,)),
    Case("Your order 1002 should arrive Monday, June 9.", (order("A-1002"),)),
    Case(
        "The tent (order A-1001) was delivered on 2025-05-17, two days before the promised 2025-05-19.",
        (order("A-1001"),),
    ),
    Case(
        "Your stove (order A-1003, $59.50) is out for delivery with USPS, tracking 9400111899223856928499.",
        (order("A-1003"),),
    ),
    Case("It was held at the Leipzig hub from 2 June 2025 and moved again on June 5, 2025 at 16:40.", (TRACKING,)),
    Case(
        "Step 1: pack the boots. Step 2: print the label at northwind.example/returns. You have 30 days.",
        (POLICY,),
    ),
    Case(
        "As a gold member (C-100) you get free return shipping for A-1002, placed 2025-05-28.",
        (customer("C-100"), order("A-1002"), POLICY),
    ),
    Case(
        "Order A-1004 totals 178.00 USD: a 45 L backpack at $129 and 2 insulated bottles at $24.50.", (order("A-1004"),)
    ),
    Case(
        "I can see your payment of $178 on June 4 for A-1004.",
        (order("A-1004"),),
        task="I paid $178 on June 4 for A-1004, why is it not shipped?",
    ),
    Case("Thanks for waiting! We'll update you within 2 days, in 2025 still.", (order("A-1002"),)),
]

INVENTED = [
    Case("I've issued refund R-0042 for $89.97 on order A-1002.", (order("A-1002"),), ("R-0042",)),
    Case("Your order A-1002 will arrive on June 10, 2025.", (order("A-1002"),), ("June 10, 2025",)),
    Case("Order A-1002 came to $98.97.", (order("A-1002"),), ("$98.97",)),
    Case(
        "Track it at https://northwind.example/track/A-1002 any time.",
        (order("A-1002"), POLICY),
        ("https://northwind.example/track/A-1002",),
    ),
    Case(
        "See https://northwind-support.example/returns for labels.",
        (POLICY,),
        ("https://northwind-support.example/returns",),
    ),
    Case("We've emailed d.whitfield@example.com with the details.", (customer("C-100"),), ("d.whitfield@example.com",)),
    Case("Tracking number JD014600006281234568 shows it in Leipzig.", (order("A-1002"),), ("JD014600006281234568",)),
    Case("It should arrive Tuesday, June 9, 2025.", (order("A-1002"),), ("Tuesday, June 9, 2025",)),
    Case("As a gold member you get 15% off your next order.", (customer("C-100"), POLICY), ("15%",)),
    Case("Refunds take up to 14 business days.", (POLICY,), ("14",)),
    Case("Your customer number is C-1000.", (customer("C-100"),), ("C-1000",)),
    Case("I've opened ticket #58213 for you.", (order("A-1002"),), ("#58213",)),
    Case("Your tent was delivered on 2025-05-18.", (order("A-1001"),), ("2025-05-18",)),
    Case(
        "Order A-1002 ($89.97) left Leipzig on 2025-06-04 with tracking JD014600006281234567 and arrives June 9.",
        (order("A-1002"), TRACKING),
        ("2025-06-04",),
    ),
    Case(
        "Refund R-0001 of €45.00 was paid on 3 June 2025 to order A-1006.",
        (REFUND,),
        ("€45.00", "3 June 2025", "A-1006"),
    ),
    Case(
        "Dana, order A-1001 (UUID 3f2a9c1d-8e7b-4a5f-9e3d-2c1b0a9f8e7d) shipped with UPS 1Z999AA10123456785.",
        (order("A-1001"), customer("C-100")),
        ("3f2a9c1d-8e7b-4a5f-9e3d-2c1b0a9f8e7d", "1Z999AA10123456785"),
    ),
    Case(
        "The stove costs $59.95, arrives 06/07/2025 and support is at help@northwind.example or "
        "www.northwind.example/help.",
        (order("A-1003"),),
        ("$59.95", "06/07/2025", "help@northwind.example", "www.northwind.example/help"),
    ),
    Case(
        "Your 3 items total 1,250.00 USD and ship from warehouse 12 on June 21.",
        (order("A-1004"),),
        ("1,250.00 USD", "12", "June 21"),
    ),
    Case(
        "Two bottles cost $49.00 and the backpack $129.",
        (order("A-1004"),),
        computed=("$49.00",),
    ),
]


def flagged(case: Case, guard: GroundingGuard | None = None) -> list[str]:
    guard = guard or GroundingGuard()
    verdict = guard.check(case.answer, GuardContext(task=case.task, sources=case.sources))
    return [case.answer[f.start : f.end] for f in verdict.findings]


@pytest.mark.parametrize("case", FAITHFUL, ids=lambda case: case.answer[:40])
def test_faithful_restatements_in_other_formats_pass(case: Case):
    verdict = GroundingGuard().check(case.answer, GuardContext(task=case.task, sources=case.sources))
    assert verdict.passed, verdict.detail
    assert verdict.findings == ()


@pytest.mark.parametrize("case", INVENTED, ids=lambda case: case.answer[:40])
def test_invented_claims_are_flagged_with_their_spans(case: Case):
    assert flagged(case) == [*case.invented, *case.computed]


def test_counts_over_the_set():
    tp = fp = fn = 0
    for case in FAITHFUL + INVENTED:
        found = flagged(case)
        tp += sum(span in case.invented for span in found)
        fp += sum(span not in case.invented for span in found)
        fn += sum(span not in found for span in case.invented)
    assert (tp, fp, fn) == (26, 1, 0)


def test_finding_kinds_name_what_is_unsupported():
    answer = "Refund R-0042 of $12.00 (7.5 units) on June 10, 2025: ask x@example.org or https://n.example/a"
    verdict = GroundingGuard().check(answer, GuardContext(sources=(order("A-1002"),)))
    assert [f.kind for f in verdict.findings] == [
        "unsupported_id",
        "unsupported_amount",
        "unsupported_number",
        "unsupported_date",
        "unsupported_email",
        "unsupported_url",
    ]
    email = next(f for f in verdict.findings if f.kind == "unsupported_email")
    assert email.preview == "x***@example.org"  # journal-safe: PII is masked
    assert verdict.detail.startswith("6 of 6 claims not found in what the run saw: id 'R-0042', amount '$12.00'")
    assert "x@example.org" not in verdict.detail
    assert verdict.scores == {"claims": 6.0, "unsupported": 6.0}


@pytest.mark.parametrize("mode", ["flag", "escalate", "block"])
def test_mode_decides_the_action_when_something_is_unsupported(mode: Any):
    guard = GroundingGuard(mode=mode)
    ctx = GuardContext(sources=(order("A-1002"),))
    assert guard.check("Refund R-0042 is done.", ctx).action == mode
    assert guard.check("Order A-1002 totals $89.97.", ctx).action == "pass"


def test_kinds_limits_what_is_checked():
    answer = "Refund R-0042 of $12.00 is at https://n.example/a"
    ctx = GuardContext(sources=(order("A-1002"),))
    verdict = GroundingGuard(kinds=["url", "amount"]).check(answer, ctx)
    assert [f.kind for f in verdict.findings] == ["unsupported_amount", "unsupported_url"]
    assert GroundingGuard(kinds={"email"}).check(answer, ctx).passed


def test_small_numbers_and_enumerations_are_not_claims():
    answer = "1. Pack the 2 boxes.\n2. Step 3 takes two weeks.\n3. Option 12 is the 2nd choice at 10:30 am, 24/7."
    verdict = GroundingGuard().check(answer, GuardContext(sources=("nothing relevant",)))
    assert verdict.passed
    assert verdict.scores == {"claims": 0.0, "unsupported": 0.0}


def test_an_answer_without_claims_or_context_passes():
    assert GroundingGuard().check("", GuardContext()).passed
    assert GroundingGuard().check("Sorry for the wait, it is on its way.", GuardContext()).passed
    assert GroundingGuard().check("Order A-1002 is late.", GuardContext()).action == "flag"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "redact"}, "mode"),
        ({"kinds": "url"}, "not the string"),
        ({"kinds": ["url", "name"]}, "kinds"),
        ({"kinds": []}, "kinds"),
    ],
)
def test_bad_configuration_is_a_clear_error(kwargs: dict[str, Any], message: str):
    with pytest.raises(ConfigError, match=message):
        GroundingGuard(**kwargs)


def test_it_is_a_guard_named_grounding():
    guard = GroundingGuard()
    assert isinstance(guard, Guard)
    assert guard.name == "grounding"
    assert GroundingGuard("block", "facts").check("R-0042", GuardContext()).guard == "facts"


def test_unsupported_personal_data_is_never_previewed_in_clear() -> None:
    answer = (
        "Your SSN 123-45-6789 and card 4111 1111 1111 1111 are on file; reset at https://x.io/reset?token=abcDEF123456"
    )
    verdict = GroundingGuard(mode="flag").check(answer, GuardContext(task="What is on file?"))

    journaled = verdict.detail + " | ".join(f.preview for f in verdict.findings)
    assert verdict.findings
    for secret in ("123-45-6789", "4111", "abcDEF123456"):
        assert secret not in journaled

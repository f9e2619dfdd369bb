"""The fixed prompts of `local_model.py`: what a support desk gets, the call each needs, the facts to answer with.

Every id and email exists in ``keel/demo/data/support.json``. Each case's `facts` come from the result of its
expected call and none of them appears in the prompt itself, so an answer that merely repeats the question never
counts as sensible (`local_model.py` checks both before it runs anything). Refunds are run on a fresh desk each,
so the first refund issued is always ``R-0001``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    prompt: str
    tool: str
    """The tool the model's first turn should call."""
    arguments: dict[str, Any]
    facts: tuple[str, ...]
    """A sensible answer to the tool's result contains at least one of these (case-insensitive)."""


# What a sensible answer about each order can mention: status, dates as stored and as spoken, carrier, last update.
A1001 = ("2025-05-17", "May 17", "front door", "UPS")
A1002 = ("delayed", "2025-06-09", "June 9", "Leipzig", "weather", "DHL")
A1003 = ("shipped", "out for delivery", "2025-06-06", "June 6", "USPS")
A1004 = ("processing", "packed", "warehouse", "2025-06-11", "June 11")
A1005 = ("returned", "return received", "refund pending", "USPS")
REFUNDED = ("R-0001", "issued")

CASES: tuple[Case, ...] = (
    # Order status, with the order id in varied shapes and surroundings.
    Case("What's the status of order A-1003?", "get_order", {"order_id": "A-1003"}, A1003),
    Case(
        "Hi, this is dana@example.com. My order A-1002 was promised for June 3 and it still hasn't arrived. "
        "What's going on?",
        "get_order",
        {"order_id": "A-1002"},
        A1002,
    ),
    Case("where is my order a-1004", "get_order", {"order_id": "A-1004"}, A1004),
    Case(
        "Can you check order A-1001 for me? I want to know when it was delivered.",
        "get_order",
        {"order_id": "A-1001"},
        A1001,
    ),
    Case("Order A-1005: did you get my return?", "get_order", {"order_id": "A-1005"}, A1005),
    Case(
        "hello\n\nI ordered boots and socks a while ago (order A-1002). The tracking page says nothing. Any news?? "
        "Thanks, Dana",
        "get_order",
        {"order_id": "A-1002"},
        A1002,
    ),
    Case("Status A-1003 pls", "get_order", {"order_id": "A-1003"}, A1003),
    Case("I placed order A-1004 last week. When will it ship?", "get_order", {"order_id": "A-1004"}, A1004),
    # Customer lookups by email.
    Case(
        "Find the customer with email sofia.l@example.com",
        "find_customer",
        {"email": "sofia.l@example.com"},
        ("Lindqvist", "C-102"),
    ),
    Case(
        "Who is ravi.menon@example.com? Please look up the customer.",
        "find_customer",
        {"email": "ravi.menon@example.com"},
        ("Ravi Menon", "C-101"),
    ),
    Case(
        "Customer lookup: DANA@EXAMPLE.COM",
        "find_customer",
        {"email": "dana@example.com"},
        ("Whitfield", "C-100", "gold"),
    ),
    Case(
        "Hi, I'm writing from sofia.l@example.com, can you pull up my account?",
        "find_customer",
        {"email": "sofia.l@example.com"},
        ("Lindqvist", "C-102"),
    ),
    Case(
        "Do we have a customer registered as ravi.menon@example.com?",
        "find_customer",
        {"email": "ravi.menon@example.com"},
        ("Ravi Menon", "C-101"),
    ),
    # A customer's orders by customer id.
    Case("List the orders of customer C-100", "list_orders", {"customer_id": "C-100"}, ("A-1001", "A-1002")),
    Case("Show me all orders for customer C-101.", "list_orders", {"customer_id": "C-101"}, ("A-1003", "A-1005")),
    Case("What has customer C-102 ordered?", "list_orders", {"customer_id": "C-102"}, ("A-1004",)),
    Case(
        "customer id c-101 -- list their orders, most recent first",
        "list_orders",
        {"customer_id": "C-101"},
        ("A-1003", "A-1005"),
    ),
    Case(
        "I need the order history of customer C-100, please.",
        "list_orders",
        {"customer_id": "C-100"},
        ("A-1001", "A-1002"),
    ),
    # Refunds: an order id and an amount, never more than the order total.
    Case(
        "Please refund 20.00 on order A-1002, the socks were damaged.",
        "refund",
        {"order_id": "A-1002", "amount": 20.0},
        REFUNDED,
    ),
    Case("Refund order A-1003 in full: 59.50 USD.", "refund", {"order_id": "A-1003", "amount": 59.5}, REFUNDED),
    Case(
        "The tent from order A-1001 had a torn seam. I'd like a refund of 50 dollars.",
        "refund",
        {"order_id": "A-1001", "amount": 50.0},
        REFUNDED,
    ),
    Case("Refund 32 on A-1005, the return arrived.", "refund", {"order_id": "A-1005", "amount": 32.0}, REFUNDED),
    Case(
        "can u refund $14.98 for the socks on order a-1002? they never came",
        "refund",
        {"order_id": "A-1002", "amount": 14.98},
        REFUNDED,
    ),
    Case(
        "Issue a refund of 129.00 on order A-1004, the customer cancelled the backpack.",
        "refund",
        {"order_id": "A-1004", "amount": 129.0},
        REFUNDED,
    ),
)

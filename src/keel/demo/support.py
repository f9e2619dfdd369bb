"""The demo support desk: a customer-service agent over a small bundled dataset of orders and customers.

`build_agent()` returns the agent ``keel demo`` runs; tests and later examples reuse it with their own model and
store. The tools are real: they read the bundled dataset (``keel/demo/data/support.json``) and `refund` keeps
the refunds it issues in an in-process dict keyed by the call's idempotency key, so a repeated call (a retry, a
resume) refunds once.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Mapping
from importlib import resources
from typing import Any

from keel.agent import Agent
from keel.budget import Budget
from keel.cost.cache import CachePolicy
from keel.models.base import Model
from keel.store.base import Store
from keel.testing import ScriptedModel, call, reply
from keel.tools import Tool, ToolContext, tool

__all__ = ["DEMO_TASK", "INSTRUCTIONS", "SupportDesk", "build_agent", "scripted_model", "support_tools"]

DEMO_TASK = (
    "Hi, this is dana@example.com. My order A-1002 was promised for June 3 and it still hasn't arrived. "
    "What's going on?"
)
"""The customer message ``keel demo`` sends to the agent."""

INSTRUCTIONS = """\
You are the support desk of Northwind Outfitters. You answer customers about their orders.
Look facts up with the tools before stating them: never guess an order's status, dates or amounts.
Check that an order belongs to the customer asking about it before discussing it.
Refunds move money: refund only when the customer asks for one, and never more than what is left of the order
total."""


class SupportDesk:
    """The desk's data (customers, orders) and the refunds it has issued, keyed by idempotency key."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.company: str = data["company"]
        self.customers: dict[str, dict[str, Any]] = {c["id"]: c for c in data["customers"]}
        self.orders: dict[str, dict[str, Any]] = {o["id"]: o for o in data["orders"]}
        self.refunds: dict[str, dict[str, Any]] = {}
        """Issued refunds by idempotency key."""
        self._lock = threading.Lock()  # sync tools run in worker threads, possibly at the same time

    @classmethod
    def load(cls) -> SupportDesk:
        """A fresh desk over the bundled dataset, with no refunds issued."""
        text = resources.files("keel.demo").joinpath("data/support.json").read_text(encoding="utf-8")
        return cls(json.loads(text))

    def order(self, order_id: str) -> dict[str, Any]:
        """The order with this id; `LookupError` when there is none."""
        order = self.orders.get(order_id.strip().upper())
        if order is None:
            known = ", ".join(sorted(self.orders))
            raise LookupError(f"no order {order_id!r} (known order ids: {known})")
        return {**order, "refunded": self.refunded(order["id"])}

    def customer_by_email(self, email: str) -> dict[str, Any]:
        """The customer with this email address; `LookupError` when there is none."""
        wanted = email.strip().lower()
        for customer in self.customers.values():
            if customer["email"] == wanted:
                return dict(customer)
        raise LookupError(f"no customer with the email address {email!r}")

    def orders_of(self, customer_id: str) -> list[dict[str, Any]]:
        """A customer's orders, most recent first, in brief; `LookupError` for an unknown customer."""
        wanted = customer_id.strip().upper()
        if wanted not in self.customers:
            raise LookupError(f"no customer {customer_id!r}")
        customer_id = wanted
        mine = [o for o in self.orders.values() if o["customer_id"] == customer_id]
        mine.sort(key=lambda o: o["placed_on"], reverse=True)
        keys = ("id", "placed_on", "status", "total", "currency")
        return [{key: o[key] for key in keys} for o in mine]

    def refunded(self, order_id: str) -> float:
        """Money already refunded on an order."""
        return round(sum((r["amount"] for r in self.refunds.values() if r["order_id"] == order_id), 0.0), 2)

    def refund(self, idempotency_key: str, order_id: str, amount: float) -> dict[str, Any]:
        """Refund `amount` on an order once per idempotency key; a repeated key returns the first refund.

        Raises:
            LookupError: the order does not exist.
            ValueError: the amount is not positive or exceeds what is left to refund.
        """
        with self._lock:
            if idempotency_key in self.refunds:
                return {**self.refunds[idempotency_key], "duplicate": True}
            order = self.order(order_id)
            if amount <= 0:
                raise ValueError(f"a refund must be a positive amount, got {amount}")
            refundable = round(order["total"] - order["refunded"], 2)
            if round(amount, 2) > refundable:
                raise ValueError(
                    f"cannot refund {amount:.2f} {order['currency']} on order {order['id']}: only {refundable:.2f} "
                    f"of its {order['total']:.2f} total is left to refund"
                )
            issued = {
                "refund_id": f"R-{len(self.refunds) + 1:04d}",
                "order_id": order["id"],
                "amount": round(amount, 2),
                "currency": order["currency"],
                "status": "issued",
            }
            self.refunds[idempotency_key] = issued
            return dict(issued)


def support_tools(desk: SupportDesk) -> list[Tool]:
    """The desk's tools, bound to `desk`: three read-only lookups and one high-severity refund."""

    @tool
    def get_order(order_id: str) -> dict[str, Any]:
        """Look up an order: status, dates, items, total, carrier, tracking and the latest update.

        Args:
            order_id: the order id, such as "A-1002".
        """
        return desk.order(order_id)

    @tool
    def find_customer(email: str) -> dict[str, Any]:
        """Find a customer by email address.

        Args:
            email: the customer's email address.
        """
        return desk.customer_by_email(email)

    @tool
    def list_orders(customer_id: str) -> list[dict[str, Any]]:
        """List a customer's orders, most recent first (id, date, status, total).

        Args:
            customer_id: the customer id, such as "C-100".
        """
        return desk.orders_of(customer_id)

    @tool(severity="high", side_effects=True)
    def refund(ctx: ToolContext, order_id: str, amount: float) -> dict[str, Any]:
        """Refund part or all of an order to the customer's original payment method.

        Args:
            ctx: the call's context (not shown to the model); its idempotency key makes a repeat a no-op.
            order_id: the order to refund.
            amount: how much to refund, in the order's currency; at most what is left of the order total.
        """
        return desk.refund(ctx.idempotency_key, order_id, amount)

    return [get_order, find_customer, list_orders, refund]


def scripted_model(desk: SupportDesk | None = None) -> ScriptedModel:
    """The demo's stand-in model: a fixed script of turns (look up the order, check the customer, answer).

    The answer is written from the dataset, so every fact in it is one the tool calls return. Each call to this
    function returns a new model: a `ScriptedModel` plays its script once.
    """
    desk = desk or SupportDesk.load()
    order = desk.orders["A-1002"]
    customer = desk.customers[order["customer_id"]]
    answer = (
        f"Hi {customer['name'].split()[0]}, I'm sorry order {order['id']} is late. It was promised by "
        f"{order['promised_by']} and is currently {order['status']}. Latest update from {order['carrier']}: "
        f"{order['last_update']} The new expected delivery date is {order['expected_on']} "
        f"(tracking {order['tracking']}). If it has not arrived by then, reply here and I can refund the "
        f"{order['total']:.2f} {order['currency']} or send a replacement."
    )
    look_up = dataclasses.replace(
        call("get_order", order_id=order["id"]), reason="Check the order's status and dates before answering."
    )
    verify = dataclasses.replace(
        call("find_customer", email=customer["email"]), reason="Confirm the order belongs to the customer asking."
    )
    return ScriptedModel(
        [look_up, verify, reply(answer, confidence=0.9)],
        usage=[(412, 24), (598, 22), (731, 96)],
        name="scripted:support-demo",
    )


def build_agent(
    model: Model | str | None = None, store: Store | str | None = None, *, desk: SupportDesk | None = None
) -> Agent:
    """The support-desk agent.

    Args:
        model: the model; None for the demo's scripted model (`scripted_model`).
        store: where runs are journaled; None for ``KEEL_STORE`` or ``.keel/keel.db``.
        desk: the data and refund book the tools use; None for a fresh desk over the bundled dataset.
    """
    desk = desk or SupportDesk.load()
    return Agent(
        "support-desk",
        model if model is not None else scripted_model(desk),
        instructions=INSTRUCTIONS,
        tools=support_tools(desk),
        budget=Budget(max_tokens=20_000, max_steps=8, timeout_s=60),
        max_output_tokens=400,  # a support reply is a few sentences; a small model that rambles is cut here
        store=store,
        cache=CachePolicy(responses=False),  # the demo shows the model at work, not yesterday's answer replayed
    )

"""Types for the verify-integrity test: an event that lacks a token its types need, and one that gives it."""

from __future__ import annotations

from pydantic import Field

from workflowable import ActivityType, ConditionType, WorkflowEvent


class Shipment(WorkflowEvent):
    order_id: int  # no address


class Invoice(WorkflowEvent):
    order_id: int
    address: str = Field(alias="postal-address")


class Ship(ActivityType):
    requires_tokens = ("order_id", "postal-address")


class HasAddress(ConditionType):
    requires_tokens = ("postal-address",)


TYPES = [Shipment, Invoice, Ship, HasAddress]
GOOD = [Invoice, Ship, HasAddress]  # an application without the Shipment event

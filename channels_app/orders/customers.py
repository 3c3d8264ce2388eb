"""Customers across channels: one buyer, matched by normalised e-mail, else phone."""

from __future__ import annotations

import re

from ..models import Customer


def normalise_email(email: str) -> str:
    return email.strip().lower()


def normalise_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone or "")
    return ("+" + digits) if phone.strip().startswith("+") and digits else digits


def customer_match(*, email: str, phone: str, name: str = "") -> Customer | None:
    """The same buyer across channels: by normalised e-mail, else by phone."""
    email, phone = normalise_email(email or ""), normalise_phone(phone or "")
    if not email and not phone:
        return None
    customer = None
    if email:
        customer = Customer.objects.filter(email=email).order_by("pk").first()
    if customer is None and phone:
        customer = Customer.objects.filter(phone=phone).order_by("pk").first()
    if customer is None:
        return Customer.objects.create(email=email, phone=phone, name=name[:200])
    changed = []
    if email and not customer.email:
        customer.email = email
        changed.append("email")
    if phone and not customer.phone:
        customer.phone = phone
        changed.append("phone")
    if changed:
        customer.save(update_fields=changed)
    return customer

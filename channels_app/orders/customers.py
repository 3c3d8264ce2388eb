"""Customers across channels: one buyer, matched by normalised e-mail, else phone.

A normalised e-mail names at most one customer (a database constraint), so two
first orders of one buyer imported at the same moment by two workers end up
with one customer: the second insert meets the first (ON CONFLICT DO NOTHING,
waiting for it to commit) and then reads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..models import Customer

Contact = tuple[str, str]  # (normalised e-mail, normalised phone)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def normalise_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone or "")
    return ("+" + digits) if phone.strip().startswith("+") and digits else digits


def customer_contact(*, email: str, phone: str) -> Contact:
    return normalise_email(email or ""), normalise_phone(phone or "")


def _by_email(email: str) -> Customer | None:
    return Customer.objects.filter(email=email).first()


def _email_customer_create(email: str, phone: str, name: str) -> Customer:
    """The customer of this e-mail, created unless a concurrent import did first."""
    Customer.objects.bulk_create(
        [Customer(email=email, phone=phone, name=name[:200])], ignore_conflicts=True
    )
    return Customer.objects.get(email=email)


def customer_match(*, email: str, phone: str, name: str = "") -> Customer | None:
    """The same buyer across channels: by normalised e-mail, else by phone (a
    customer known by phone gets the e-mail when it has none yet); created when
    neither matches. None without any contact."""
    email, phone = customer_contact(email=email, phone=phone)
    if not email and not phone:
        return None
    customer = _by_email(email) if email else None
    if customer is None and phone:
        customer = Customer.objects.filter(phone=phone).order_by("pk").first()
    if customer is None:
        if email:
            return _email_customer_create(email, phone, name)
        return Customer.objects.create(phone=phone, name=name[:200])
    if email and not customer.email:
        customer.email = email
        customer.save(update_fields=["email"])
    return _phone_kept(customer, phone)


def customers_match(contacts: Iterable[Contact]) -> dict[Contact, Customer | None]:
    """customer_match for many (normalised) contacts with a few queries: known
    e-mails in one read, new e-mail customers in one insert. Rows are taken in
    e-mail order, so two batches never wait on each other's new customers in a
    cycle. Contacts that need the phone rule go one by one, as customer_match."""
    wanted = sorted({contact for contact in contacts if any(contact)})
    emails = [email for email, _ in wanted if email]
    known = {c.email: c for c in Customer.objects.filter(email__in=emails)}
    phones = {phone for email, phone in wanted if phone and email not in known}
    by_phone = set(Customer.objects.filter(phone__in=phones).values_list("phone", flat=True))
    found: dict[Contact, Customer | None] = {}
    fresh: list[Contact] = []
    for email, phone in wanted:
        if email in known:
            found[(email, phone)] = _phone_kept(known[email], phone)
        elif email and phone not in by_phone:
            fresh.append((email, phone))
        else:
            found[(email, phone)] = customer_match(email=email, phone=phone)
    if fresh:
        Customer.objects.bulk_create(
            [Customer(email=email, phone=phone) for email, phone in fresh], ignore_conflicts=True
        )
        created = {c.email: c for c in Customer.objects.filter(email__in=[e for e, _ in fresh])}
        found.update({(email, phone): created[email] for email, phone in fresh})
    return found


def _phone_kept(customer: Customer, phone: str) -> Customer:
    if phone and not customer.phone:
        customer.phone = phone
        customer.save(update_fields=["phone"])
    return customer

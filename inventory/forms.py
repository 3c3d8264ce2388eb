"""Forms that feed inventory services from the admin."""

from __future__ import annotations

import uuid

from django import forms

from .models import Location

OPERATIONS = [
    ("receive", "Receive units (+)"),
    ("adjust", "Adjust on hand (+/−)"),
    ("return", "Customer return, sellable (+)"),
    ("damage", "Mark damaged (+ to damaged, still on hand)"),
    ("count", "Cycle count: set on hand to"),
]


class AdjustStockForm(forms.Form):
    location = forms.ModelChoiceField(queryset=Location.objects.filter(is_active=True))
    operation = forms.ChoiceField(choices=OPERATIONS, initial="adjust")
    quantity = forms.IntegerField(
        help_text="Units to add (negative to remove); for a cycle count, the counted on-hand"
    )
    reason_note = forms.CharField(
        label="Reason",
        max_length=500,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Required: why the stock changes (shows in the ledger)",
    )
    # A fresh key per rendered form: a double-submitted form applies once.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=200)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", f"admin:{uuid.uuid4()}")

    def clean_reason_note(self) -> str:
        note = self.cleaned_data["reason_note"].strip()
        if not note:
            raise forms.ValidationError("Say why the stock changes.")
        return note

    def clean(self) -> dict:
        data = super().clean()
        op, qty = data.get("operation"), data.get("quantity")
        if qty is None or op is None:
            return data
        if op == "count" and qty < 0:
            self.add_error("quantity", "A counted quantity cannot be negative.")
        elif op in ("receive", "return", "damage") and qty <= 0:
            self.add_error("quantity", "Enter a quantity above 0 for this operation.")
        elif op == "adjust" and qty == 0:
            self.add_error("quantity", "An adjustment of 0 changes nothing.")
        return data


class BulkAdjustStockForm(AdjustStockForm):
    """The same form for an admin action over many variants (no cycle counts)."""

    operation = forms.ChoiceField(choices=[o for o in OPERATIONS if o[0] != "count"])

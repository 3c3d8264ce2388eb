"""Inbound: orders from the channels change stock (design §4).

- ``webhooks``: the signed webhook endpoint (verify, store, answer at once);
- ``events``: processing stored inbound events, retries and the sweeper;
- ``polling``: reading the channels' orders since a cursor (missed webhooks,
  platforms without webhooks);
- ``apply``: the order state machine that moves stock through the ledger;
- ``customers``: one buyer across channels;
- ``on_channel``: cancel / fulfil calls to the order's channel;
- ``admin``: orders, customers and inbound events in the admin.

Outbound (pushing prices and quantities) lives in ``channels_app.sync``.
"""

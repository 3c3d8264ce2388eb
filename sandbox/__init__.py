"""Local stand-ins for the channel APIs (dev and test tooling only).

No Django: importable without Django or its settings. The standard library,
plus graphql-core and jsonschema (dev dependencies) for the contract checks.
Production code never imports this package; ``python manage.py run_sandbox``
(in ``pimsync``) serves it, tests and bench/ start it in-process.

* ``platform.py``: :class:`~sandbox.platform.SandboxPlatform`, the interface a
  platform module implements; ``shopify.py``, ``woocommerce.py``, ``ebay.py``,
  ``amazon.py`` and ``magento.py`` implement it (``searchcriteria.py``: Magento's
  search and ``fields`` query parameters).
* ``server.py``: the HTTP server and the ``/_control/`` API (see docs/sandbox.md).
* What a platform is built from: ``http.py`` (requests, responses, routes, wire
  formats), ``store.py`` (catalog and orders), ``ratelimit.py``, ``faults.py``,
  ``counters.py``, ``score.py`` (which orders pimsync has seen, stale overwrites),
  ``webhooks.py`` and ``clock.py`` (the time every deadline reads).
* ``contracts/``: the platforms' published definitions, trimmed to what pimsync
  uses, and the validators that refuse every request they do not allow.
"""

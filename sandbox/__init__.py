"""Local stand-ins for the channel APIs (dev and test tooling only).

Production code never imports this package. See ``core.py`` for the interface a
platform module implements and ``server.py`` for the HTTP server and control API.
"""

"""HTTP adapters: Powertools routers that parse requests, call a service, shape replies.

`functions/api/app.py` assembles them; each router module owns one area of the API.
"""

"""Locust traffic against a chaoslab cluster, through the smart client and through the gateway.

    ./chaoslab up                                    # prints the registry URL
    .venv/bin/locust -f loadtests/locustfile.py --host http://127.0.0.1:PORT \\
        --headless -u 16 -r 16 -t 60s [SmartClientUser|GatewayUser] [--kv-seed 1] \\
        [--kv-pattern own|shared|hot] [--kv-history-dir DIR] [--kv-report locust.json]

With the default pattern (``own``) every virtual user writes keys of its own and reads them
back, checking read-your-writes: anything else is a failure named "stale read", and Locust
exits 1 when any request failed. ``--kv-history-dir`` records every operation (invoke, then
ok / fail / info) for the checkers. The users and their options live in
:mod:`chaos.locust`; ``chaos.load.Load`` runs this headless from a chaos run.
"""

from chaos.locust import GatewayUser, SmartClientUser

__all__ = ["SmartClientUser", "GatewayUser"]

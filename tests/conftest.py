"""The repository's tests use chaoslab's own pytest plugin (``chaos.pytest_plugin``, loaded
through its ``pytest11`` entry point): ``--runtime``, ``--chaos-seed``, the cluster, nemesis,
load, history and checks fixtures, and the Docker leak check. Nothing private lives here."""

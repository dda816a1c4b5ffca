"""``python -m system.node --id node-1 --port 5001 --registry http://127.0.0.1:5000``"""

from system.config import parse_node_args
from system.http import serve
from system.node.app import create_app

if __name__ == "__main__":
    config = parse_node_args()
    serve(create_app(config) if config.workers == 1 else None, host=config.host,
          port=config.port, log_level=config.log_level, workers=config.workers,
          factory="system.node.app:app_from_argv", log_format=config.log_format,
          service=config.id)

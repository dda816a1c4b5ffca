"""``python -m system.registry --port 5000``"""

from system.config import parse_registry_args
from system.http import serve
from system.registry.app import create_app

if __name__ == "__main__":
    config = parse_registry_args()
    serve(create_app(config), host=config.host, port=config.port, log_level=config.log_level,
          log_format=config.log_format, service="registry")

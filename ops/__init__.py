"""The edge: the ``wippy`` command line, configuration from flags and environment, logging."""

from ._cli import build_parser as build_parser
from ._cli import main as main
from ._config import CliConfig as CliConfig
from ._config import build_config as build_config

__all__ = ["CliConfig", "build_config", "build_parser", "main"]

"""The sentry's logger, logging.getLogger("pysentry"), with `logging` imported on first use.

`logging` brings traceback, linecache, tokenize, string and textwrap along: ~6 ms of every
start-up, while a run that goes well logs nothing. `log` stands for the "pysentry" logger
and forwards every attribute to it, importing logging the first time. The command line's
choice of level and format (`configure`) is applied with logging.basicConfig at that
moment, so a message looks the same whenever it is the first one. A caller that has
imported logging itself for its own logger (platform/kvm) calls `configure_if_loaded()`
once it has, so that its messages are formatted too.
"""
import sys

LOGGER_NAME = "pysentry"

# logging.basicConfig's keyword arguments once the command line chose them; None: leave
# logging unconfigured (the sandbox used as a library).
_config: dict | None = None


def configure(**basic_config) -> None:
    """Record logging.basicConfig(**basic_config) for when logging is first used; apply it
    now if logging is loaded already."""
    global _config
    _config = basic_config
    configure_if_loaded()


def configure_if_loaded() -> None:
    if "logging" in sys.modules:
        _load()


def _load():
    import logging
    global _config
    if _config is not None:
        config, _config = _config, None
        logging.basicConfig(**config)
    return logging.getLogger(LOGGER_NAME)


class _LazyLogger:
    """Every attribute is the real logger's; the first use imports logging and caches what
    it looked up on this object, so later calls cost what a plain logger's do."""

    def __getattr__(self, name):
        value = getattr(_load(), name)
        if callable(value):
            self.__dict__[name] = value
        return value


class _LazyTraceback:
    """The `traceback` module's functions, the module imported on first use (it is needed
    only to report an internal error)."""

    def __getattr__(self, name):
        import traceback as real
        return getattr(real, name)


log = _LazyLogger()
traceback = _LazyTraceback()

"""gunicorn-c's bridge to Python's logging module.

Compiled into the executable and run as ``_gunicorn_c_logging`` by
src/python/logbridge.c for log/setup.c, in the master, at start and on HUP; workers
inherit what it set up. Its C half is the built-in module ``_gunicorn_c`` (the C writers,
shared with runtime.py).

Gunicorn keeps two loggers, ``gunicorn.error`` and ``gunicorn.access``, each with a
handler of its own for the files and syslog, and then lets a logging configuration
(logconfig_dict, --log-config-json, --log-config) reshape them. This module does the
same, except that the handlers it adds write through gunicorn-c's C writers (one
write(2) per line, the same syslog socket). Server lines reach these loggers only
when a logging configuration or a logger class is set (the Python route); otherwise
C writes them and this module only makes the loggers useful to applications that log
to ``gunicorn.error`` themselves.
"""
import atexit
import importlib
import json
import logging
import logging.config
import os
import sys

import _gunicorn_c as _c

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

# What a dictConfig is merged over (top-level keys of the user's dict replace these):
# the root logger and both gunicorn loggers print to the console, in the error log's
# line format.
CONFIG_DEFAULTS = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {
            "level": "INFO",
            "handlers": ["error_console"],
            "propagate": True,
            "qualname": "gunicorn.error",
        },
        "gunicorn.access": {
            "level": "INFO",
            "handlers": ["console"],
            "propagate": True,
            "qualname": "gunicorn.access",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stdout",
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stderr",
        },
    },
    "formatters": {
        "generic": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
            "class": "logging.Formatter",
        }
    },
}

# Names that mean "Gunicorn's own logger": gunicorn-c's C writers stand in for it.
DEFAULT_LOGGER_CLASSES = (
    "gunicorn.glogging.Logger",
    "simple",
    "egg:gunicorn#simple",
    "gunicorn.instrument.statsd.Statsd",
)


class _ErrorToC(logging.Handler):
    """gunicorn.error's own handler: the error log file and syslog, written by C."""

    def emit(self, record):
        try:
            _c.write_error(record.levelno, self.format(record))
        except Exception:
            self.handleError(record)


class _AccessToC(logging.Handler):
    """gunicorn.access's own handler: the access log file and syslog, written by C."""

    def emit(self, record):
        try:
            _c.write_access(self.format(record))
        except Exception:
            self.handleError(record)


def _own_handler(logger, handler):
    """Replaces the handler this module added to `logger` before (if any) by `handler`
    (None: none)."""
    for h in list(logger.handlers):
        if getattr(h, "_gunicorn_c", False):
            logger.removeHandler(h)
    if handler is not None:
        handler._gunicorn_c = True
        logger.addHandler(handler)


def _load_class(name):
    if ":" in name:
        module, _, attr = name.partition(":")
    else:
        module, _, attr = name.rpartition(".")
    if not module:
        raise RuntimeError("logger_class %r is not a dotted path to a class" % name)
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class LoggerConfig:
    """The ``cfg`` a logger class receives: the hooks' Config, with Gunicorn's
    computed values where Gunicorn's Config has properties (proc_name falls back to
    default_proc_name; user and group are the ids the server runs as when unset)."""

    def __init__(self, cfg):
        self.__dict__["_cfg"] = cfg

    def __getattr__(self, name):
        return getattr(self._cfg, name)

    @property
    def proc_name(self):
        return self._cfg.proc_name or self._cfg.default_proc_name

    @property
    def user(self):
        u = self._cfg.user
        return u if isinstance(u, int) and u >= 0 else os.geteuid()

    @property
    def group(self):
        g = self._cfg.group
        return g if isinstance(g, int) and g >= 0 else os.getegid()


class State:
    """What setup() decided; C keeps its bound methods as the route."""

    def __init__(self):
        self.logger = None  # the logger class's instance, or None
        self.error_log = logging.getLogger("gunicorn.error")
        self.access_log = logging.getLogger("gunicorn.access")

    def error(self, level, msg):
        if self.logger is None:
            self.error_log.log(level, msg)
            return
        name = logging.getLevelName(level).lower()
        method = getattr(self.logger, name, None) if name in LEVELS else None
        if method is not None:
            method(msg)
        else:
            self.logger.log(level, msg)

    def access(self, line):
        if self.logger is None:
            self.access_log.info(line)
        else:
            log = getattr(self.logger, "access_log", None)
            if isinstance(log, logging.Logger):
                log.info(line)

    def threshold(self):
        """The lowest level the route wants, so C formats nothing below it."""
        log = self.error_log if self.logger is None else getattr(self.logger, "error_log", None)
        if isinstance(log, logging.Logger):
            return log.getEffectiveLevel()
        return logging.DEBUG


state = State()
_route_on = False


def _flush_stdio():
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


def setup(cfg, logger_class):
    """Gunicorn's Logger.setup, over C writers; then the logger class, if any.
    Returns (state, wants_access, threshold) for the route, or None for no route."""
    global _route_on
    _flush_stdio()
    err, acc = state.error_log, state.access_log
    state.logger = None
    if logger_class and logger_class not in DEFAULT_LOGGER_CLASSES:
        # The class owns both loggers (Gunicorn's own Logger and its subclasses add
        # their handlers and apply the logging configuration themselves).
        _own_handler(err, None)
        _own_handler(acc, None)
        state.logger = _load_class(logger_class)(LoggerConfig(cfg))
        close_on_exec = getattr(state.logger, "close_on_exec", None)
        if close_on_exec is not None:
            close_on_exec()
        _route_on = True
        return (state, True, state.threshold())

    err.propagate = False
    acc.propagate = False
    err.setLevel(LEVELS.get((cfg.loglevel or "info").lower(), logging.INFO))
    acc.setLevel(logging.INFO)
    _own_handler(err, _ErrorToC())
    syslog_access = bool(cfg.syslog) and not cfg.disable_redirect_access_to_syslog
    _own_handler(acc, _AccessToC() if cfg.accesslog is not None or syslog_access else None)

    if cfg.logconfig_dict:
        config = dict(CONFIG_DEFAULTS)
        config.update(cfg.logconfig_dict)
        try:
            logging.config.dictConfig(config)
        except (AttributeError, ImportError, ValueError, TypeError) as exc:
            raise RuntimeError(str(exc))
    elif cfg.logconfig_json:
        if not os.path.exists(cfg.logconfig_json):
            raise RuntimeError("Error: log config '%s' not found" % cfg.logconfig_json)
        config = dict(CONFIG_DEFAULTS)
        try:
            with open(cfg.logconfig_json) as fh:
                config.update(json.load(fh))
            logging.config.dictConfig(config)
        except (ValueError, AttributeError, ImportError, TypeError) as exc:
            raise RuntimeError(str(exc))
    elif cfg.logconfig:
        if not os.path.exists(cfg.logconfig):
            raise RuntimeError("Error: log config '%s' not found" % cfg.logconfig)
        defaults = {k: str(v) for k, v in CONFIG_DEFAULTS.items()}
        defaults["__file__"] = cfg.logconfig
        defaults["here"] = os.path.dirname(cfg.logconfig)
        logging.config.fileConfig(cfg.logconfig, defaults=defaults,
                                  disable_existing_loggers=False)
    else:
        _route_on = False
        return None
    _route_on = True
    return (state, True, state.threshold())


def reopen():
    """USR1: the logger class's reopen_files, or every FileHandler of every logger (the
    C writers reopen their own files)."""
    _flush_stdio()
    if state.logger is not None:
        fn = getattr(state.logger, "reopen_files", None)
        if fn is not None:
            fn()
        return
    for logger in [logging.root] + list(logging.root.manager.loggerDict.values()):
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    if handler.stream:
                        handler.close()
                        handler.stream = handler._open()
                finally:
                    handler.release()


def flush_stdio():
    _flush_stdio()


@atexit.register
def _route_off():
    # Interpreter shutdown closes logging's handlers: lines after this point (a worker's
    # last ones) go back to the C writers.
    if _route_on:
        _c.route_off()

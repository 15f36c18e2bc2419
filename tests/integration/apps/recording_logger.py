"""A --logger-class for test_logging.py: records every call, one line each, in the file
named by the RECORDING_LOGGER_FILE environment variable."""
import os


class RecordingLogger:
    def __init__(self, cfg):
        self.cfg = cfg
        self._rec("init loglevel=%s errorlog=%s proc_name=%s user_is_int=%s"
                  % (cfg.loglevel, cfg.errorlog, cfg.proc_name, isinstance(cfg.user, int)))

    def _rec(self, text):
        with open(os.environ["RECORDING_LOGGER_FILE"], "a") as f:
            f.write("%d|%s\n" % (os.getpid(), text.replace("\n", "\\n")))

    def critical(self, msg, *args, **kwargs):
        self._rec("critical|" + (msg % args if args else msg))

    def error(self, msg, *args, **kwargs):
        self._rec("error|" + (msg % args if args else msg))

    def warning(self, msg, *args, **kwargs):
        self._rec("warning|" + (msg % args if args else msg))

    def info(self, msg, *args, **kwargs):
        self._rec("info|" + (msg % args if args else msg))

    def debug(self, msg, *args, **kwargs):
        self._rec("debug|" + (msg % args if args else msg))

    def exception(self, msg, *args, **kwargs):
        self._rec("exception|" + (msg % args if args else msg))

    def log(self, lvl, msg, *args, **kwargs):
        self._rec("log %s|%s" % (lvl, msg % args if args else msg))

    def access(self, resp, req, environ, request_time):
        self._rec("access|%s %s" % (environ.get("PATH_INFO"), resp.status))

    def reopen_files(self):
        self._rec("reopen_files")

    def close_on_exec(self):
        self._rec("close_on_exec")

"""One root exception type; every error tracelab raises on purpose derives from it."""


class TracelabError(Exception):
    """Root of every error tracelab raises on purpose."""


class ConfigError(TracelabError):
    """A setting, argument or path is unusable."""


class StoreError(TracelabError):
    """The SQLite database cannot be opened, created, migrated or written."""


class FlowError(TracelabError):
    """A flow definition file is invalid."""


class BrokerError(TracelabError):
    """The local Kafka broker cannot be installed, started, stopped or reached."""


class KafkaIOError(TracelabError):
    """Producing to or consuming from Kafka failed."""


class AnalysisError(TracelabError):
    """An analysis query cannot run (missing database, extension or table)."""


class InputError(TracelabError):
    """An input file or stream cannot be read to the end."""


class ReportError(TracelabError):
    """A notebook failed to execute or its report could not be exported."""


class StyleError(TracelabError):
    """A log style file is invalid: the message names the file, the style and the key."""


class UsageError(ConfigError):
    """A command-line argument is unusable (empty, NaN, negative, ...): the CLI exits 2."""

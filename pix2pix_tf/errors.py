"""Errors that the command-line tools report as one clear message instead of a traceback."""


class UserError(Exception):
    """A problem the user can fix (missing data, bad file, bad flag): the CLI prints it and exits 2."""


class ConfigError(UserError, ValueError):
    """A Config field with a value it cannot take (Config.validate): a UserError, and a ValueError for callers
    that catch those."""

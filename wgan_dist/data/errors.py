"""The error of unusable data, shared by the source modules (sources.DataError is this class)."""


class DataError(ValueError):
  """A data source that cannot be used; the message names the field, path or value."""

"""`Registry`: a config field that names a choice, and the one table from each allowed name to
the object that implements it.

A registry is both the dispatch (`registry.get(name)` -> the implementation) and the only list
of the field's allowed values (`registry.names`); config validation checks a config against it
and a bad name is refused naming the field, the value and the registry's names. One registry
per extension point, each defined beside what it implements:

  model.architecture      wgan_dist/models/architectures.py  ARCHITECTURES
  model.conditioning      wgan_dist/algorithm/conditioning.py  CONDITIONINGS
  data.source             wgan_dist/data/sources.py  SOURCES
  mixed_precision         wgan_dist/algorithm/precision.py  PRECISIONS
  distribution.all_reduce wgan_dist/dist/devices.py  ALL_REDUCES
  augment.policy          wgan_dist/algorithm/augment.py  TRANSFORMS (a comma list of names)

config/ is the lowest level of the package and imports nothing above it, yet validation must
see the registries of the levels above. The tables therefore live with their implementations
(adding an architecture or a source is one module and one entry there, never an edit here),
and this module keeps only `HOMES`: where each field's registry lives, as 'module:attribute'
strings that `lookup` imports when a config is validated (as big_vision's registry imports
its modules by name). No module of config/ imports a higher one when it is itself imported,
so the import graph stays pointing down; the lookup is the one place the low level reaches up,
and only by name. tests/test_registries.py checks that every home exists and names the
registry of its own field.
"""

import importlib
from typing import Generic, Iterator, Mapping, TypeVar

T = TypeVar('T')

# config field -> 'module:attribute' of its registry (module docstring).
HOMES = {
    'model.architecture': 'wgan_dist.models.architectures:ARCHITECTURES',
    'model.conditioning': 'wgan_dist.algorithm.conditioning:CONDITIONINGS',
    'data.source': 'wgan_dist.data.sources:SOURCES',
    'mixed_precision': 'wgan_dist.algorithm.precision:PRECISIONS',
    'distribution.all_reduce': 'wgan_dist.dist.devices:ALL_REDUCES',
    # A comma list of its names ('' = none): config/validation.py checks each.
    'augment.policy': 'wgan_dist.algorithm.augment:TRANSFORMS',
}


class UnknownName(ValueError):
  """A name that is not in a registry (validation turns it into a ConfigError first)."""


class Registry(Mapping[str, T], Generic[T]):
  """The implementations a config field may name, in the order the docs list them.

  Read-only once made: the table given here is the whole list of allowed names.
  """

  def __init__(self, field: str, entries: Mapping[str, T]):
    self.field = field
    self._entries = dict(entries)

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(self._entries)

  def get(self, name: str) -> T:  # pylint: disable=arguments-differ
    """The implementation of `name`; UnknownName naming the field and the allowed names."""
    try:
      return self._entries[name]
    except (KeyError, TypeError):
      raise UnknownName(f'{self.field}={name!r} is not allowed; allowed: one of '
                        f'{self.names}') from None

  def __getitem__(self, name: str) -> T:
    return self._entries[name]

  def __contains__(self, name) -> bool:
    return isinstance(name, str) and name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self._entries)

  def __len__(self) -> int:
    return len(self._entries)

  def __repr__(self) -> str:
    return f'Registry({self.field!r}, {self.names})'


def lookup(field: str) -> Registry:
  """The registry of a config `field` (one of HOMES), imported from its home on first use."""
  module, attribute = HOMES[field].split(':')
  registry = getattr(importlib.import_module(module), attribute)
  if registry.field != field:  # A home pointing at another field's table.
    raise RuntimeError(f'{HOMES[field]} is the registry of {registry.field!r}, not {field!r}')
  return registry

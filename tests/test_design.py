"""docs/design.md's package map lists exactly the package's modules, subpackage by subpackage,
so the map cannot go stale when a module is added, moved or removed."""

import os
import re

from tests import helpers

PACKAGE = os.path.join(helpers.REPO_ROOT, 'wgan_dist')
DESIGN = os.path.join(helpers.REPO_ROOT, 'docs', 'design.md')


def _tree() -> dict[str, set[str]]:
  """'sub/' (or 'wgan_dist/') -> the names of its modules."""
  found = {}
  for dirpath, _, filenames in os.walk(PACKAGE):
    sub = os.path.relpath(dirpath, PACKAGE)
    if '__pycache__' in sub:
      continue
    names = {name[:-3] for name in filenames if name.endswith('.py') and name != '__init__.py'}
    if names:
      found['wgan_dist/' if sub == '.' else f'{sub}/'] = names
  return found


def _map() -> dict[str, set[str]]:
  """The table of 'The package': subpackage -> the module names in its row (what is in
  parentheses describes a module and is left out)."""
  with open(DESIGN, encoding='utf-8') as f:
    text = f.read()
  section = text[text.index('## The package'):]
  rows = {}
  for subpackage, modules in re.findall(r'^\| `([\w/]+)` \| (.*) \|$', section, re.M):
    described = re.sub(r'\([^)]*\)', '', modules)
    rows[subpackage] = set(re.findall(r'`(\w+)`', described))
  return rows


def test_the_package_map_lists_every_module_and_no_other():
  tree, table = _tree(), _map()
  assert set(table) == set(tree)
  for subpackage, modules in tree.items():
    assert table[subpackage] == modules, (subpackage, sorted(modules - table[subpackage]),
                                          sorted(table[subpackage] - modules))

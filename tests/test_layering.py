"""The package's import graph points down: command lines -> tools -> training -> models ->
eval, dist -> data, algorithm -> config. No module imports a level above its own, and no two
modules import each other (directly or through others)."""

import ast
import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO_ROOT, 'wgan_dist')

# Higher numbers sit higher; a module may import its own level or lower ones. `eval` and `dist`
# share a level but do not import each other (checked below), nor do `data` and `algorithm`.
LEVELS = {'config': 0, 'data': 1, 'algorithm': 1, 'eval': 2, 'dist': 2, 'models': 3,
          'training': 4, 'tools': 5, '': 6}
SIBLINGS_APART = [('eval', 'dist'), ('data', 'algorithm')]


def _modules() -> dict[str, str]:
  """'sub.module' (or 'module' at the top) -> path, for every module of the package."""
  found = {}
  for dirpath, _, filenames in os.walk(PACKAGE):
    sub = os.path.relpath(dirpath, PACKAGE)
    for name in filenames:
      if name.endswith('.py') and name != '__init__.py':
        key = name[:-3] if sub == '.' else f'{sub}.{name[:-3]}'
        found[key] = os.path.join(dirpath, name)
  return found


def _imports(path: str) -> set[str]:
  """The wgan_dist modules a file imports ('sub.module' or 'module')."""
  with open(path, encoding='utf-8') as f:
    tree = ast.parse(f.read())
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('wgan_dist'):
      rest = node.module[len('wgan_dist'):].lstrip('.')
      for alias in node.names:
        out.add(f'{rest}.{alias.name}' if rest else alias.name)
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.startswith('wgan_dist.'):
          out.add(alias.name[len('wgan_dist.'):])
  return out


def _subpackage(module: str) -> str:
  return module.split('.')[0] if '.' in module else ''


MODULES = _modules()
GRAPH = {m: {i for i in _imports(p) if i in MODULES} for m, p in MODULES.items()}


def test_every_subpackage_has_a_level():
  assert {_subpackage(m) for m in MODULES} <= set(LEVELS)


@pytest.mark.parametrize('module', sorted(MODULES))
def test_no_upward_import(module):
  level = LEVELS[_subpackage(module)]
  upward = sorted(i for i in GRAPH[module] if LEVELS[_subpackage(i)] > level)
  assert not upward, f'{module} imports {upward} from a higher level'
  for a, b in SIBLINGS_APART:
    if _subpackage(module) in (a, b):
      other = b if _subpackage(module) == a else a
      across = sorted(i for i in GRAPH[module] if _subpackage(i) == other)
      assert not across, f'{module} imports {across} across from {other}/'


def test_no_import_cycle():
  state = {}

  def visit(module, path):
    state[module] = 'open'
    for nxt in GRAPH[module]:
      if state.get(nxt) == 'open':
        raise AssertionError('import cycle: ' + ' -> '.join(path + [module, nxt]))
      if nxt not in state:
        visit(nxt, path + [module])
    state[module] = 'done'

  for module in sorted(GRAPH):
    if module not in state:
      visit(module, [])


def test_the_checker_sees_imports():
  # Guards the checks above against passing on an empty graph.
  assert 'algorithm.losses' in GRAPH['algorithm.steps']
  assert 'training.trainer' in GRAPH['train']

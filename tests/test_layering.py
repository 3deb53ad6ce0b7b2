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


def _modules(package: str = PACKAGE) -> dict[str, str]:
  """'sub.module' (or 'module' at the top) -> path, for every module of the package."""
  found = {}
  for dirpath, _, filenames in os.walk(package):
    sub = os.path.relpath(dirpath, package)
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


def import_graph(package: str = PACKAGE) -> dict[str, set[str]]:
  """module -> the package's modules it imports, for the package at `package` (a copy with
  docs/extending.md's recipes applied, in tests/test_extending.py)."""
  modules = _modules(package)
  return {m: {i for i in _imports(p) if i in modules} for m, p in modules.items()}


MODULES = _modules()
GRAPH = import_graph()


def upward_imports(graph: dict[str, set[str]], module: str) -> list[str]:
  """What `module` imports from a higher level or across SIBLINGS_APART (empty: none)."""
  level = LEVELS[_subpackage(module)]
  wrong = sorted(i for i in graph[module] if LEVELS[_subpackage(i)] > level)
  for a, b in SIBLINGS_APART:
    if _subpackage(module) in (a, b):
      other = b if _subpackage(module) == a else a
      wrong += sorted(i for i in graph[module] if _subpackage(i) == other)
  return wrong


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
  """One import cycle of `graph` as a path of modules, or [] when there is none."""
  state = {}

  def visit(module, path):
    state[module] = 'open'
    for nxt in sorted(graph[module]):
      if state.get(nxt) == 'open':
        return path + [module, nxt]
      if nxt not in state:
        found = visit(nxt, path + [module])
        if found:
          return found
    state[module] = 'done'
    return []

  for module in sorted(graph):
    if module not in state:
      found = visit(module, [])
      if found:
        return found
  return []


def test_every_subpackage_has_a_level():
  assert {_subpackage(m) for m in MODULES} <= set(LEVELS)


@pytest.mark.parametrize('module', sorted(MODULES))
def test_no_upward_import(module):
  wrong = upward_imports(GRAPH, module)
  assert not wrong, f'{module} imports {wrong} from a higher level or across from a sibling'


def test_no_import_cycle():
  cycle = import_cycle(GRAPH)
  assert not cycle, 'import cycle: ' + ' -> '.join(cycle)


def test_the_checker_sees_imports():
  # Guards the checks above against passing on an empty graph, and sees a cycle.
  assert 'algorithm.losses' in GRAPH['algorithm.steps']
  assert 'training.trainer' in GRAPH['train']
  assert import_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
  assert upward_imports({'data.x': {'models.y'}, 'models.y': set()}, 'data.x') == ['models.y']

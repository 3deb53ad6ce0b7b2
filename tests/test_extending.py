"""docs/extending.md's recipes applied as written: every code block of the doc, placed where its
`recipe-test` comment says, into a copy of the package; the copy then trains the tiny config
with every new entry at once and passes the registry-walking and layering tests for them
(tests/recipes_applied.py holds what is run there). So the doc cannot drift from the code.

The comment before each ```python block of the doc says what the block is:
  <!-- recipe-test: new PATH -->            the whole of a new file;
  <!-- recipe-test: add PATH in "TABLE" -->  lines for an existing file: import lines go after
      its last top-level import, the others at the end of the table assigned on the first line
      holding TABLE (before its closing '})'); '...' lines are the doc's ellipsis;
  <!-- recipe-test: add PATH before "TEXT" --> / after "TEXT": the same, the other lines before
      the first line holding TEXT (and the comment lines just above it) or after it.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests import helpers
from tests import test_layering

DOC = os.path.join(helpers.REPO_ROOT, 'docs', 'extending.md')
_MARKER = re.compile(r'<!-- recipe-test: (new|add) (\S+)(?: (in|before|after) "([^\n]*)")? -->\n'
                     r'```python\n(.*?)```', re.S)
# The names the recipes add (the registry-walking tests' ids hold them).
NEW_NAMES = ('mlp', 'tfrecord', 'projection_acgan', 'histograms')


def recipes() -> list[tuple[str, str, str, str, str]]:
  """(kind, path, where, anchor, code) of every marked block, in the doc's order."""
  with open(DOC, encoding='utf-8') as f:
    return [match.groups('') for match in _MARKER.finditer(f.read())]


def _is_import(line: str) -> bool:
  return line.startswith(('import ', 'from '))


def _insert(text: str, code: str, where: str, anchor: str, path: str) -> str:
  """`text` (a file) with the doc's lines `code` placed as the module docstring says."""
  lines = text.split('\n')
  block = [line for line in code.rstrip('\n').split('\n') if line.strip() != '...']
  imports = [line for line in block if _is_import(line)]
  rest = [line for line in block if not _is_import(line)]
  found = [i for i, line in enumerate(lines) if anchor in line]
  assert found, f'docs/extending.md: {anchor!r} is not in {path}'
  at = found[0]
  if where == 'in':  # The end of the table: its first closing line after the anchor.
    at = next(i for i in range(at, len(lines)) if lines[i].strip().startswith('})'))
  elif where == 'before':  # Above the comment lines that belong to the anchor's line.
    while at > 0 and lines[at - 1].strip().startswith('#'):
      at -= 1
  else:
    at += 1
  lines[at:at] = rest
  if imports:
    last = max(i for i, line in enumerate(lines) if _is_import(line))
    lines[last + 1:last + 1] = imports
  return '\n'.join(lines)


def apply(root: str) -> list[str]:
  """Applies every recipe block to the checkout copy at `root`; the paths it touched."""
  touched = []
  for kind, path, where, anchor, code in recipes():
    target = os.path.join(root, path)
    if kind == 'new':
      assert not os.path.exists(target), f'docs/extending.md: {path} exists already'
      text = code
    else:
      with open(target, encoding='utf-8') as f:
        text = _insert(f.read(), code, where, anchor, path)
    with open(target, 'w', encoding='utf-8') as f:
      f.write(text)
    touched.append(path)
  return touched


def _copy_checkout(root: str) -> None:
  for name in ('wgan_dist', 'configs', 'tests'):
    shutil.copytree(os.path.join(helpers.REPO_ROOT, name), os.path.join(root, name),
                    ignore=shutil.ignore_patterns('__pycache__', '*.h5.tmp'))
  shutil.copy(os.path.join(helpers.REPO_ROOT, 'pyproject.toml'), root)


def test_every_code_block_of_the_doc_is_marked_for_the_test():
  with open(DOC, encoding='utf-8') as f:
    text = f.read()
  assert text.count('```python') == len(recipes()) > 0
  kinds = {(kind, path) for kind, path, *_ in recipes()}
  for module in ('wgan_dist/models/mlp.py', 'wgan_dist/data/tfrecords.py',
                 'wgan_dist/training/histograms_action.py'):
    assert ('new', module) in kinds


def test_the_recipes_apply_to_a_copy_and_import_without_a_cycle(tmp_path):
  _copy_checkout(str(tmp_path))
  touched = apply(str(tmp_path))
  assert len(touched) == len(recipes())
  # The layering rules hold in the copy (no upward import, no cycle: the data-source and
  # conditioning layouts the doc shows), and the new modules are in its import graph.
  graph = test_layering.import_graph(str(tmp_path / 'wgan_dist'))
  assert {'models.mlp', 'data.tfrecords', 'training.histograms_action'} <= set(graph)
  assert 'data.tfrecords' in graph['data.sources']
  assert 'training.histograms_action' in graph['training.actions']
  assert not test_layering.import_cycle(graph), test_layering.import_cycle(graph)
  assert not {module: test_layering.upward_imports(graph, module) for module in graph
              if test_layering.upward_imports(graph, module)}
  # The layout the doc warns against: the loader importing sources is a cycle.
  graph['data.tfrecords'].add('data.sources')
  assert test_layering.import_cycle(graph)


@pytest.mark.slow
def test_the_recipes_as_written_train_and_pass_the_registry_walks(tmp_path):
  _copy_checkout(str(tmp_path))
  apply(str(tmp_path))
  shutil.copy(os.path.join(helpers.REPO_ROOT, 'tests', 'recipes_applied.py'),
              tmp_path / 'tests' / 'test_recipes_applied.py')
  # The new entries' cases of the tests that walk the registries, and the copy's own checks.
  selected = ' or '.join(NEW_NAMES + ('recipes_applied',))
  result = subprocess.run(
      [sys.executable, '-m', 'pytest', '-v', '-p', 'no:cacheprovider', '-m', '',
       'tests/test_recipes_applied.py', 'tests/test_registries.py',
       'tests/test_conditional_models.py', '-k', selected],
      cwd=tmp_path, capture_output=True, text=True, timeout=1200, check=False,
      env=dict(os.environ, PYTHONPATH=str(tmp_path)))
  assert result.returncode == 0, result.stdout[-5000:]
  summary = result.stdout.strip().splitlines()[-1]
  assert 'passed' in summary and 'skipped' not in summary and 'deselected' in summary, summary
  for name in NEW_NAMES:  # Each new name reached the walking tests.
    assert re.search(rf'(test_registries|test_conditional_models)\.py::\w+\[[^\]]*{name}',
                     result.stdout), name

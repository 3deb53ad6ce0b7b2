"""One home for allowed values: validation reads them from schema.py alone, and every allowed
value is implemented where it acts."""

import ast
import os

from tests.conftest import REPO_ROOT
from wgan_dist.models import architectures as models
from wgan_dist.algorithm import precision
from wgan_dist.config import schema


def _wgan_dist_imports(module: str) -> set[str]:
  with open(os.path.join(REPO_ROOT, 'wgan_dist', f'{module}.py'), encoding='utf-8') as f:
    tree = ast.parse(f.read())
  return {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
          and node.module == 'wgan_dist' for alias in node.names}


def test_validation_takes_allowed_values_from_the_schema_only():
  assert _wgan_dist_imports('config_validation') == {'schema'}


def test_every_allowed_architecture_and_precision_is_implemented():
  assert set(models.BUILDERS) == set(schema.ARCHITECTURES) == set(schema.SUPPORTED_IMAGE_SHAPES)
  assert set(precision._INNER_GRADIENT_SCALE) == set(schema.PRECISIONS)  # pylint: disable=protected-access

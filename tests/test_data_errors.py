"""Bad data fails in load_source, before training, with a message naming the field, the path or
file, and what is allowed: missing and empty folders, files that do not decode (per
data.on_bad_image), channel counts that differ from data.channels, arrays of the wrong dtype or
range."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import REPO_ROOT
from wgan_dist.config import validation as config_validation
from wgan_dist.data import input_pipeline
from wgan_dist.config import schema
from wgan_dist.data import sources

_RNG = np.random.default_rng(0)


def _write_image(path, height=30, width=26, mode='L', **save_args) -> None:
  channels = {'L': 1, 'LA': 2, 'RGB': 3, 'RGBA': 4}[mode]
  pixels = _RNG.integers(0, 256, (height, width, channels), dtype=np.uint8)
  Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(path, **save_args)


def _truncate(path, fraction: float) -> None:
  contents = open(path, 'rb').read()
  with open(path, 'wb') as f:
    f.write(contents[:int(len(contents) * fraction)])


def _folder_config(config, folder, **data_fields):
  config.data.source = 'folder'
  config.data.path = str(folder)
  for name, value in data_fields.items():
    config.data[name] = value
  return config


def _good_and_bad_folder(folder, num_good=6) -> list[str]:
  """num_good decodable PNG/JPEG files and three bad ones; returns the bad files' paths."""
  folder.mkdir(exist_ok=True)
  for index in range(num_good):
    _write_image(folder / f'good{index}.{"png" if index % 2 else "jpg"}')
  bad = [folder / 'bad_text.png', folder / 'bad_empty.jpg', folder / 'sub' / 'bad_trunc.jpg']
  bad[0].write_text('not an image')
  bad[1].write_bytes(b'')
  bad[2].parent.mkdir()
  _write_image(bad[2], 200, 200)
  _truncate(bad[2], 0.9)
  return sorted(str(path) for path in bad)


# Missing and empty paths.

@pytest.mark.parametrize('source, path, message', [
    ('folder', '', "data.source='folder' needs data.path: a directory of image files"),
    ('folder', '/nonexistent/images',
     "data.path='/nonexistent/images' (data.source='folder') is not an existing directory"),
    ('npz', '/nonexistent/x.npz',
     "data.path='/nonexistent/x.npz' (data.source='npz') is not an existing .npz file"),
])
def test_missing_path_names_the_field_and_the_path(tiny_config, source, path, message):
  tiny_config.data.source, tiny_config.data.path = source, path
  with pytest.raises(sources.DataError) as error:
    sources.load_source(tiny_config)
  assert str(error.value) == message


def test_folder_without_image_files_names_the_allowed_extensions(tiny_config, tmp_path):
  (tmp_path / 'notes.txt').write_text('no images here')
  (tmp_path / 'data.tiff').write_bytes(b'II*\0')
  with pytest.raises(sources.DataError) as error:
    sources.load_source(_folder_config(tiny_config, tmp_path))
  assert str(error.value) == (
      f"data.path={str(tmp_path)!r} (data.source='folder') holds no image files; allowed "
      f"extensions: ('.png', '.jpg', '.jpeg', '.bmp', '.gif')")


# Files that do not read or decode.

def test_bad_files_fail_by_default_naming_each_with_the_reason(tiny_config, tmp_path):
  bad = _good_and_bad_folder(tmp_path)
  assert tiny_config.data.on_bad_image == 'fail'
  with pytest.raises(sources.DataError) as error:
    sources.load_source(_folder_config(tiny_config, tmp_path))
  message = str(error.value)
  assert message.startswith(f'3 of the 9 image files under data.path={str(tmp_path)!r} do not '
                            'read or decode: ')
  for path in bad:
    assert path in message
  assert 'bad_text.png (Unknown image file format' in message
  assert 'bad_empty.jpg (Input is empty' in message
  assert 'bad_trunc.jpg (jpeg::Uncompress failed' in message
  assert "set data.on_bad_image='skip'" in message
  assert '\n' not in message


def test_skip_leaves_bad_files_out_and_warns_with_count_and_names(tiny_config, tmp_path, caplog):
  bad = _good_and_bad_folder(tmp_path)
  with caplog.at_level(logging.INFO):
    source = sources.load_source(_folder_config(tiny_config, tmp_path, on_bad_image='skip'))
  assert source.size == 6 and not set(bad) & set(source.files)
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1, warnings
  assert warnings[0].startswith('Skipping 3 of the 9 image files under')
  assert all(path in warnings[0] for path in bad)
  # What is left trains: every batch decodes.
  batches = input_pipeline.make_dataset(source, tiny_config, batch_size=6).take(3)
  assert all(batch.shape == (6, 28, 28, 1) for batch in batches)


def test_only_the_first_bad_files_are_named(tiny_config, tmp_path, caplog):
  _write_image(tmp_path / 'good.png')
  for index in range(sources.NAMED_BAD_FILES + 4):
    (tmp_path / f'bad{index:02d}.png').write_text('x')
  sources.load_source(_folder_config(tiny_config, tmp_path, on_bad_image='skip'))
  warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
  assert warning.count('bad0') == sources.NAMED_BAD_FILES and warning.endswith('; and 4 more')


@pytest.mark.parametrize('policy', schema.BAD_IMAGE_POLICIES)
def test_no_decodable_file_is_an_error_under_either_policy(tiny_config, tmp_path, policy):
  for index in range(3):
    (tmp_path / f'img{index}.jpg').write_bytes(b'\xff\xd8\xff garbage')
  with pytest.raises(sources.DataError, match=r'^none of the 3 image files under data\.path='):
    sources.load_source(_folder_config(tiny_config, tmp_path, on_bad_image=policy))


def test_unknown_policy_is_refused_before_loading(tiny_config, tmp_path):
  # One check, before any work (schema.BAD_IMAGE_POLICIES); load_source trusts a validated config.
  _write_image(tmp_path / 'a.png')
  with pytest.raises(config_validation.ConfigError, match=r"^data.on_bad_image='ignore' is not "
                     r"allowed; allowed: one of \('fail', 'skip'\)"):
    config_validation.validate(_folder_config(tiny_config, tmp_path, on_bad_image='ignore'))


def _zoo(folder) -> dict[str, bool]:
  """Files that TensorFlow does or does not decode: {name: decodes}."""
  folder.mkdir()
  _write_image(folder / 'gray.png')
  _write_image(folder / 'la.png', mode='LA')
  _write_image(folder / 'rgba.png', mode='RGBA')
  _write_image(folder / 'rgb.bmp', mode='RGB')
  _write_image(folder / 'gray.bmp')
  _write_image(folder / 'gray.gif')
  _write_image(folder / 'gray.jpg')
  for name, progressive in (('base', False), ('prog', True)):
    _write_image(folder / f'{name}.jpg', 218, 178, 'RGB', quality=90, progressive=progressive)
    contents = (folder / f'{name}.jpg').read_bytes()
    for fraction in (0.3, 0.9, 0.995):  # Truncated early, late, and just before the end.
      (folder / f'{name}_cut{fraction}.jpg').write_bytes(contents[:int(len(contents) * fraction)])
    (folder / f'{name}_trailing.jpg').write_bytes(contents + b'junk' * 10)  # Decodes.
  png = (folder / 'gray.png').read_bytes()
  (folder / 'gray_cut.png').write_bytes(png[:len(png) // 2])
  flipped = bytearray(png)
  flipped[len(png) // 2] ^= 0xFF  # Fails the IDAT checksum.
  (folder / 'gray_flip.png').write_bytes(bytes(flipped))
  Image.fromarray(np.zeros((8, 8), np.uint8)).convert('1').save(folder / 'onebit.bmp')
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / 'tiff_named.png', format='TIFF')
  bad = {'base_cut0.3.jpg', 'base_cut0.9.jpg', 'base_cut0.995.jpg', 'prog_cut0.3.jpg',
         'prog_cut0.9.jpg', 'prog_cut0.995.jpg', 'gray_cut.png', 'gray_flip.png', 'onebit.bmp',
         'tiff_named.png'}
  return {name: name not in bad for name in sorted(os.listdir(folder))}


def test_scan_agrees_with_a_full_decode(tmp_path):
  """The scan decodes JPEGs at 1/8 scale; it must accept exactly what a full decode accepts."""
  expected = _zoo(tmp_path / 'zoo')
  files = [str(tmp_path / 'zoo' / name) for name in expected]
  decoded = sources.scan_image_files(files)
  for index, path in enumerate(files):
    assert (index in decoded) == (sources.decode_error(path) == '') == expected[
        os.path.basename(path)], path


@pytest.mark.parametrize('channels', [1, 3])
def test_every_file_the_scan_accepts_trains(tiny_config, tmp_path, channels):
  _zoo(tmp_path / 'zoo')
  _folder_config(tiny_config, tmp_path / 'zoo', on_bad_image='skip', channels=channels)
  source = sources.load_source(tiny_config)
  assert source.size == 11
  # One pass over every file at batch 1 (an epoch is a permutation), through the training
  # decoder, raises nothing.
  batches = list(input_pipeline.make_dataset(source, tiny_config, batch_size=1).take(source.size))
  assert all(batch.shape == (1, 28, 28, channels) for batch in batches)


# Channel counts that differ from data.channels.

def _conversion_records(caplog):
  return [r for r in caplog.records if 'converted to data.channels' in r.getMessage()]


def test_gray_to_rgb_converts_with_one_info_line(tiny_config, tmp_path, caplog):
  for index in range(3):
    _write_image(tmp_path / f'gray{index}.png')
  _write_image(tmp_path / 'rgb.png', mode='RGB')
  _folder_config(tiny_config, tmp_path, channels=3, image_size=16)
  with caplog.at_level(logging.INFO):
    source = sources.load_source(tiny_config)
  records = _conversion_records(caplog)
  assert len(records) == 1 and records[0].levelno == logging.INFO
  assert records[0].getMessage() == (
      f'data.path={str(tmp_path)!r}: 3 grayscale of 4 images converted to data.channels=3 when '
      'decoded (grayscale replicated to RGB)')
  gray = input_pipeline.make_dataset(sources.Source('folder', files=[source.files[0]]),
                                     tiny_config, 1)
  pixels = next(iter(gray)).numpy()
  assert pixels.shape == (1, 16, 16, 3)
  np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])


def test_dropping_alpha_warns(tiny_config, tmp_path, caplog):
  _write_image(tmp_path / 'rgba.png', mode='RGBA')
  _write_image(tmp_path / 'la.png', mode='LA')
  _write_image(tmp_path / 'rgb.png', mode='RGB')
  _folder_config(tiny_config, tmp_path, channels=3)
  sources.load_source(tiny_config)
  (record,) = _conversion_records(caplog)
  assert record.levelno == logging.WARNING
  assert '1 grayscale+alpha, 1 RGBA of 3 images' in record.getMessage()
  assert 'grayscale replicated to RGB; alpha dropped' in record.getMessage()


def test_colour_to_gray_warns(tiny_config, tmp_path, caplog):
  _write_image(tmp_path / 'rgb.jpg', mode='RGB')
  _write_image(tmp_path / 'gray.jpg')
  sources.load_source(_folder_config(tiny_config, tmp_path))
  (record,) = _conversion_records(caplog)
  assert record.levelno == logging.WARNING
  assert '1 RGB of 2 images converted to data.channels=1' in record.getMessage()
  assert 'colour reduced to luminance' in record.getMessage()


def test_matching_channels_log_nothing(tiny_config, tmp_path, caplog):
  _write_image(tmp_path / 'a.png')
  sources.load_source(_folder_config(tiny_config, tmp_path))
  assert not _conversion_records(caplog)


# Arrays ('npz').

def _npz_config(config, path, array):
  np.savez(path, x=array)
  config.data.source, config.data.path = 'npz', str(path)
  return config


@pytest.mark.parametrize('array, found', [
    (np.linspace(0, 255, 4 * 784).reshape(4, 28, 28), 'float64 pixel values span [0, 255]'),
    (np.linspace(-1, 1, 4 * 784, dtype=np.float32).reshape(4, 28, 28),
     'float32 pixel values span [-1, 1]'),
    (np.array([np.nan, 0.5] * 1568, np.float32).reshape(4, 28, 28),
     'float32 pixels include NaN or infinite values'),
    (np.full((4, 28, 28), 300, np.int64), 'int64 pixel values span [300, 300]'),
    (np.full((4, 28, 28), -1, np.int16), 'int16 pixel values span [-1, -1]'),
    (np.zeros((4, 28, 28), bool), 'pixels of dtype bool'),
])
def test_npz_of_wrong_dtype_or_range_names_the_file_and_the_range(tiny_config, tmp_path, array,
                                                                   found):
  path = tmp_path / 'images.npz'
  with pytest.raises(sources.DataError) as error:
    sources.load_source(_npz_config(tiny_config, path, array))
  message = str(error.value)
  assert message.startswith(f"data.path={str(path)!r} (data.source='npz'): {found}; "), message
  assert 'allowed: uint8 (or any integer type) in [0, 255], or float in [0, 1]' in message


@pytest.mark.parametrize('array, hint', [
    (np.full((4, 28, 28), 255.0), 'store images.astype(np.uint8)'),
    (np.full((4, 28, 28), -0.5), 'store (images + 1) / 2'),
])
def test_npz_range_errors_say_how_to_fix_it(tiny_config, tmp_path, array, hint):
  with pytest.raises(sources.DataError) as error:
    sources.load_source(_npz_config(tiny_config, tmp_path / 'images.npz', array))
  assert str(error.value).endswith(f'{hint})')


def test_npz_integers_in_byte_range_are_read_as_uint8(tiny_config, tmp_path):
  pixels = _RNG.integers(0, 256, (4, 28, 28), dtype=np.int64)
  source = sources.load_source(_npz_config(tiny_config, tmp_path / 'images.npz', pixels))
  assert source.images.dtype == np.uint8
  np.testing.assert_array_equal(source.images[..., 0], pixels)


def test_npz_floats_in_unit_range_reach_minus_one_one(tiny_config, tmp_path):
  pixels = np.tile(np.linspace(0, 1, 28, dtype=np.float32), (8, 28, 1))
  source = sources.load_source(_npz_config(tiny_config, tmp_path / 'images.npz', pixels))
  batch = next(iter(input_pipeline.make_dataset(source, tiny_config, 8))).numpy()
  assert batch.min() == -1.0 and batch.max() == 1.0


def test_npz_that_is_not_an_archive_is_named(tiny_config, tmp_path):
  path = tmp_path / 'images.npz'
  path.write_bytes(b'PK\x03\x04 broken zip')
  tiny_config.data.source, tiny_config.data.path = 'npz', str(path)
  with pytest.raises(sources.DataError, match=rf"^data.path={str(path)!r} \(data.source='npz'\) "
                     'does not read as .npz or .npy: '):
    sources.load_source(tiny_config)


def test_plain_npy_file_is_accepted(tiny_config, tmp_path):
  path = tmp_path / 'images.npy'
  np.save(path, np.zeros((5, 28, 28, 1), np.uint8))
  tiny_config.data.source, tiny_config.data.path = 'npz', str(path)
  assert sources.load_source(tiny_config).size == 5


def test_npz_channel_mismatch_says_arrays_are_not_converted(tiny_config, tmp_path):
  path = tmp_path / 'images.npz'
  with pytest.raises(sources.DataError) as error:
    sources.load_source(_npz_config(tiny_config, path, np.zeros((4, 28, 28, 3), np.uint8)))
  assert str(error.value) == (
      f"data.path={str(path)!r} (data.source='npz') has 3 channel(s) but data.channels=1; "
      'allowed: arrays with data.channels channels (arrays are not converted)')


# Through the command line: one line, before any work.

def test_command_line_names_the_bad_file_before_any_work(tmp_path):
  folder = tmp_path / 'images'
  bad = _good_and_bad_folder(folder)
  workdir = tmp_path / 'run'
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', 'CUDA_VISIBLE_DEVICES': ''}
  result = subprocess.run(
      [sys.executable, '-m', 'wgan_dist.main', '--config=configs/mnist.py:tiny',
       f'--workdir={workdir}', '--config.data.source=folder', f'--config.data.path={folder}'],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1, result.stderr[-2000:]
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith('error: 3 of the 9 image files under data.path=')
  assert all(path in last_line for path in bad)
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()


def test_decode_error_is_empty_for_a_good_file(tmp_path):
  _write_image(tmp_path / 'a.png')
  assert sources.decode_error(str(tmp_path / 'a.png')) == ''
  assert tf.io.decode_png(tf.io.read_file(str(tmp_path / 'a.png'))).shape == (30, 26, 1)

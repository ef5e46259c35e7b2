"""Loading mirror.yaml and the whitelist: paths, and errors that name file, line, key and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror.config import load_config, load_whitelist
from mirror.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]

MIRROR_YAML = """\
data_dir: data
database: sqlite:///data/catalog.db
whitelist: whitelist.yaml
upstreams:
  conda-forge:
    url: https://conda.anaconda.org/conda-forge
    subdirs: [linux-64, noarch]
channels:
  main: {approval: auto}
server: {host: 127.0.0.1, port: 8080}
"""


def write(folder: Path, mirror: str = MIRROR_YAML, whitelist: str = "") -> Path:
    (folder / "whitelist.yaml").write_text(whitelist)
    path = folder / "mirror.yaml"
    path.write_text(mirror)
    return path


def test_shipped_example_loads():
    config = load_config(REPO / "config" / "mirror.yaml")
    entries = load_whitelist(config)
    assert entries[0].packages == ["numpy >=1.26,<2", "python 3.11.*", "tzdata"]
    assert entries[0].exclude == ["openssl <3"]


def test_relative_paths_from_config_folder(tmp_path):
    config = load_config(write(tmp_path))
    assert config.data_dir == tmp_path / "data"
    assert config.whitelist == tmp_path / "whitelist.yaml"
    assert config.database == f"sqlite:///{tmp_path}/data/catalog.db"


def test_unknown_key_names_line(tmp_path):
    text = MIRROR_YAML.replace("    subdirs:", "    subdirz:")
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    message = str(error.value)
    assert f"{tmp_path / 'mirror.yaml'}:7:" in message
    assert "unknown key 'subdirz'" in message


def test_bad_url_value_shown(tmp_path):
    text = MIRROR_YAML.replace("https://conda.anaconda.org/conda-forge", "ftp://example/x")
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    assert "ftp://example/x" in str(error.value)
    assert ":6:" in str(error.value)


def test_invalid_yaml_reports_line(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, "upstreams: [\n  bad"))
    assert "invalid YAML" in str(error.value)


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "absent.yaml")
    assert "file not found" in str(error.value)


WHITELIST_ERRORS = [
    ("unknown upstream", "- upstream: pypi\n  channel: main\n  packages: [numpy]\n", ":1:", "unknown upstream 'pypi'"),
    ("unknown channel", "- upstream: conda-forge\n  channel: prod\n  packages: [numpy]\n", ":2:", "unknown channel 'prod'"),
    ("bad spec", "- upstream: conda-forge\n  channel: main\n  packages:\n    - numpy\n    - 'python =>3.8'\n", ":5:", "invalid match spec 'python =>3.8'"),
    ("bad exclude", "- upstream: conda-forge\n  channel: main\n  packages: [numpy]\n  exclude: ['bad spec ((']\n", ":4:", "invalid match spec 'bad spec (('"),
    ("unknown key", "- upstream: conda-forge\n  channel: main\n  packages: [numpy]\n  include_depends: true\n", ":4:", "unknown key 'include_depends'"),
    ("missing packages", "- upstream: conda-forge\n  channel: main\n", ":1:", "'packages' is missing"),
    ("subdir not synced", "- upstream: conda-forge\n  channel: main\n  packages: [numpy]\n  subdirs: [osx-arm64]\n", ":4:", "not synced from upstream"),
    ("not a list", "upstream: conda-forge\n", "", "must be a list of entries"),
]


@pytest.mark.parametrize("text, line, fragment", [row[1:] for row in WHITELIST_ERRORS], ids=[row[0] for row in WHITELIST_ERRORS])
def test_whitelist_errors(tmp_path, text, line, fragment):
    config = load_config(write(tmp_path, whitelist=text))
    with pytest.raises(ConfigError) as error:
        load_whitelist(config)
    assert fragment in str(error.value)
    assert line in str(error.value)
    assert "whitelist.yaml" in str(error.value)


def test_empty_whitelist_is_empty(tmp_path):
    assert load_whitelist(load_config(write(tmp_path, whitelist=""))) == []

"""`mirror advisories import` and `list` against a real SQLite catalog."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mirror.cli.advisories import advisories

MIRROR_YAML = """\
data_dir: data
database: sqlite:///data/catalog.db
upstreams:
  conda-forge:
    url: https://conda.anaconda.org/conda-forge
channels:
  main: {approval: auto}
"""


def write_config(folder: Path) -> Path:
    path = folder / "mirror.yaml"
    path.write_text(MIRROR_YAML)
    return path


def test_cli_import_prints_counts(tmp_path, osv_folder):
    config = write_config(tmp_path)
    result = CliRunner().invoke(advisories, ["import", str(osv_folder)], obj=config)
    assert result.exit_code == 0, result.output
    assert "3 imported, 0 updated, 0 unchanged, 1 skipped" in result.output
    assert "skipped 1: malformed" in result.output
    assert "PyPI/broken.json" in result.output
    assert "re-check: no approved package" in result.output

    again = CliRunner().invoke(advisories, ["import", str(osv_folder)], obj=config)
    assert "0 imported, 0 updated, 3 unchanged" in again.output


def test_cli_import_stops_at_limit(tmp_path, osv_folder):
    config = write_config(tmp_path)
    result = CliRunner().invoke(advisories, ["import", str(osv_folder), "--max-total-bytes", "10"], obj=config)
    assert result.exit_code == 1
    assert "stopped early" in result.output


def test_cli_list(tmp_path, osv_folder):
    config = write_config(tmp_path)
    CliRunner().invoke(advisories, ["import", str(osv_folder)], obj=config)

    listed = CliRunner().invoke(advisories, ["list"], obj=config, env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    for advisory_id in ("GHSA-aaaa-bbbb-cccc", "PYSEC-2023-17", "PYSEC-2024-99"):
        assert advisory_id in listed.output

    package = CliRunner().invoke(advisories, ["list", "--package", "pytorch"], obj=config, env={"COLUMNS": "200"})
    assert package.exit_code == 0, package.output
    assert "PYSEC-2023-17" in package.output
    assert "GHSA-aaaa-bbbb-cccc" not in package.output

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from mirror.catalog.models import CheckOutcome
from mirror.validate.checks.scripts import ScriptsCheck
from mirror.validate.result import CheckContext

from tests.support.corpus import CORPUS_DIR

from .builders import HOSTILE_FORMATS, TarMember, demo_package, isolate_working_folder

POST_LINK = b"#!/bin/bash\necho installed >> \"$PREFIX/.messages.txt\"\n"


@pytest.fixture(autouse=True)
def no_stray_files(tmp_path, monkeypatch):
    yield from isolate_working_folder(tmp_path, monkeypatch)


def scripts_of(result):
    return {item["member"]: item for item in result.evidence["scripts"]}


def run(tmp_path, fmt="tar.bz2", **package):
    return ScriptsCheck().run(demo_package(tmp_path, fmt, **package))


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_scripts_none_pass(tmp_path, fmt):
    result = run(tmp_path, fmt)

    assert result.outcome is CheckOutcome.PASS
    assert result.evidence["scripts"] == []


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_scripts_post_link_warns(tmp_path, fmt):
    result = run(tmp_path, fmt, files={"bin/.demo-post-link.sh": POST_LINK})

    assert result.outcome is CheckOutcome.WARN
    assert "post-link bin/.demo-post-link.sh" in result.summary
    script = scripts_of(result)["bin/.demo-post-link.sh"]
    assert script["kind"] == "post-link"
    assert script["text"] == POST_LINK.decode()
    assert script["truncated"] is False
    assert script["runs_for_package"] is True
    assert script["size"] == len(POST_LINK)
    assert json.loads(json.dumps(result.evidence)) == result.evidence


@pytest.mark.parametrize(
    ("member", "kind"),
    [
        ("Scripts/.demo-post-link.bat", "post-link"),
        ("bin/.demo-pre-link.sh", "pre-link"),
        ("bin/.demo-pre-unlink.sh", "pre-unlink"),
        ("python-scripts/.demo-post-link.sh", "post-link"),
    ],
)
def test_scripts_link_script_kinds(tmp_path, member, kind):
    result = run(tmp_path, files={member: b"echo hi\n"})

    assert result.outcome is CheckOutcome.WARN
    assert scripts_of(result)[member]["kind"] == kind


def test_scripts_other_package_name(tmp_path):
    result = run(tmp_path, files={"bin/.other-post-link.sh": b"echo hi\n"})

    assert result.outcome is CheckOutcome.WARN
    assert scripts_of(result)["bin/.other-post-link.sh"]["runs_for_package"] is False


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_scripts_activate_d_warns(tmp_path, fmt):
    files = {
        "etc/conda/activate.d/demo.sh": b"export DEMO_HOME=$CONDA_PREFIX\n",
        "etc/conda/deactivate.d/demo.sh": b"unset DEMO_HOME\n",
    }
    result = run(tmp_path, fmt, files=files)

    assert result.outcome is CheckOutcome.WARN
    scripts = scripts_of(result)
    assert scripts["etc/conda/activate.d/demo.sh"]["kind"] == "activate"
    assert scripts["etc/conda/deactivate.d/demo.sh"]["kind"] == "deactivate"
    assert scripts["etc/conda/activate.d/demo.sh"]["text"] == "export DEMO_HOME=$CONDA_PREFIX\n"


@pytest.mark.parametrize(
    "member",
    ["lib/python3.11/site-packages/demo.pth", "site-packages/nested/demo.pth", "Lib/site-packages/demo.pth"],
)
def test_scripts_pth_warns(tmp_path, member):
    result = run(tmp_path, "conda", files={member: b"import demo_hook\n"})

    assert result.outcome is CheckOutcome.WARN
    assert scripts_of(result)[member]["kind"] == "pth"


def test_scripts_symlinked_script(tmp_path):
    link = TarMember("bin/.demo-post-link.sh", type=tarfile.SYMTYPE, linkname="../share/hook.sh")
    result = run(tmp_path, extra_payload=[link])

    assert result.outcome is CheckOutcome.WARN
    script = scripts_of(result)["bin/.demo-post-link.sh"]
    assert script["text"] is None
    assert script["link_target"] == "../share/hook.sh"


def test_scripts_recipe_copies_ignored(tmp_path):
    # conda-build keeps the recipe's scripts under info/recipe; conda never runs them.
    recipe = [
        TarMember("info/recipe/post-link.sh", POST_LINK),
        TarMember("info/recipe/etc/conda/activate.d/a.sh", b"echo"),
    ]
    result = run(tmp_path, "conda", extra_info=recipe)

    assert result.outcome is CheckOutcome.PASS


def test_scripts_text_truncated(tmp_path):
    script = b"#" * 100_000
    result = run(tmp_path, files={"bin/.demo-post-link.sh": script})

    evidence = scripts_of(result)["bin/.demo-post-link.sh"]
    assert evidence["truncated"] is True
    assert len(evidence["text"]) == 64 * 1024
    assert evidence["size"] == 100_000


def test_scripts_total_text_cap(tmp_path):
    files = {f"etc/conda/activate.d/{i}.sh": b"x" * 600 for i in range(3)}
    context = demo_package(tmp_path, "tar.bz2", files=files)

    result = ScriptsCheck(max_text_bytes_per_file=500, max_text_bytes_total=800).run(context)

    scripts = scripts_of(result)
    assert [len(scripts[name]["text"] or "") for name in sorted(scripts)] == [500, 300, 0]
    assert scripts["etc/conda/activate.d/2.sh"]["text"] is None
    assert "omitted" in scripts["etc/conda/activate.d/2.sh"]
    assert result.evidence["text_bytes"] == 800


def test_scripts_link_json_informational(tmp_path):
    link_json = json.dumps({"noarch": {"type": "python", "entry_points": ["demo = demo.cli:main"]}}).encode()
    has_prefix = b"/opt/anaconda1anaconda2anaconda3 text lib/pkgconfig/demo.pc\n"
    result = run(
        tmp_path,
        extra_info=[TarMember("info/link.json", link_json), TarMember("info/has_prefix", has_prefix)],
        files={"lib/libdemo.so": b"x"},
    )

    assert result.outcome is CheckOutcome.PASS
    assert result.evidence["link_json"] == {"noarch": "python", "entry_points": ["demo = demo.cli:main"]}
    assert result.evidence["has_prefix"]["count"] == 1


def test_scripts_unreadable_archive_fails(tmp_path):
    context = demo_package(tmp_path, "conda", extra_payload=[TarMember("lib/" + "a" * 300, b"x")])

    result = ScriptsCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "so its scripts are unchecked" in result.summary


RECIPES = CORPUS_DIR / "channels/conda-test-recipes/noarch"
# post_link-b has no script: its recipe only installs bin/file.
RECIPES_WITH_POST_LINK = [
    "failing_post_link-1.0-0.conda",
    "post_link-c-1.0-0.conda",
    "post_link-d-1.0-0.conda",
    "post_link-e-1.0-0.conda",
    "post_link_run_in_env_package-1.0-0.conda",
]


@pytest.mark.parametrize("filename", RECIPES_WITH_POST_LINK)
def test_scripts_corpus_post_link_warns(corpus, filename):
    path: Path = RECIPES / filename
    context = CheckContext(path=path, filename=filename, subdir="noarch", record={})

    result = ScriptsCheck().run(context)

    assert result.outcome is CheckOutcome.WARN
    name = filename.rsplit("-", 2)[0]
    post_link = scripts_of(result)[f"bin/.{name}-post-link.sh"]
    assert post_link["kind"] == "post-link"
    assert post_link["runs_for_package"] is True
    assert post_link["text"]


def test_scripts_corpus_plain_package_passes(corpus):
    path = corpus / "channels/conda-format-repo/linux-64/zlib-1.2.11-h7b6447c_3.tar.bz2"
    context = CheckContext(path=path, filename=path.name, subdir="linux-64", record={})

    result = ScriptsCheck().run(context)

    assert result.outcome is CheckOutcome.PASS
    assert result.evidence["has_prefix"]["entries"] == [
        "/opt/anaconda1anaconda2anaconda3 text lib/pkgconfig/zlib.pc"
    ]

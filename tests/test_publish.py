"""The publish workflow (.github/workflows/publish.yml): valid for GitHub Actions (actionlint, which
cannot run it here), every run step a make target the tests exercise, the URL in one place."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TESTED_MAKE_TARGETS

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint() -> str:
    here = Path(sys.executable).with_name("actionlint")
    exe = str(here) if here.exists() else shutil.which("actionlint")
    if exe is None:
        pytest.fail("actionlint is not installed (pip install -r requirements.txt)")
    return exe


def test_there_is_a_publish_workflow():
    assert ROOT / ".github" / "workflows" / "publish.yml" in WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_passes(workflow):
    proc = subprocess.run([actionlint(), "-no-color", str(workflow)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = (ROOT / ".github" / "workflows" / "publish.yml").read_text()
    broken = broken.replace("runs-on: ubuntu-24.04", "runs-on: ubuntu-24.04\n    runs_on: x", 1)
    broken = broken.replace("${{ steps.deployment.outputs.page_url }}",
                            "${{ steps.deploymnt.outputs.page_url }}")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    path = tmp_path / ".github" / "workflows" / "broken.yml"
    path.write_text(broken)
    proc = subprocess.run([actionlint(), "-no-color", str(path)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode != 0
    assert "runs_on" in proc.stdout and "deploymnt" in proc.stdout, proc.stdout


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.MULTILINE))


def run_steps(workflow: Path) -> list[str]:
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    return [step["run"] for job in jobs.values() for step in job.get("steps", []) if "run" in step]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_is_a_make_target_the_tests_exercise(workflow):
    defined = make_targets()
    for command in run_steps(workflow):
        match = re.fullmatch(r"make ([\w-]+)", command.strip())
        assert match, f"run step {command!r} is not a single `make <target>`"
        assert match.group(1) in defined, f"the Makefile has no target {match.group(1)!r}"
        assert match.group(1) in TESTED_MAKE_TARGETS, (
            f"no test runs `make {match.group(1)}`")


def test_the_workflow_publishes_both_editions_and_keeps_the_execution_caches():
    workflow = (ROOT / ".github" / "workflows" / "publish.yml").read_text()
    steps = run_steps(ROOT / ".github" / "workflows" / "publish.yml")
    assert steps.index("make test") < steps.index("make book") < steps.index("make site")
    assert "make book-zh" in steps
    assert "actions/deploy-pages" in workflow and "path: _build/site" in workflow
    assert "_build/.jupyter_cache" in workflow and "_build/zh/_build/.jupyter_cache" in workflow
    assert "branches: [main]" in workflow


def test_the_published_url_and_the_repository_are_configured_in_one_place():
    """_config.yml's repository.url is the only place: the site's URL is derived from it
    (book/_ext/editions.py) and nothing else names either."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repository = config["repository"]["url"]
    owner, name = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", repository).groups()
    site = f"https://{owner}.github.io/{name}/"
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from editions import published_url

    assert published_url(repository) == site
    hardcoded = []
    for path in [ROOT / "README.md", *WORKFLOWS, ROOT / "Makefile",
                 *(ROOT / "book").rglob("*.md"), *(ROOT / "book" / "_ext").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        if re.search(r"https://[a-z0-9-]+\.github\.io", text) or repository in text:
            hardcoded.append(str(path.relative_to(ROOT)))
    assert not hardcoded, f"the site's URL or the repository is written in {hardcoded}"
    assert "jupyterhub_url" not in config.get("launch_buttons", {}), "a placeholder JupyterHub"

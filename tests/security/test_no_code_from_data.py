"""Nothing the sidecar reads can run code: no pickle (or its relatives), no eval/exec,
no shell, anywhere in the package; and a real run (uploads, a retouch job, the stage
cache's disk tier read back after a restart) never unpickles anything."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
from jobs_support import upload, wait_for

from sidecar.cli import build_app

PACKAGE = Path(__file__).parents[2] / "sidecar"
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "joblib"}
UNSAFE_MODULES |= {"cloudpickle", "copyreg", "yaml"}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__", "execfile", "input"}
UNSAFE_ATTRIBUTES = {
    ("os", "system"),
    ("os", "popen"),
    ("torch", "load"),
    ("pickle", "loads"),
    ("np", "load"),
    ("numpy", "load"),
}


def findings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where} import {a.name}" for a in node.names if _unsafe(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and _unsafe(node.module):
            found.append(f"{where} from {node.module} import")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in UNSAFE_BUILTINS:
                found.append(f"{where} {func.id}()")
            elif isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else ""
                if func.attr == "eval" or (owner, func.attr) in UNSAFE_ATTRIBUTES:
                    found.append(f"{where} {owner}.{func.attr}()")
            for keyword in node.keywords:
                unsafe_flag = keyword.arg in ("shell", "allow_pickle", "weights_only")
                value = keyword.value
                if unsafe_flag and isinstance(value, ast.Constant):
                    if (keyword.arg == "weights_only") != bool(value.value):
                        found.append(f"{where} {keyword.arg}={value.value}")
    return found


def _unsafe(module: str) -> bool:
    return module.split(".")[0] in UNSAFE_MODULES


def test_the_package_never_unpickles_evaluates_or_shells_out():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 30
    problems = [finding for path in sources for finding in findings(path)]
    assert problems == []


def test_the_checker_sees_what_it_looks_for(tmp_path):
    # the check above would be worthless if it could not see these
    bad = tmp_path / "probe.py"
    text = (
        "import pickle\nfrom marshal import loads\nimport yaml.loader\n"
        "eval('1')\nexec('x=1')\nmodel.eval()\nnp.load(f, allow_pickle=True)\n"
        "torch.load(f)\nsubprocess.run('ls', shell=True)\nos.system('ls')\n"
    )
    bad.write_text(text, encoding="utf-8")
    assert len(findings(bad)) == 11


_unpickled: list[str] = []
_watching = [False]
_hooked = [False]


def _audit(event: str, args) -> None:
    if _watching[0] and event == "pickle.find_class":  # every unpickling of a global
        _unpickled.append(f"{event} {args!r:.200}")


async def test_a_real_run_unpickles_nothing(aiohttp_client, settings, portrait):
    if not _hooked[0]:
        sys.addaudithook(_audit)  # hooks cannot be removed: it records only while watching
        _hooked[0] = True
    _watching[0] = True
    try:
        for _ in range(2):  # the second app reads the stage cache's disk tier back
            app = build_app(settings)
            client = await aiohttp_client(app)
            auth = {"Authorization": f"Bearer {settings.token_path.read_text().strip()}"}
            image_id = await upload(client, auth, np.ascontiguousarray(portrait[::2, ::2]))
            answer = await client.post(
                "/v1/jobs", json={"op": "dodge_burn", "image_id": image_id}, headers=auth
            )
            job_id = (await answer.json())["job_id"]
            assert (await wait_for(client, auth, job_id, timeout=60))["state"] == "done"
            tone = await client.get(f"/v1/images/{image_id}/skin-tone", headers=auth)
            assert tone.status == 200
            await client.close()
        assert list(settings.stages_dir.glob("*.stage"))  # the disk tier was used
    finally:
        _watching[0] = False
    assert _unpickled == []

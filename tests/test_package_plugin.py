"""scripts/package-plugin builds a .ccx that Photoshop can load: manifest at the root,
everything it and the panel's page reference inside, nothing of the tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "package-plugin"
HOST_REQUIRE = re.compile(r"""require\(\s*['"](?:photoshop|uxp)['"]\s*\)""")
LOCAL_REQUIRE = re.compile(r"""require\(\s*['"](\.{1,2}/[^'"]+)['"]\s*\)""")
HTML_REFERENCE = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""")


def build(out: Path) -> Path:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return Path(done.stdout.strip())


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("ccx"))


@pytest.fixture(scope="module")
def entries(package) -> dict[str, bytes]:
    with zipfile.ZipFile(package) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def without_comments(source: str) -> str:
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)
    return re.sub(r"(^|[^:])//.*$", r"\1", source, flags=re.MULTILINE)


def icon_paths(icon: dict) -> list[str]:
    path = PurePosixPath(icon["path"])
    return [str(path.with_name(f"{path.stem}@{scale}x{path.suffix}")) for scale in icon["scale"]]


def all_icons(manifest: dict) -> list[dict]:
    entrypoints = manifest["entrypoints"]
    return manifest["icons"] + [icon for entry in entrypoints for icon in entry.get("icons", [])]


def test_named_after_the_manifest_version_with_the_manifest_at_the_root(package, entries):
    manifest = json.loads(entries["manifest.json"])
    assert package.name == f"ml-retouch-{manifest['version']}.ccx"
    assert manifest["manifestVersion"] == 5
    assert manifest == json.loads((ROOT / "manifest.json").read_text())


def test_every_file_the_manifest_names_is_inside(entries):
    manifest = json.loads(entries["manifest.json"])
    icons = all_icons(manifest)
    assert manifest["icons"] and len(icons) > len(manifest["icons"]), "plugin and panel icons"
    wanted = [manifest["main"]] + [path for icon in icons for path in icon_paths(icon)]
    assert sorted(set(wanted) - set(entries)) == []
    for path in wanted:
        if path.endswith(".png"):
            assert entries[path].startswith(b"\x89PNG\r\n\x1a\n"), path


def test_icons_have_the_sizes_the_manifest_gives(entries):
    manifest = json.loads(entries["manifest.json"])
    for icon in all_icons(manifest):
        for scale, path in zip(icon["scale"], icon_paths(icon), strict=True):
            png = entries[path]
            width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
            assert (width, height) == (icon["width"] * scale, icon["height"] * scale), path


def test_every_file_the_panel_page_loads_is_inside(entries):
    page = entries["plugin/index.html"].decode()
    targets = [t for t in HTML_REFERENCE.findall(page) if not re.match(r"^(?:[a-z]+:|#|//)", t)]
    assert "main.js" in targets
    assert sorted({f"plugin/{target}" for target in targets} - set(entries)) == []


def test_every_module_a_shipped_script_requires_is_inside(entries):
    for name, data in entries.items():
        if not name.endswith(".js"):
            continue
        for target in LOCAL_REQUIRE.findall(without_comments(data.decode())):
            resolved = str(PurePosixPath(name).parent / target)
            resolved = str(PurePosixPath(*[p for p in PurePosixPath(resolved).parts if p != "."]))
            assert resolved in entries, f"{name} requires {target}, which is not in the package"


def test_no_tests_and_no_browser_only_files(entries):
    for name in entries:
        assert not name.endswith(".test.js"), name
        assert not name.startswith(("plugin/test/", "plugin/e2e/", "plugin/browser/")), name
        assert name == "manifest.json" or name.startswith("plugin/"), name


def test_only_the_photoshop_adapter_requires_photoshop_or_uxp(entries):
    requiring = [
        name
        for name, data in entries.items()
        if name.endswith(".js") and HOST_REQUIRE.search(without_comments(data.decode()))
    ]
    assert requiring == ["plugin/photoshop-adapter.js"]


def test_the_same_sources_give_the_same_bytes(package, tmp_path):
    again = build(tmp_path)
    assert again.read_bytes() == package.read_bytes()
    with zipfile.ZipFile(again) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}

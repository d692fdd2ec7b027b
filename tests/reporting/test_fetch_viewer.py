"""NiiVue's browser build from an npm registry (a loopback one serving its package): checked by SHA-256, kept once
there, another build refused and an unreachable registry named, with nothing left behind."""

import io
import tarfile

import pytest

from liverseg.data.download import DownloadError
from liverseg.reporting.viewer import NIIVUE, NIIVUE_FILE, NIIVUE_SHA256, NIIVUE_TARBALL, fetch_viewer
from tests.helpers import free_port, vendored_viewer


@pytest.fixture
def build() -> bytes:
    return vendored_viewer().read_bytes()


def registry_serving(serve, root, build: bytes) -> tuple[str, object]:
    """A loopback registry whose NiiVue package holds `build`; its address and request log."""
    tarball = root / NIIVUE_TARBALL
    tarball.parent.mkdir(parents=True)
    with tarfile.open(tarball, "w:gz") as archive:
        member = tarfile.TarInfo(NIIVUE_FILE)
        member.size = len(build)
        archive.addfile(member, io.BytesIO(build))
    url, log = serve(root, NIIVUE_TARBALL)
    return url.removesuffix(f"/{NIIVUE_TARBALL}"), log


def test_the_pinned_build_is_fetched_once_and_kept(tmp_path, serve, build):
    registry, log = registry_serving(serve, tmp_path / "registry", build)
    dest = tmp_path / "vendor" / "niivue.umd.js"
    assert fetch_viewer(dest, registry) == dest and dest.read_bytes() == build
    assert [p.name for p in dest.parent.iterdir()] == ["niivue.umd.js"], "no package or part left beside it"
    fetch_viewer(dest, registry)
    assert log.read_text().count("GET ") == 1, "a checked copy is kept, not fetched again"


def test_another_build_is_refused_with_nothing_left(tmp_path, serve, build):
    registry, _ = registry_serving(serve, tmp_path / "registry", build + b"\n// changed")
    dest = tmp_path / "vendor" / "niivue.umd.js"
    with pytest.raises(DownloadError, match=f"not the pinned {NIIVUE_SHA256}"):
        fetch_viewer(dest, registry)
    assert list(dest.parent.iterdir()) == []


def test_an_unreachable_registry_is_named(tmp_path):
    registry = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(
        DownloadError,
        match=f"{NIIVUE}: {registry}/{NIIVUE_TARBALL}: download failed .*copy {NIIVUE_FILE} of that package to ",
    ):
        fetch_viewer(tmp_path / "niivue.umd.js", registry)
    assert not (tmp_path / "niivue.umd.js").exists()

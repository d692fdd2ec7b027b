"""The MSD download against a loopback server: whole, resumed, wrong checksum, offline, and unsafe archives."""

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from liverseg.data.download import DownloadError, download_msd, extract_archive


def msd_tar(path: Path) -> Path:
    """A small archive in the MSD layout, with the macOS resource forks the real one carries."""
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    with tarfile.open(path, "w") as tar:
        for name, data in {
            "Task03_Liver/dataset.json": b"{}",
            "Task03_Liver/imagesTr/liver_0.nii.gz": payload,
            "Task03_Liver/labelsTr/liver_0.nii.gz": payload[:1000],
            "Task03_Liver/imagesTr/._liver_0.nii.gz": b"resource fork",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_a_whole_download_is_checked_and_extracted_without_resource_forks(tmp_path, serve):
    (tmp_path / "served").mkdir()
    archive = msd_tar(tmp_path / "served" / "Task03_Liver.tar")
    url, log = serve(archive.parent, archive.name)
    out = tmp_path / "raw" / "msd"
    download_msd(url, md5(archive), out)
    image = out / "Task03_Liver/imagesTr/liver_0.nii.gz"
    assert image.read_bytes() == tarfile.open(archive).extractfile("Task03_Liver/imagesTr/liver_0.nii.gz").read()
    assert not list(out.rglob("._*"))
    assert (tmp_path / "raw" / "Task03_Liver.tar").read_bytes() == archive.read_bytes()
    assert not (tmp_path / "raw" / "Task03_Liver.tar.part").exists()
    # a second call finds the verified archive and makes no request
    requests = log.read_text()
    download_msd(url, md5(archive), out)
    assert log.read_text() == requests


def test_an_interrupted_download_resumes_with_a_range_request(tmp_path, serve, capsys):
    (tmp_path / "served").mkdir()
    archive = msd_tar(tmp_path / "served" / "Task03_Liver.tar")
    half = archive.stat().st_size // 2
    url, log = serve(archive.parent, archive.name, cut_first=half)
    download_msd(url, md5(archive), tmp_path / "raw" / "msd")
    assert (tmp_path / "raw" / "Task03_Liver.tar").read_bytes() == archive.read_bytes()
    assert log.read_text().splitlines() == [
        "GET /Task03_Liver.tar range=None",
        f"GET /Task03_Liver.tar range=bytes={half}-",
    ]
    assert "resuming" in capsys.readouterr().out


def test_a_wrong_checksum_is_rejected_and_nothing_is_extracted(tmp_path, serve):
    (tmp_path / "served").mkdir()
    archive = msd_tar(tmp_path / "served" / "Task03_Liver.tar")
    url, _ = serve(archive.parent, archive.name)
    with pytest.raises(DownloadError, match="md5 .* differs from the expected 0+"):
        download_msd(url, "0" * 32, tmp_path / "raw" / "msd")
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == []


def test_offline_the_error_names_the_url_and_where_to_place_the_file(tmp_path):
    with pytest.raises(DownloadError) as error:
        download_msd("http://127.0.0.1:9/Task03_Liver.tar", "0" * 32, tmp_path / "raw" / "msd")
    message = str(error.value)
    assert "http://127.0.0.1:9/Task03_Liver.tar" in message
    assert f"place it at {tmp_path / 'raw' / 'Task03_Liver.tar'}" in message


def test_a_file_placed_by_hand_is_checked_and_used(tmp_path):
    archive = msd_tar(tmp_path / "Task03_Liver.tar")
    download_msd("http://127.0.0.1:9/Task03_Liver.tar", md5(archive), tmp_path / "msd")
    assert (tmp_path / "msd/Task03_Liver/dataset.json").read_bytes() == b"{}"


def unsafe_tar(path: Path, member: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w") as tar:
        good = tarfile.TarInfo("Task03_Liver/dataset.json")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"{}"))
        tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def member(name, kind=tarfile.REGTYPE, linkname="", size=1):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, size if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "bad, reason",
    [
        (member("../escape"), "path with '..'"),
        (member("Task03_Liver/../../escape"), "path with '..'"),
        (member("/tmp/absolute"), "absolute path"),
        (member("Task03_Liver/link", tarfile.SYMTYPE, "../../outside"), "link pointing out"),
        (member("Task03_Liver/link", tarfile.SYMTYPE, "/etc/passwd"), "link to an absolute path"),
        (member("Task03_Liver/hard", tarfile.LNKTYPE, "../outside"), "link pointing out"),
        (member("Task03_Liver/dev", tarfile.CHRTYPE), "device or fifo"),
    ],
)
def test_unsafe_members_refuse_the_whole_archive(tmp_path, bad, reason):
    archive = unsafe_tar(tmp_path / "bad.tar", bad)
    out = tmp_path / "out"
    with pytest.raises(DownloadError, match=f"{bad.name!r} is unsafe \\({reason}"):
        extract_archive(archive, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar"]


def test_a_link_inside_the_folder_is_kept(tmp_path):
    archive = unsafe_tar(tmp_path / "ok.tar", member("Task03_Liver/link.json", tarfile.SYMTYPE, "dataset.json"))
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out/Task03_Liver/link.json").read_bytes() == b"{}"

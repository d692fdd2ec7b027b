"""Getting the MSD Task03_Liver archive: resumed over HTTP Range, checked against its md5, extracted safely.

The archive is 27 GiB, so nothing here holds it in memory: the download is appended to `<archive>.part` in chunks
(renamed only once its checksum matches), and the extraction copies member by member from the tar on disk.
"""

from __future__ import annotations

import hashlib
import http.client
import posixpath
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from liverseg.atomic import atomic_dir

# MONAI's DecathlonDataset mirror and checksum (monai/apps/datasets.py); both can be overridden in the config
MSD_URL = "https://msd-for-monai.s3-us-west-2.amazonaws.com/Task03_Liver.tar"
MSD_MD5 = "a90ec6c4aa7f6a3d087205e23d4e6397"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download that failed or an archive that cannot be trusted; the message says what to do."""


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        while block := stream.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


class _Throttled:
    """Prints at most one line every `every` seconds, and always when forced: progress for the log."""

    def __init__(self, every: float = 10.0):
        self.every, self.last = every, float("-inf")

    def __call__(self, line: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            print(line, flush=True)


def _arrived(done: int, total: int | None) -> str:
    of = f" of {total / 2**20:,.1f} MiB ({100 * done / total:.1f}%)" if total else ""
    return f"download: {done / 2**20:,.1f} MiB{of}"


def _append_from(url: str, part: Path, timeout: float) -> None:
    """One request for whatever `part` lacks; raises on an interruption, leaving what arrived in `part`."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to send: the part is already whole
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignores Range: start over
            print(f"download: {url} does not resume (HTTP {response.status}); starting again", flush=True)
            have = 0
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        total, log = (have + expected if expected is not None else None), _Throttled()
        received = 0
        with open(part, "ab" if have else "wb") as out:
            while block := response.read(CHUNK):
                out.write(block)
                received += len(block)
                log(_arrived(have + received, total))
        log(_arrived(have + received, total), force=True)
        if expected is not None and received < expected:
            raise http.client.IncompleteRead(b"", expected - received)


def download_part(url: str, target: Path, attempts: int = 5, timeout: float = 60.0) -> Path:
    """`<target>.part` filled from `url`, resumed with HTTP Range requests as long as each attempt brings new bytes.

    The caller checks the part and renames it to `target`; a failure names `target`, where a file fetched by other
    means can be placed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    for attempt in range(1, attempts + 1):
        before = part.stat().st_size if part.exists() else 0
        try:
            _append_from(url, part, timeout)
            return part
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            after = part.stat().st_size if part.exists() else 0
            if after == before or attempt == attempts:
                raise DownloadError(
                    f"{url}: download failed ({error}); fetch the file by other means and place it at "
                    f"{target.resolve()}, then run again"
                ) from error
            print(f"download: interrupted at {after:,} bytes ({error}); resuming", flush=True)
    return part


def fetch_archive(url: str, md5: str, archive: Path, attempts: int = 5, timeout: float = 60.0) -> Path:
    """`archive`, downloaded unless it is already there, and only once its md5 matches.

    An interrupted transfer is resumed with an HTTP Range request from where `<archive>.part` ends, as long as each
    attempt brings new bytes; a file placed at `archive` by hand is checked and used.
    """
    archive = Path(archive)
    if not archive.exists():
        part = download_part(url, archive, attempts, timeout)
        print(f"download: checking the md5 of {part}", flush=True)
        digest = md5sum(part)
        if digest != md5:
            part.unlink()
            raise DownloadError(f"{url}: md5 {digest} of the download differs from the expected {md5}; deleted it")
        part.rename(archive)
    else:
        print(f"download: {archive} is already here; checking its md5", flush=True)
        digest = md5sum(archive)
        if digest != md5:
            raise DownloadError(f"{archive}: md5 {digest} differs from the expected {md5}; delete it and run again")
    return archive


def unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why extracting this member could write outside the target folder, or None if it cannot."""
    path = PurePosixPath(member.name)
    if path.is_absolute():
        return "absolute path"
    if ".." in path.parts:
        return "path with '..'"
    if member.isdev():
        return "device or fifo file"
    if member.issym() or member.islnk():
        if member.linkname.startswith("/"):
            return f"link to an absolute path ({member.linkname})"
        # a symlink's target is relative to its folder, a hard link's to the archive's root
        base = posixpath.dirname(member.name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, member.linkname))
        if target == ".." or target.startswith("../"):
            return f"link pointing out of the folder ({member.linkname})"
    return None


def extract_archive(archive: Path, out_dir: Path) -> int:
    """Extract every member into `out_dir`, skipping macOS `._*` files; all or nothing.

    Every member is checked before anything is written: one unsafe member refuses the whole archive. Extraction goes
    to a sibling folder renamed into place at the end, so `out_dir` never holds half an archive.
    """
    try:
        with tarfile.open(archive, "r:*") as tar, atomic_dir(out_dir) as partial:  # reads member by member from disk
            members = [m for m in tar.getmembers() if not PurePosixPath(m.name).name.startswith("._")]
            for member in members:
                if reason := unsafe_reason(member):
                    raise DownloadError(
                        f"{archive}: refused, member {member.name!r} is unsafe ({reason}); nothing extracted"
                    )
            log = _Throttled()
            for done, member in enumerate(members, 1):
                tar.extract(member, partial, filter="data")  # the standard library's checks, once more
                log(f"extract: {done} of {len(members)} members of {archive}", force=done == len(members))
    except tarfile.TarError as error:
        raise DownloadError(f"{archive}: not a readable tar archive ({error})") from error
    return len(members)


def download_msd(url: str, md5: str, out_dir: Path) -> None:
    """The archive next to `out_dir` (kept, so that a rerun needs no download), extracted into `out_dir`."""
    out_dir = Path(out_dir)
    archive = out_dir.parent / PurePosixPath(urllib.parse.urlparse(url).path).name
    extract_archive(fetch_archive(url, md5, archive), out_dir)

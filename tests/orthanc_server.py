"""A real Orthanc PACS for the tests (Debian's orthanc and orthanc-dicomweb): started in its own process group with a
configuration of the test's, storing into the test's folder, stopped with its whole group.

Orthanc 1.10 (Debian 12) has no option to bind the HTTP server to one address; RemoteAccessAllowed false makes it
answer this machine only, and its DICOM server is off.
"""

import json
import os
import signal
import subprocess
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import free_port, program, unavailable, wait_until_answers

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
# a PACS that refuses Segmentations, as one whose rules forbid derived objects does
REFUSE_SEG = "function ReceivedInstanceFilter(dicom, origin, info)\n  return dicom.Modality ~= 'SEG'\nend\n"


@contextmanager
def orthanc(folder: Path, refuse_seg: bool = False):
    """Yield (REST base URL, DICOMweb URL as `liverseg segment` takes it) of a fresh Orthanc."""
    binary = program("Orthanc", "orthanc")
    if not PLUGIN.is_file():
        unavailable(f"{PLUGIN} is missing (Debian's orthanc-dicomweb)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "Name": "liverseg-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    if refuse_seg:
        (folder / "refuse.lua").write_text(REFUSE_SEG)
        config["LuaScripts"] = [str(folder / "refuse.lua")]
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "w")
    server = subprocess.Popen(
        [binary, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{base}/system", server, "Orthanc", 60, folder / "orthanc.log")
        yield base, f"dicomweb://127.0.0.1:{port}/dicom-web"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def upload(base: str, files) -> None:
    """Store files through Orthanc's own REST API, as a modality's export lands in a PACS."""
    for file in files:
        request = urllib.request.Request(f"{base}/instances", data=Path(file).read_bytes(), method="POST")
        urllib.request.urlopen(request, timeout=30).read()


def get(base: str, path: str):
    with urllib.request.urlopen(f"{base}{path}", timeout=30) as answer:
        return json.loads(answer.read())

"""A study on a DICOMweb server (a PACS such as Orthanc, with dicomweb-client): its series described from their
metadata (QIDO-RS, WADO-RS metadata, no pixels), the one to segment fetched into a folder (WADO-RS), and a result
stored back (STOW-RS), all with clear errors for a server that cannot be reached or answers otherwise.

`dicomweb://HOST:PORT/PATH` names a server over HTTP and `dicomwebs://...` over HTTPS.
"""

from __future__ import annotations

from pathlib import Path

from liverseg.dicom.series import Series, described, pick

SCHEMES = {"dicomweb://": "http://", "dicomwebs://": "https://"}
TIMEOUT_S = 60


class ServerError(ValueError):
    """The server could not be reached, refused a request, or holds nothing to segment; the message names it."""


def is_dicomweb(text: str) -> bool:
    return text.startswith(tuple(SCHEMES))


def _client(url: str):
    from dicomweb_client import DICOMwebClient

    scheme = next(s for s in SCHEMES if url.startswith(s))
    return DICOMwebClient(SCHEMES[scheme] + url.removeprefix(scheme), timeout=TIMEOUT_S)


def _asking(url: str, what: str, request):
    """`request()`, its failures named after the server and what was asked."""
    import requests

    try:
        return request()
    except requests.exceptions.ConnectionError as error:
        raise ServerError(f"{url}: cannot reach the DICOMweb server ({type(error).__name__})") from error
    except requests.exceptions.Timeout as error:
        raise ServerError(f"{url}: no answer to {what} within {TIMEOUT_S} s") from error
    except requests.exceptions.HTTPError as error:
        raise ServerError(f"{url}: {what} refused ({error})") from error


def study_series(url: str, study: str) -> list[Series]:
    """The CT series of `study` on the server, each described from its first image's metadata."""
    import pydicom

    client = _client(url)
    found = _asking(url, f"the search for the series of study {study}", lambda: client.search_for_series(study))
    modalities = {_value(s, "0020000E"): _value(s, "00080060") for s in found}
    ct = [uid for uid, modality in modalities.items() if modality == "CT"]
    if not ct:
        held = ", ".join(sorted(set(modalities.values()))) or "no series"
        raise ServerError(f"{url}: study {study} holds no CT series (it holds {held})")
    series = []
    for uid in ct:
        metadata = _asking(
            url, f"the metadata of series {uid}", lambda uid=uid: client.retrieve_series_metadata(study, uid)
        )
        header = pydicom.Dataset.from_json(metadata[0], bulk_data_uri_handler=lambda *_: b"")
        series.append(described(header, f"{url} study {study}", uid, tuple(_value(m, "00080018") for m in metadata)))
    return series


def fetch_series(url: str, study: str, series_uid: str | None, folder: Path) -> str | None:
    """Write the images of the series of `study` to segment (`series.pick`) into `folder`; returns why that series
    was chosen where the study holds several."""
    chosen, why = pick(study_series(url, study), f"{url} study {study}", series_uid)
    client = _client(url)
    images = _asking(url, f"the images of series {chosen.uid}", lambda: client.retrieve_series(study, chosen.uid))
    folder.mkdir(parents=True, exist_ok=True)
    for n, image in enumerate(images):
        image.save_as(folder / f"{n:05d}.dcm", enforce_file_format=True)
    return why


def store(url: str, study: str, dataset) -> None:
    """Store one instance into `study` on the server, and find it there; a refusal (an HTTP error, the instance in the
    answer's failed list, or an instance the server then does not hold, as a filtering PACS may answer) raises
    ServerError."""
    client = _client(url)
    uid = dataset.SOPInstanceUID
    answer = _asking(url, f"the store of {uid}", lambda: client.store_instances([dataset], study))
    failed = [
        f"{item.ReferencedSOPInstanceUID} (failure reason {item.get('FailureReason', 'not given')})"
        for item in answer.get("FailedSOPSequence", [])
    ]
    if failed:
        raise ServerError(f"{url}: the server refused to store {', '.join(failed)}")
    held = _asking(
        url, f"the search for {uid}", lambda: client.search_for_instances(study, search_filters={"SOPInstanceUID": uid})
    )
    if not held:
        raise ServerError(f"{url}: the server accepted {uid} into study {study} but does not hold it: refused")


def _value(attributes: dict, tag: str) -> str:
    return str((attributes.get(tag, {}).get("Value") or [""])[0])

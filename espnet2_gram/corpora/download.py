"""Resumable downloads and archive extraction for the corpus preparers.

Each step leaves either its finished result or an obviously temporary file behind:
a download goes to ``<name>.part`` and is renamed when complete (a later call resumes
it with an HTTP range request where the server allows), an archive is extracted into
a hidden folder whose entries are then renamed into place, and a marker file records
a finished extraction so that a later call returns at once.
"""

import gzip
import http.client
import logging
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
CHUNK_BYTES = 1 << 20
LOG_EVERY_BYTES = 256 << 20
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError)
ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError)


class DownloadError(RuntimeError):
    """A download that failed; the message says how to provide the data by hand."""


def is_archive(name: str) -> bool:
    """Whether ``name`` ends like a zip or tar archive."""
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def url_file_name(url: str) -> str:
    """The file name at the end of ``url``'s path (query and fragment ignored)."""
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name:
        raise ValueError(f"{url}: the URL names no file")
    return name


def _done_marker(dest_dir: Path, archive_name: str) -> Path:
    return dest_dir / f".{archive_name}.done"


def _failure(url: str, option_name: str, reason) -> DownloadError:
    if isinstance(reason, urllib.error.URLError) and not isinstance(reason, urllib.error.HTTPError):
        reason = reason.reason  # "[Errno 111] Connection refused" rather than "<urlopen error ...>"
    return DownloadError(
        f"could not download {url} ({reason}); download it yourself, extract it and "
        f"pass --{option_name} <local dir>"
    )


def _fetch(url: str, part: Path, timeout: float) -> None:
    """Stream ``url`` into ``part``, appending when the server honours a range request."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url)
    if offset and url.lower().startswith(("http://", "https://")):
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not offset:  # 416: the range is past the end, restart
            raise
        part.unlink()
        _fetch(url, part, timeout)
        return
    with response:
        resumed = getattr(response, "status", None) == 206
        if offset and not resumed:
            offset = 0
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else None
        if resumed:
            logger.info("resuming %s at byte %d", url, offset)
        done = offset
        with open(part, "ab" if resumed else "wb") as f:
            while True:
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                f.write(chunk)
                if (done + len(chunk)) // LOG_EVERY_BYTES > done // LOG_EVERY_BYTES:
                    logger.info("%s: %d MiB so far", part.name, (done + len(chunk)) >> 20)
                done += len(chunk)
    if expected is not None and done != expected:
        raise http.client.IncompleteRead(b"", expected - done)


def download(url: str, target, option_name: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target`` unless it is there; raise ``DownloadError`` on failure."""
    target = Path(target)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    logger.info("downloading %s to %s", url, target)
    try:
        _fetch(url, part, timeout)
    except NETWORK_ERRORS as e:
        raise _failure(url, option_name, e) from e
    part.rename(target)
    logger.info("downloaded %s (%.1f MiB)", target, target.stat().st_size / 2**20)
    return target


def _check_tar_members(tar: tarfile.TarFile, archive: Path) -> None:
    """Refuse members that would land outside the extraction folder (old Pythons)."""
    for member in tar.getmembers():
        parts = Path(member.name).parts
        if Path(member.name).is_absolute() or ".." in parts or member.issym() or member.islnk():
            raise ValueError(f"{archive}: unsafe archive member {member.name!r}")


def extract_archive(archive, dest_dir) -> Path:
    """Extract a zip or tar(.gz) ``archive`` into ``dest_dir`` once; return ``dest_dir``.

    The archive is unpacked into a hidden temporary folder whose top-level entries are
    then renamed into ``dest_dir``; a marker file makes later calls return at once.
    Raises ``ValueError`` naming the archive when it is not a readable archive.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    marker = _done_marker(dest_dir, archive.name)
    if marker.is_file():
        logger.info("%s: already extracted into %s", archive.name, dest_dir)
        return dest_dir
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: no such archive")
    is_zip = zipfile.is_zipfile(archive)
    if not is_zip and not tarfile.is_tarfile(archive):
        raise ValueError(f"{archive}: not a zip or tar archive")
    tmp = dest_dir / f".{archive.name}.extracting"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    logger.info("extracting %s into %s", archive, dest_dir)
    try:
        if is_zip:
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                if hasattr(tarfile, "data_filter"):
                    t.extractall(tmp, filter="data")
                else:
                    _check_tar_members(t, archive)
                    t.extractall(tmp)
    except ARCHIVE_ERRORS as e:
        shutil.rmtree(tmp)
        raise ValueError(f"{archive}: corrupt archive ({e})") from e
    _move_into(tmp, dest_dir)
    marker.touch()
    return dest_dir


def _move_into(src: Path, dst: Path) -> None:
    """Rename the entries of folder ``src`` into folder ``dst``, merging folders that
    exist on both sides (archives sharing a top folder) and replacing files; remove ``src``."""
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and target.is_dir() and not target.is_symlink():
            _move_into(entry, target)
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        entry.rename(target)
    src.rmdir()


def download_and_extract(url: str, dest_dir, option_name: str, timeout: float = 60.0) -> Path:
    """Download ``url`` into ``dest_dir`` and extract it there when it is an archive.

    Work already done is skipped: a finished extraction (marker file), a finished
    download, or the first part of an interrupted one. The archive is deleted once
    extracted. Any network failure raises ``DownloadError`` naming the URL and telling
    the user to download it and pass ``--<option_name> <local dir>``.
    """
    dest_dir = Path(dest_dir)
    name = url_file_name(url)
    if not is_archive(name):
        download(url, dest_dir / name, option_name, timeout)
        return dest_dir
    if _done_marker(dest_dir, name).is_file():
        logger.info("%s: already downloaded and extracted into %s", url, dest_dir)
        return dest_dir
    archive = download(url, dest_dir / name, option_name, timeout)
    try:
        extract_archive(archive, dest_dir)
    except ValueError as e:
        archive.unlink()  # a corrupt download: fetch it anew next time
        raise _failure(url, option_name, e) from e
    archive.unlink()
    return dest_dir

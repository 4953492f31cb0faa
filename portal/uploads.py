"""The one way to accept an uploaded file, for every domain.

A file is taken only when its name ends with an allowed extension and its first
bytes are what that extension says (a renamed program is not a PDF because its
name ends in ``.pdf``). At most the limit plus one byte is read, so a huge file
costs no more memory than a file just over the limit. A kept file lives under
the instance folder, in a subfolder of its own, under a random name; it is
written to a temporary file and moved into place, so an error never leaves half
a file behind.
"""

from __future__ import annotations

import io
import logging
import os
import re
import secrets
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from werkzeug.datastructures import FileStorage

logger = logging.getLogger(__name__)

FILE_NAME_MAX = 200
_STORED_NAME = re.compile(r"[0-9a-f]{32}\.[a-z]{2,4}")


class UploadError(ValueError):
    """A file that cannot be kept; the message says why and what to do."""


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in data


def _is_office(folder: str) -> Callable[[bytes], bool]:
    """Office files are zip archives holding a content list and their own folder."""

    def check(data: bytes) -> bool:
        if not data.startswith(b"PK\x03\x04"):
            return False
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = archive.namelist()
        # A damaged archive fails inside zipfile in many different ways; any of
        # them means the file is not the document it claims to be.
        except Exception:
            return False
        return "[Content_Types].xml" in names and any(
            name.startswith(folder) for name in names
        )

    return check


@dataclass(frozen=True)
class FileKind:
    label: str
    matches: Callable[[bytes], bool]


def _starts_with(signature: bytes) -> Callable[[bytes], bool]:
    return lambda data: data.startswith(signature)


_JPEG = FileKind("a JPEG image", _starts_with(b"\xff\xd8\xff"))

# Every kind of file some page accepts, by extension; each page allows a few.
FILE_KINDS = {
    "pdf": FileKind("a PDF", _starts_with(b"%PDF-")),
    "png": FileKind("a PNG image", _starts_with(b"\x89PNG\r\n\x1a\n")),
    "jpg": _JPEG,
    "jpeg": _JPEG,
    "txt": FileKind("UTF-8 text", _is_text),
    "md": FileKind("UTF-8 text", _is_text),
    "csv": FileKind("UTF-8 text", _is_text),
    "docx": FileKind("a Word document", _is_office("word/")),
    "pptx": FileKind("a PowerPoint presentation", _is_office("ppt/")),
    "xlsx": FileKind("an Excel workbook", _is_office("xl/")),
}


@dataclass(frozen=True)
class UploadPolicy:
    """What one page accepts and where it keeps it.

    ``folder``: the subfolder of the instance folder; ``allowed``: the kinds in
    words, completing "attach ...", e.g. "a PDF, PNG or JPEG image".
    """

    folder: str
    limit_bytes: int
    extensions: frozenset[str]
    allowed: str

    def __post_init__(self) -> None:
        unknown = self.extensions - FILE_KINDS.keys()
        if unknown:
            raise ValueError(f"No content check for {sorted(unknown)}.")
        if not re.fullmatch(r"[a-z_]+", self.folder):
            raise ValueError(f"{self.folder!r} is not a plain folder name.")


@dataclass(frozen=True)
class AcceptedFile:
    """A file that passed every check, not kept yet."""

    original_name: str
    extension: str
    data: bytes


def accept_upload(upload: FileStorage, policy: UploadPolicy) -> AcceptedFile:
    """Read and check an upload without keeping it.

    :raise UploadError: for a missing, empty, too large or unsupported file, or
        one whose content is not what its name says.
    """
    original = _original_name(upload.filename)
    extension = _extension(original, policy)
    data = upload.stream.read(policy.limit_bytes + 1)

    _check_content(original, extension, data, policy)
    return AcceptedFile(original, extension, data)


def keep_file(accepted: AcceptedFile, policy: UploadPolicy) -> str:
    """Write an accepted file under a random name; that name."""
    stored_as = f"{secrets.token_hex(16)}.{accepted.extension}"

    _write_whole(stored_path(policy, stored_as), accepted.data)

    logger.info(
        "Stored %s file %r as %s", policy.folder, accepted.original_name, stored_as
    )
    return stored_as


def store_upload(upload: FileStorage, policy: UploadPolicy) -> tuple[str, str]:
    """Check and keep an upload; its (original, stored) names.

    :raise UploadError: as :func:`accept_upload`. Nothing is kept then.
    """
    accepted = accept_upload(upload, policy)
    return accepted.original_name, keep_file(accepted, policy)


def stored_path(policy: UploadPolicy, stored_as: str) -> Path:
    """Where a kept file is. :raise UploadError: for a name this module never gave."""
    if not _STORED_NAME.fullmatch(stored_as or ""):
        raise UploadError("That is not the name of a stored file.")
    return Path(current_app.instance_path) / policy.folder / stored_as


def remove_stored(policy: UploadPolicy, stored_as: str | None) -> None:
    """Delete a kept file that nothing points at any more; a missing one is fine."""
    if stored_as:
        stored_path(policy, stored_as).unlink(missing_ok=True)


def _original_name(filename: str | None) -> str:
    # Browsers on some systems send the whole path; only the last part is a name.
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if not name:
        raise UploadError("Choose a file to attach.")
    if len(name) > FILE_NAME_MAX:
        raise UploadError(
            f"The file's name is longer than {FILE_NAME_MAX} characters; rename "
            "the file and attach it again."
        )
    return name


def _extension(name: str, policy: UploadPolicy) -> str:
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    if extension not in policy.extensions:
        raise UploadError(f"“{name}” cannot be attached: attach {policy.allowed}.")
    return extension


def _check_content(
    name: str, extension: str, data: bytes, policy: UploadPolicy
) -> None:
    if not data:
        raise UploadError(f"“{name}” is empty; attach a file with content.")
    if len(data) > policy.limit_bytes:
        raise UploadError(
            f"“{name}” is larger than {size_in_words(policy.limit_bytes)}; attach "
            "a smaller file."
        )
    kind = FILE_KINDS[extension]
    if not kind.matches(data):
        raise UploadError(
            f"“{name}” is not {kind.label}, as its name says; attach the file "
            "in the format its name ends with."
        )


def size_in_words(size: int) -> str:
    """``5 MB`` for whole megabytes (of 1,048,576 bytes), otherwise in kB."""
    megabyte = 1024 * 1024
    if size % megabyte == 0:
        return f"{size // megabyte} MB"
    return f"{-(-size // 1024):,} kB"


def _write_whole(target: Path, data: bytes) -> None:
    """Write to a temporary file beside ``target``, then move it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

"""Content-addressed, atomically written image files.

An image is kept as the exact bytes it arrived in (PNG, JPEG, TIFF, BMP or WebP) or, when it
arrives as a pixel array, as a lossless PNG. Its file is ``<root>/<sha[:2]>/<sha>.<ext>``,
written to a temporary file in the same folder, fsynced, renamed into place and the folder
fsynced, so after a crash a file either is complete or is a leftover ``.tmp-*`` that
:func:`skinstation.storage.recovery.recover` deletes. Reading verifies the sha256.

A store given data keys (``keys``: the station's or the engine's) keeps its files encrypted
at rest while :func:`~skinstation.core.crypto.encryption_enabled` says so: a file is
``Cipher.encrypt_blob(bytes, context=<its reference>)``, bound to its content address, and
reading decrypts and then verifies the sha256 of the plaintext. Files written before (or with
encryption off) are plaintext and read as they are. No plaintext copy is written anywhere.

Every entry point that receives image bytes (the engine's station ingest and provider
classification) first reads only the header (:func:`inspect_header`) and refuses an image over
the same :class:`ImageLimits` before anything decodes its pixels.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from skinstation.core.crypto import (
    BLOB_MAGIC,
    Cipher,
    DecryptionError,
    data_cipher,
    encryption_enabled,
)
from skinstation.core.files import (
    fsync_directory,
    private_file,
    write_atomically,
    write_temporary,
)

FORMAT_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "TIFF": "tif", "BMP": "bmp", "WEBP": "webp"}
ACCEPTED_FORMATS = ", ".join(FORMAT_EXTENSIONS)
PNG_COMPRESSION = 1  # zlib level 1: about the size of level 3 at 60% of the time


class ImageError(Exception):
    """Base class of the image-file errors (the station's storage and the engine's ingest)."""


class ImageMissingError(ImageError):
    """An image file is not on disk."""


class ImageIntegrityError(ImageError):
    """An image file does not hash to the sha256 recorded for it (tampered or corrupt)."""


class InvalidImageError(ImageError):
    """Bytes or an array handed to the store are not an image that can be kept."""


class UnreadableImageError(InvalidImageError):
    """The bytes are not an image file, or its header is damaged."""


class ImageLimitError(InvalidImageError):
    """The image's format or pixel size is outside what is accepted."""


@dataclass(frozen=True)
class EncodedImage:
    """Image bytes ready to store, with what the database records about them."""

    data: bytes
    sha256: str
    extension: str
    width: int
    height: int

    @property
    def ref(self) -> str:
        """The file's path relative to the store root, e.g. ``ab/ab12....png``."""
        return f"{self.sha256[:2]}/{self.sha256}.{self.extension}"


@dataclass(frozen=True)
class ImageLimits:
    """What an image entering the engine may be: its size in pixels.

    Attributes:
        max_pixels: Most pixels (width x height).
        max_side: Longest side, in pixels.
        min_side: Shortest side, in pixels.
    """

    max_pixels: int = 40_000_000
    max_side: int = 10_000
    min_side: int = 32

    def __post_init__(self) -> None:
        if self.min_side < 8 or self.max_side < self.min_side or self.max_pixels < 64:
            raise ValueError(f"image limits are inconsistent: {self}")


def inspect_header(data: bytes, limits: ImageLimits) -> EncodedImage:
    """Check an image's format and pixel size from its header alone (nothing is decoded).

    Returns:
        The bytes with their sha256, extension and pixel size.

    Raises:
        UnreadableImageError: Not an image file, or the header is damaged.
        ImageLimitError: A format not kept, or sides or pixel count outside ``limits``.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format or "", image.size
    except UnidentifiedImageError:
        raise UnreadableImageError(f"the upload is not an image file ({ACCEPTED_FORMATS})"
                                   ) from None
    except Image.DecompressionBombError:
        raise ImageLimitError(f"the image has too many pixels (at most {limits.max_pixels})"
                              ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise UnreadableImageError(f"the image header is damaged ({error})") from None
    if kind not in FORMAT_EXTENSIONS:
        raise ImageLimitError(f"image format {kind or 'unknown'} is not accepted (use "
                              f"{ACCEPTED_FORMATS})")
    if min(width, height) < limits.min_side:
        raise ImageLimitError(f"image is {width}x{height} pixels; both sides must be at least "
                              f"{limits.min_side}")
    if max(width, height) > limits.max_side or width * height > limits.max_pixels:
        raise ImageLimitError(f"image is {width}x{height} pixels; at most {limits.max_side} per "
                              f"side and {limits.max_pixels} pixels in all")
    return EncodedImage(data, hashlib.sha256(data).hexdigest(), FORMAT_EXTENSIONS[kind], width,
                        height)


def encode_image(image: bytes | np.ndarray) -> EncodedImage:
    """Prepare an image for storage, keeping encoded bytes unchanged.

    Args:
        image: Encoded bytes of a PNG/JPEG/TIFF/BMP/WebP image (kept as they are), or a
            uint8 array of shape (H, W) or (H, W, 3) in RGB order, or a uint16 (H, W) array
            (encoded to lossless PNG).

    Returns:
        The bytes with their sha256, extension and pixel size.

    Raises:
        InvalidImageError: If the bytes do not decode completely or the array is unsupported.
    """
    if isinstance(image, np.ndarray):
        data = _png_from_array(image)
        height, width = image.shape[:2]
        extension = "png"
    elif isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
        extension, width, height = _inspect_encoded(data)
    else:
        raise InvalidImageError(
            f"expected image bytes or a numpy array, got {type(image).__name__}"
        )
    return EncodedImage(data, hashlib.sha256(data).hexdigest(), extension, width, height)


def _inspect_encoded(data: bytes) -> tuple[str, int, int]:
    if not data:
        raise InvalidImageError("image bytes are empty")
    try:
        with Image.open(io.BytesIO(data)) as decoded:
            image_format = decoded.format or ""
            decoded.load()
            width, height = decoded.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise InvalidImageError(f"image bytes do not decode: {error}") from error
    if image_format not in FORMAT_EXTENSIONS:
        allowed = ", ".join(FORMAT_EXTENSIONS)
        raise InvalidImageError(f"image format {image_format or 'unknown'} not kept ({allowed})")
    return FORMAT_EXTENSIONS[image_format], width, height


def _png_from_array(array: np.ndarray) -> bytes:
    gray = array.ndim == 2
    rgb = array.ndim == 3 and array.shape[2] == 3
    if not (gray or rgb) or array.size == 0:
        raise InvalidImageError(f"array must be (H, W) or (H, W, 3), got shape {array.shape}")
    if array.dtype != np.uint8 and not (gray and array.dtype == np.uint16):
        raise InvalidImageError(f"array must be uint8 (or uint16 grayscale), got {array.dtype}")
    pixels = np.ascontiguousarray(array[:, :, ::-1] if rgb else array)  # OpenCV wants BGR
    ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise InvalidImageError("PNG encoding failed")
    return encoded.tobytes()


class ImageStore:
    """The folder of content-addressed image files.

    Args:
        root: Folder holding the files (created, owner-only, on first write).
        keys: Data keys that encrypt the files (see the module docstring); ``None`` keeps
            plaintext files (an encrypted one then cannot be read).
    """

    def __init__(self, root: Path, keys: str | None = None) -> None:
        self.root = Path(root)
        self.keys = keys

    @property
    def encrypts(self) -> bool:
        """Whether new files are written encrypted."""
        return self.keys is not None and encryption_enabled(self.keys)

    def _cipher(self, ref: str) -> Cipher:
        if self.keys is None:
            raise ImageIntegrityError(f"image file {ref} is encrypted, and this image store has "
                                      "no data keys to read it")
        return data_cipher(self.keys)

    def _seal(self, image: EncodedImage) -> bytes:
        if not self.encrypts:
            return image.data
        return self._cipher(image.ref).encrypt_blob(image.data, context=image.ref)

    def _open(self, ref: str, stored: bytes) -> bytes:
        """The plaintext of a stored file.

        Raises:
            DecryptionError: Its data key is not in the keyring.
            ImageIntegrityError: It does not decrypt (changed bytes, or another file's).
        """
        if not stored.startswith(BLOB_MAGIC):
            return stored
        cipher = self._cipher(ref)
        key_id = cipher.key_id_of_blob(stored)
        cipher.keys.key(key_id or "")  # a missing key is said as such, not as damage
        try:
            return cipher.decrypt_blob(stored, context=ref)
        except DecryptionError as error:
            raise ImageIntegrityError(f"image file {ref} fails its integrity check: "
                                      f"{error}") from None

    def _holds(self, path: Path, image: EncodedImage) -> bool:
        """Whether ``path`` already holds ``image``, stored as this store writes now."""
        try:
            stored = path.read_bytes()
            intact = hashlib.sha256(self._open(image.ref, stored)).hexdigest() == image.sha256
        except (OSError, ImageIntegrityError, DecryptionError):
            return False
        return intact and stored.startswith(BLOB_MAGIC) == self.encrypts

    def path_for(self, ref: str) -> Path:
        """Return the absolute path of a stored image reference.

        Raises:
            ValueError: If ``ref`` points outside the store.
        """
        path = (self.root / ref).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"image reference {ref!r} points outside the image store")
        return path

    def put(self, image: EncodedImage) -> str:
        """Store an image durably; return its reference.

        An intact file with the same content is reused (its modification time is refreshed
        so that start-up recovery treats it as fresh); a damaged one is replaced.

        Returns:
            The reference to record in the database (``image.ref``).
        """
        path = self.path_for(image.ref)
        if path.is_file() and self._holds(path, image):
            os.utime(path)
            private_file(path)  # a file kept from before owner-only writes
            return image.ref
        write_atomically(path, self._seal(image))
        return image.ref

    def stage(self, image: EncodedImage) -> StagedImage:
        """Write an image durably under a temporary name beside its place, not yet visible.

        The slow part (writing and fsyncing the bytes) happens here, before the caller's
        transaction; :meth:`StagedImage.publish` later only renames the file into place, and
        :meth:`StagedImage.discard` deletes it if the rows were not stored. An intact file
        with the same content is reused (nothing is written; discarding leaves it alone).
        """
        path = self.path_for(image.ref)
        if path.is_file() and self._holds(path, image):
            os.utime(path)
            return StagedImage(image.ref, path, None)
        return StagedImage(image.ref, path, write_temporary(path.parent, self._seal(image)))

    def read(self, ref: str, sha256: str) -> bytes:
        """Read a stored image and check it is the one recorded.

        Raises:
            ImageMissingError: If the file is gone.
            ImageIntegrityError: If its bytes (decrypted) do not hash to ``sha256``, or an
                encrypted file does not decrypt.
            DecryptionError: The file's data key is not in the keyring.
        """
        path = self.path_for(ref)
        try:
            stored = path.read_bytes()
        except FileNotFoundError as error:
            raise ImageMissingError(f"image file {ref} is missing from {self.root}") from error
        data = self._open(ref, stored)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ImageIntegrityError(
                f"image file {ref} fails its integrity check: sha256 is {actual}, "
                f"expected {sha256} (file altered or corrupted)"
            )
        return data

    def intact(self, ref: str, sha256: str) -> bool:
        """Whether the file of ``ref`` reads (decrypts) and hashes to ``sha256``.

        Raises:
            DecryptionError: The file's data key is not in the keyring.
        """
        try:
            self.read(ref, sha256)
        except (ImageMissingError, ImageIntegrityError):
            return False
        return True

    def reencrypt(self, ref: str, sha256: str) -> bool:
        """Write a file again under the current data key (atomically); False if it was already.

        A plaintext file is encrypted only while encryption is enabled.

        Raises:
            ImageMissingError, ImageIntegrityError, DecryptionError: As :meth:`read`; the
                file is left as it was.
        """
        data = self.read(ref, sha256)
        with open(self.path_for(ref), "rb") as handle:
            head = handle.read(64)
        if not head.startswith(BLOB_MAGIC) and not self.encrypts:
            return False
        cipher = self._cipher(ref)
        if cipher.key_id_of_blob(head) == cipher.keys.current_id():
            return False
        write_atomically(self.path_for(ref), cipher.encrypt_blob(data, context=ref))
        return True

    def files(self) -> Iterator[Path]:
        """Yield every file in the store, including leftover temporary files."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir():
                yield from sorted(p for p in folder.iterdir() if p.is_file())
            elif folder.is_file():
                yield folder

    def ref_of(self, path: Path) -> str:
        """Return the reference of a file inside the store."""
        return path.relative_to(self.root).as_posix()


class StagedImage:
    """An image file written by :meth:`ImageStore.stage`, published or discarded once.

    Args:
        ref: The reference it will have (``<sha[:2]>/<sha>.<ext>``).
        path: Its final path.
        temp: The temporary file holding it, or ``None`` if an intact copy is already there.
    """

    def __init__(self, ref: str, path: Path, temp: Path | None) -> None:
        self.ref = ref
        self.path = path
        self.temp = temp

    def publish(self) -> str:
        """Rename the file into place (durably); return its reference."""
        if self.temp is not None:
            os.replace(self.temp, self.path)
            self.temp = None
            fsync_directory(self.path.parent)
        return self.ref

    def discard(self) -> None:
        """Delete the temporary file if it was not published (a published file stays)."""
        if self.temp is not None:
            with contextlib.suppress(FileNotFoundError):
                self.temp.unlink()
            self.temp = None

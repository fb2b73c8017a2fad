"""The two model-file formats (TorchScript ``*.pt``, AOTInductor package ``*.pt2``): checking a
requested format against its path and options, and telling files apart by their zip contents."""

import os
import zipfile
from pathlib import Path

from gnnff.errors import UsageError

from .. import contract

__all__ = ["check_format", "is_package", "is_torchscript", "zip_names"]


def check_format(
    format: str,
    path: str | os.PathLike[str],
    device: str = "cpu",
    max_atoms: int | None = None,
    max_edges: int | None = None,
) -> None:
    """UsageError (a ValueError), before anything is compiled or written, for an unknown
    ``format`` (listing the valid ones), a ``path`` whose extension is the other format's
    (loaders pick the format by extension), options of the other format, or bounds < 1."""
    if format not in contract.FORMATS:
        raise UsageError(
            f"unknown model format {format!r}; valid formats: {', '.join(contract.FORMATS)}"
        )
    suffix = Path(path).suffix
    want = contract.FORMAT_SUFFIX[format]
    other = [f for f, s in contract.FORMAT_SUFFIX.items() if s == suffix and f != format]
    if other or (format == "aoti" and suffix != want):
        raise UsageError(
            f"{path}: a model file of format {format!r} must end in {want} (loaders choose "
            "the format by "
            f"the extension); use --out {Path(path).with_suffix(want).name}"
        )
    if format == "torchscript" and (device != "cpu" or max_atoms or max_edges):
        raise UsageError(
            "--device, --max-atoms and --max-edges apply to --format aoti; a TorchScript file "
            "runs on any device and size"
        )
    for name, bound in (("max_atoms", max_atoms), ("max_edges", max_edges)):
        if bound is not None and (isinstance(bound, bool) or int(bound) < 1):
            raise UsageError(f"{name} must be a positive integer or None, got {bound!r}")
    if format == "aoti":
        from ..device import resolve_device

        resolve_device(device)  # a CUDA package needs a GPU where it is compiled


def zip_names(path: Path) -> list[str] | None:
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def is_torchscript(path: Path) -> bool:
    names = zip_names(path)
    return names is not None and any(n.endswith("/constants.pkl") for n in names)


def is_package(path: str | os.PathLike[str]) -> bool:
    """True for a path named as an AOTInductor package (``*.pt2``)."""
    return Path(path).suffix == contract.FORMAT_SUFFIX["aoti"]

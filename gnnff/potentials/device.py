"""Turn a user's device string into a torch.device, with a message that says what to use."""

from __future__ import annotations

import torch

from gnnff.errors import UsageError


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> torch.device; ValueError when torch cannot
    use it (an unknown name, or CUDA asked for where torch sees no GPU)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"device {device!r} asked for, but torch sees no CUDA device; "
                "use 'cpu' (or install a CUDA build of torch on a GPU machine)"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"device {device!r}: torch sees {torch.cuda.device_count()} GPU(s)")
    elif dev.type != "cpu":
        raise UsageError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return dev


def configure_torchscript(device: torch.device) -> None:
    """TorchScript settings for models run on ``device``.

    On CUDA the graph executor fuses elementwise chains into kernels compiled for the tensor
    shapes it has seen; MD changes the number of edges at every step, so the default strategy
    (a few shape-specialised compilations first) recompiles for the first calls of every new
    edge count, seconds each. ``DYNAMIC`` fusion compiles shape-generic kernels once (the
    setting the nequip/Allegro LAMMPS pair styles use). The setting is global to the process;
    on CPU nothing changes (no fusion there by default).
    """
    if device.type == "cuda":
        torch.jit.set_fusion_strategy([("DYNAMIC", 10)])

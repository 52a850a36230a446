"""Choosing where to compute: CUDA with mixed precision and channels_last when present, else CPU."""

from __future__ import annotations

import contextlib

import torch

from tladvisor.errors import TLAdvisorError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; ``cpu``/``cuda``/``cuda:1`` are taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TLAdvisorError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    return device


def autocast(device: torch.device):
    """Mixed precision on CUDA (bf16 where supported, else fp16); a no-op on CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to the device; channels_last on CUDA, where convolutions run faster in that layout."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def prepare_batch(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    if device.type == "cuda" and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda ({torch.cuda.get_device_name(index)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'' if threads == 1 else 's'})"

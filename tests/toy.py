"""A tiny network and dataset that meet the contract, for fast CPU tests of the wrapper."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from dmt_wrap.config import DMTConfig
from dmt_wrap.filtering import PseudoLabelConfig
from dmt_wrap.wrapper import DualMeanTeacher

#: Pseudo-label settings loose enough that a few-step toy run keeps labels.
TOY_LABELS = PseudoLabelConfig(delta=0.5, tau=0.3)


class SquaresDataset(Dataset):
    """16x16 images with one bright square (the 'source') on noise; mask = the square.

    Deterministic per index. The audio is a short noise vector whose mean encodes the
    square's row, so both modalities carry signal.
    """

    def __init__(self, length: int = 64, size: int = 16, seed: int = 0, with_mask: bool = True) -> None:
        self.length, self.size, self.seed, self.with_mask = length, size, seed, with_mask

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + index)
        side = self.size // 2
        top, left = torch.randint(0, self.size - side + 1, (2,), generator=g).tolist()
        image = 0.3 * torch.rand(3, self.size, self.size, generator=g)
        mask = torch.zeros(self.size, self.size)
        mask[top:top + side, left:left + side] = 1.0
        image = image + 0.6 * mask
        audio = torch.randn(32, generator=g) * 0.1 + top / self.size
        item = {"image": image, "audio": audio, "index": torch.tensor(index)}
        if self.with_mask:
            item["mask"] = mask
        return item


class ToyNet(nn.Module):
    """Two convolutions -> an 8x8 map; a small self-supervised loss (audio-visual agreement).

    ``dropout`` > 0 drops visual features in training mode, as FNAC and SLAVC do: a network
    whose training forward draws from the global RNG.
    """

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        layers = [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1)]
        self.visual = nn.Sequential(*layers, *([nn.Dropout(dropout)] if dropout > 0 else []))
        self.audio = nn.Linear(32, 8)

    def forward(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        v = self.visual(images)
        a = self.audio(audio)
        sim = torch.einsum("bchw,bc->bhw", F.normalize(v, dim=1), F.normalize(a, dim=1))
        loss = (1 - sim.amax(dim=(1, 2))).mean() if self.training else None
        return sim, loss


#: A schedule of a few steps for the fault and bad-input tests.
TINY = DMTConfig(warmup_steps=3, steps=2, steps_per_epoch=3, batch_size=6, labeled_batch_size=3, lr=3e-3,
                 ema_decay=0.5, pseudo_labels=TOY_LABELS)


def toy_data() -> tuple[SquaresDataset, SquaresDataset]:
    """A labeled set of 6 squares and an unlabeled one of 12."""
    return SquaresDataset(6, seed=1), SquaresDataset(12, seed=2, with_mask=False)


def fit(model: DualMeanTeacher, checkpoint_dir: Path | None = None, resume: bool = False) -> list[dict]:
    """``model`` trained on ``toy_data`` (``TINY``'s schedule when built with it)."""
    return model.fit(*toy_data(), checkpoint_dir=checkpoint_dir, resume=resume, progress=False)

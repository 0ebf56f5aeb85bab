"""Shared by ``test_distributed.py`` and the torchrun worker it launches."""
from __future__ import annotations

from torch import nn

from dmt_wrap import DMTConfig
from dmt_wrap.augment import AugmentConfig
from tests.toy import SquaresDataset, TOY_LABELS, ToyNet

WORLD_SIZE = 2

#: Identity views: each rank seeds its own augmentation, so only without augmentation can
#: a parallel run be compared sample for sample with one process.
NO_AUGMENTATION = AugmentConfig(weak_flip_p=0.0, strong_scale=(1.0, 1.0), strong_flip_p=0.0, colour_strength=0.0,
                                grayscale_p=0.0, audio_gain_db=0.0, audio_noise_snr_db=float("inf"),
                                audio_mask_fraction=0.0)

#: Per rank; one process with WORLD_SIZE times these batches sees the same global batches.
PER_RANK = DMTConfig(warmup_steps=4, steps=4, steps_per_epoch=4, batch_size=8, labeled_batch_size=4, lr=3e-3,
                     ema_decay=0.5, pseudo_labels=TOY_LABELS, augment=NO_AUGMENTATION)
SINGLE_PROCESS = PER_RANK.replace(batch_size=PER_RANK.batch_size * WORLD_SIZE,
                                  labeled_batch_size=PER_RANK.labeled_batch_size * WORLD_SIZE)


class FlatToyNet(ToyNet):
    """ToyNet without BatchNorm.

    BatchNorm normalises each rank's batch by that batch's own statistics, which differ
    from the global batch's, so a parallel run with BatchNorm is not the single-process
    run with the global batch (``nn.SyncBatchNorm`` would make it so). Without it every
    sample's forward is independent of the others and the two runs must agree.
    """

    def __init__(self) -> None:
        super().__init__()
        self.visual[1] = nn.Identity()


def toy_data() -> tuple[SquaresDataset, SquaresDataset]:
    return SquaresDataset(16, seed=1), SquaresDataset(48, seed=2)

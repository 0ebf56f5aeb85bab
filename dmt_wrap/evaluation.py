"""Running any localizer over a test set and scoring it with the field's protocol."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from dmt_wrap.contract import check_finite_map, parse_output
from dmt_wrap.metrics import EvalProtocol, MetricAccumulator, get_protocol, map_confidence

LocalizeFn = Callable[[Tensor, Tensor], object]


def evaluate_model(localize_fn: LocalizeFn, dataset: Dataset, batch_size: int = 32,
                   device: str | torch.device = "cpu", *, num_workers: int = 0,
                   progress: bool = True, accumulator: MetricAccumulator | None = None,
                   protocol: str | EvalProtocol | None = None) -> dict[str, float]:
    """Score ``localize_fn(images, audio) -> maps [B, h, w]`` on ``dataset``.

    Items need ``image``, ``audio`` and ``mask`` (the ground truth ``G``); an item with a
    ``sounding`` flag (extended protocol) also gets the SLAVC confidence, so the summary
    then holds ``ext_ap`` and ``ext_f1``. ``localize_fn`` may return a contract-style
    ``(map, loss)`` tuple; the loss is ignored. Pass an ``accumulator`` to keep the
    per-image numbers (``accumulator.per_image()``). Returns ``MetricAccumulator.compute()``.

    ``protocol`` names the published evaluator to follow (``dmt_wrap.metrics.PROTOCOLS``;
    default ``"benchmark"``); an ``accumulator`` brings its own. The protocol's upsampling
    acts on maps smaller than the ground truth: ``DualMeanTeacher.localize`` already returns
    maps at the images' size (upsampled like ``"benchmark"``), so on data whose ground truth
    has the images' size only the protocol's binarisation and confidence apply to them.
    """
    device = torch.device(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    if accumulator is not None and protocol is not None and get_protocol(protocol) != accumulator.protocol:
        raise ValueError(f"protocol={get_protocol(protocol).name!r} but the accumulator scores with {accumulator.protocol.name!r}; "
                         "give one of them.")
    accumulator = MetricAccumulator(protocol) if accumulator is None else accumulator
    with torch.inference_mode():
        for number, batch in enumerate(tqdm(loader, desc="evaluating", unit="batch",
                                            disable=not progress)):
            if "mask" not in batch:
                raise ValueError("dataset items have no 'mask': evaluation needs ground truth "
                                 "(Flickr-SoundNet: a test list with Annotations/ XMLs).")
            images = batch["image"].to(device, non_blocking=True)
            audio = batch["audio"].to(device, non_blocking=True)
            output = parse_output(localize_fn(images, audio), images.shape[0], "localize_fn")
            if number == 0:
                check_finite_map(output, "localize_fn")
            sounding = batch.get("sounding")
            mask = batch["mask"].to(output.map.device)
            confidence = (None if sounding is None
                          else map_confidence(output.map, mask.shape[-2:], accumulator.protocol))
            accumulator.update(output.map, mask, confidence, sounding)
    return accumulator.compute()

"""SLAVC's extended test sets: the sounding test pairs plus non-sounding pairs.

Mo & Morgado (NeurIPS 2022) add to the Flickr-SoundNet and VGG-SS test sets pairs of a
frame with the audio of a different clip, whose ground truth is empty. A model's
confidence per pair is then scored with AP and max-F1 (``metrics.extended_ap_f1``) next to
the localisation metrics, so a model that points at something for any audio is penalised.

Pairs file: one pair a line, ``frame_id audio_id``, separated by whitespace or by a comma.
Equal ids are the test set's own sounding pair; different ids a non-sounding pair. SLAVC
publishes its lists as ``*_plus_silent.csv`` rows ``frame_id,audio_id,label``, which are
read as they are: the optional third column must say ``non-sounding`` exactly when the
ids differ. ``generate_pairs`` builds such a list for users without SLAVC's files.
"""
from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from dmt_wrap.datasets.media import Boxes, DataError, FrameAudioDataset, PairEntry, read_lines

NON_SOUNDING = "non-sounding"  # SLAVC's label column for a non-sounding pair


def split_pair_line(line: str) -> list[str]:
    """The fields of one pairs-file line: comma-separated (csv quoting, as SLAVC's files,
    whose class labels may hold spaces) when it has a comma, else whitespace-separated."""
    if "," in line:
        return [field.strip() for field in next(csv.reader([line]))]
    return line.split()


class ExtendedPairs(FrameAudioDataset):
    """The pairs of a pairs file, drawn from an annotated test set ``base``.

    A pair ``frame_id audio_id`` reads the frame of ``frame_id`` and the audio of
    ``audio_id`` from ``base``'s files. Items are ``base``'s (``image``, ``audio``,
    ``mask``, ``index``) plus ``sounding``, a bool tensor as the composed benchmark's
    negatives carry; a non-sounding pair's ``mask`` is all zeros (no boxes), so
    ``evaluate_model`` scores localisation over the sounding pairs and AP / max-F1 over
    all of them.

    ``pairs_file`` is relative to ``base.root`` or absolute. A line with a wrong number of
    fields, an id that is not in ``base`` (unlisted, or skipped there for a bad file) or a
    label that contradicts its ids is a ``DataError`` naming the file and line; under
    ``on_error="skip"`` (default: ``base``'s policy) it is dropped and recorded in
    ``skipped``, so ``len(skipped)`` counts the dropped lines.
    """

    def __init__(self, base: FrameAudioDataset, pairs_file: str | Path, *,
                 on_error: str | None = None) -> None:
        super().__init__(base.root, image_size=base.image_size, sample_rate=base.sample_rate,
                         duration=base.duration,
                         on_error=base.on_error if on_error is None else on_error,
                         allow_silent=base.allow_silent)
        self.base = base
        self.pairs_path = self.root / pairs_file
        if any(entry.boxes is None for entry in base.entries):
            raise DataError(f"{self.pairs_path}: the test set under {base.root} has no "
                            "annotations; the extended protocol needs the annotated test set "
                            "(Flickr: masks=True; VGG-SS: the vggss.json boxes).",
                            self.pairs_path)
        self.sounding: list[bool] = []
        known = {entry.name: entry for entry in base.entries}
        for number, fields in self._read_lines():
            try:
                self._add_pair(fields, known, f"{self.pairs_path} line {number}")
            except DataError as error:
                self.reject(error)
        if not any(self.sounding):
            raise DataError(f"{self.pairs_path}: no sounding pair (a line with equal ids) was "
                            "read; AP and max-F1 need the test set's own pairs as positives.",
                            self.pairs_path)

    def boxes_to_mask(self, boxes: Boxes) -> Tensor:
        return self.base.boxes_to_mask(boxes)

    def _read_lines(self) -> list[tuple[int, list[str]]]:
        lines = read_lines(self.pairs_path, "pairs file", "with one 'frame_id audio_id' pair per line")
        return [(number, split_pair_line(line))
                for number, line in enumerate(lines, start=1) if line.strip()]

    def _add_pair(self, fields: list[str], known: dict[str, PairEntry], where: str) -> None:
        if len(fields) not in (2, 3) or not all(fields[:2]):
            raise DataError(f"{where}: {len(fields)} field(s) {fields}; expected 'frame_id "
                            "audio_id' (or SLAVC's 'frame_id,audio_id,label'); fix or remove "
                            "the line.", self.pairs_path)
        frame_id, audio_id = fields[:2]
        sounding = frame_id == audio_id
        if len(fields) == 3 and (fields[2] == NON_SOUNDING) == sounding:
            raise DataError(f"{where}: label {fields[2]!r} contradicts the ids ({frame_id!r}, "
                            f"{audio_id!r}): a pair is {NON_SOUNDING!r} exactly when its ids "
                            "differ; fix the line.", self.pairs_path)
        for name in (frame_id, audio_id):
            if name not in known:
                raise DataError(f"{where}: id {name!r} is not in the test set under "
                                f"{self.root} (not listed, or skipped for a bad file); add it "
                                "or remove the line.", self.pairs_path)
        frame = known[frame_id]
        boxes = frame.boxes if sounding else ()
        self.entries.append(PairEntry(f"{frame_id} {audio_id}", frame.frame,
                                      known[audio_id].audio, boxes))
        self.sounding.append(sounding)

    def _load(self, position: int) -> dict[str, Tensor | int]:
        item = super()._load(position)
        item["sounding"] = torch.tensor(self.sounding[position])
        return item


def generate_pairs(ids: Sequence[str], seed: int = 0) -> list[tuple[str, str]]:
    """An extended pairs list from test ids: every id once as its own (sounding) pair, then
    every id's frame with the audio of a different id drawn at random.

    Deterministic in ``(ids, seed)``; a frame is never paired with its own audio in the
    non-sounding half. Ids must be distinct and hold no whitespace or comma (the file's
    separators).
    """
    ids = list(ids)
    if len(ids) < 2:
        raise ValueError(f"generate_pairs needs at least 2 ids to pair a frame with another "
                         f"clip's audio; got {len(ids)}.")
    if len(set(ids)) != len(ids):
        raise ValueError("generate_pairs: the ids are not distinct; remove the duplicates.")
    bad = [name for name in ids if not name or "," in name or len(name.split()) != 1]
    if bad:
        raise ValueError(f"generate_pairs: ids {bad[:3]} are empty or hold whitespace or a "
                         "comma, which the pairs file uses as separators.")
    rng = random.Random(seed)
    negatives = []
    for position, frame_id in enumerate(ids):
        other = rng.randrange(len(ids) - 1)
        negatives.append((frame_id, ids[other + (other >= position)]))  # skips the frame's own
    return [(name, name) for name in ids] + negatives


def write_pairs(path: str | Path, pairs: Sequence[tuple[str, str]]) -> None:
    """Write ``pairs`` as a pairs file (``frame_id audio_id`` per line)."""
    Path(path).write_text("".join(f"{frame_id} {audio_id}\n" for frame_id, audio_id in pairs))

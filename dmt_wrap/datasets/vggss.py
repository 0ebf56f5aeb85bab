"""VGG-Sound Source (Chen et al.): frames, audio clips and ``vggss.json`` boxes.

Layout (as published)::

    root/frames/<file>.jpg
    root/audio/<file>.wav      (or .flac / .ogg)
    root/vggss.json            [{"file": ..., "class": ..., "bbox": [[x0, y0, x1, y1], ...]}, ...]

Boxes are normalised to [0, 1]; ``G`` is their union. An entry with an empty ``bbox``
list is legal (two of the 5,158 test clips): its mask is all zeros and it scores 0.
VGG-Sound training clips have no boxes: with ``masks=False`` the loader reads a plain id
list (one ``<file>`` per line) instead of the JSON.
"""
from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor

from dmt_wrap.datasets.boxes import vggss_gt
from dmt_wrap.datasets.media import Boxes, DataError, FrameAudioDataset, check_box

REQUIRED_KEYS = ("file", "bbox")
# Published boxes are rounded: up to a fifth of a 224-pixel step outside [0, 1] is
# clipped (as the original code clips), anything further is an error.
BOX_TOLERANCE = 1e-3


class VGGSoundSource(FrameAudioDataset):
    """VGG-SS pairs with the union-of-boxes ground truth as ``mask``.

    ``annotation_file`` is relative to ``root`` (or absolute): a JSON in ``vggss.json``'s
    format, or with ``masks=False`` a text file of ids, one per line (an unlabeled
    training pool: items have no ``mask``). Item format and ``on_error`` policy: see
    ``FrameAudioDataset``.
    """

    def __init__(self, root: str | Path, annotation_file: str | Path = "vggss.json", *,
                 masks: bool = True, image_size: int = 224, sample_rate: int = 16000,
                 duration: float = 3.0, on_error: str = "raise",
                 allow_silent: bool = False) -> None:
        super().__init__(root, image_size=image_size, sample_rate=sample_rate,
                         duration=duration, on_error=on_error, allow_silent=allow_silent)
        path = self.root / annotation_file
        if masks:
            self._add_annotated(path)
        else:
            self._add_ids(path)

    def _add_annotated(self, json_path: Path) -> None:
        entries = self._read_entries(json_path)
        for number, entry in enumerate(entries):
            where = f"{json_path} entry {number}"
            try:
                name, boxes = self._parse_entry(entry, where, json_path)
            except DataError as error:
                self.reject(error)
                continue
            self.add_entry(name, f"{where} ({name!r})", boxes)
        self.report_coverage(len(entries), json_path)

    def _add_ids(self, list_path: Path) -> None:
        if list_path.suffix.lower() == ".json":
            raise DataError(f"{list_path}: masks=False reads a plain id list (one clip id per "
                            "line), not a JSON; pass a text list of ids, or masks=True to read "
                            "the annotations.", list_path)
        names = self.read_id_list(list_path.resolve())  # list_path already holds the root
        for name, where in names:
            self.add_entry(name, where, None)
        self.report_coverage(len(names), list_path)

    def boxes_to_mask(self, boxes: Boxes) -> Tensor:
        return vggss_gt(boxes, size=self.image_size)

    @staticmethod
    def _read_entries(json_path: Path) -> list[object]:
        try:
            entries = json.loads(json_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"{json_path}: cannot read the annotation JSON ({err}); restore "
                            "vggss.json (a list of {\"file\", \"class\", \"bbox\"} objects).",
                            json_path) from err
        if not isinstance(entries, list):
            raise DataError(f"{json_path}: top level is a {type(entries).__name__}; a list of "
                            "{\"file\", \"class\", \"bbox\"} objects is expected.", json_path)
        return entries

    @staticmethod
    def _parse_entry(entry: object, where: str, json_path: Path) -> tuple[str, Boxes]:
        if not isinstance(entry, dict):
            raise DataError(f"{where}: is a {type(entry).__name__}, not an object with keys "
                            f"{REQUIRED_KEYS}; fix the entry.", json_path)
        missing = [key for key in REQUIRED_KEYS if key not in entry]
        if missing:
            raise DataError(f"{where}: missing key(s) {missing}; each entry needs "
                            f"{REQUIRED_KEYS} (and usually \"class\").", json_path)
        name, boxes = entry["file"], entry["bbox"]
        if not isinstance(name, str):
            raise DataError(f"{where}: \"file\" is {name!r}, not a string; fix the entry.",
                            json_path)
        if not isinstance(boxes, list) or not all(isinstance(box, list) for box in boxes):
            raise DataError(f"{where} ({name!r}): \"bbox\" is {boxes!r}; a list of "
                            "[x0, y0, x1, y1] lists (possibly empty) is expected.", json_path)
        checked = tuple(check_box(box, 1.0, f"{where} ({name!r}) box {number}", json_path,
                                  tolerance=BOX_TOLERANCE)
                        for number, box in enumerate(boxes))
        return name, checked

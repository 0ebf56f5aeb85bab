"""Flickr-SoundNet (Senocak et al.): frames, 3 s audio clips and per-image annotation XMLs.

Layout (as published)::

    root/frames/<id>.jpg
    root/audio/<id>.wav        (or .flac / .ogg)
    root/Annotations/<id>.xml  (test images: several annotators' boxes, 256x256 pixels)
    <list file>                (one id per line: a train or test split)
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from torch import Tensor

from dmt_wrap.datasets.boxes import FLICKR_ANNOTATION_SIZE, flickr_gt
from dmt_wrap.datasets.media import Boxes, DataError, FrameAudioDataset, check_box

BOX_TAGS = ("bndbox", "bbox")
COORDINATE_TAGS = ("xmin", "ymin", "xmax", "ymax")


def parse_flickr_xml(path: Path) -> Boxes:
    """All annotators' boxes ``(x0, y0, x1, y1)`` in 256x256 pixels from one XML file.

    Boxes are the ``<bndbox>`` (or ``<bbox>``) elements anywhere in the file, read by
    their ``<xmin> <ymin> <xmax> <ymax>`` children.
    """
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as err:
        raise DataError(f"{path}: malformed or unreadable annotation XML ({err}); restore "
                        "the file or remove its id from the list.", path) from err
    boxes = []
    nodes = [node for node in tree.iter() if node.tag in BOX_TAGS]
    for number, node in enumerate(nodes):
        where = f"{path} box {number}"
        coordinates = []
        for tag in COORDINATE_TAGS:
            child = node.find(tag)
            try:
                coordinates.append(float(child.text))  # type: ignore[union-attr,arg-type]
            except (AttributeError, TypeError, ValueError):
                raise DataError(f"{where}: <{tag}> is missing or not a number; each "
                                f"<{node.tag}> needs numeric {', '.join(COORDINATE_TAGS)}.",
                                path) from None
        boxes.append(check_box(coordinates, FLICKR_ANNOTATION_SIZE, where, path))
    if not boxes:
        raise DataError(f"{path}: annotation XML holds no <bndbox> box; restore the file or "
                        "remove its id from the list.", path)
    return tuple(boxes)


class FlickrSoundNet(FrameAudioDataset):
    """Flickr-SoundNet pairs, with the consensus ground truth ``G`` (0 / 0.5 / 1) as ``mask``.

    ``list_file``: the split's id list, relative to ``root`` or absolute; None means every
    id with an annotation XML (the test set). ``masks``: True requires an XML for every
    id, False ignores annotations (training lists), None decides from the files (all or
    none must have one). Item format and ``on_error`` policy: see ``FrameAudioDataset``.
    """

    def __init__(self, root: str | Path, list_file: str | Path | None = None, *,
                 masks: bool | None = None, image_size: int = 224, sample_rate: int = 16000,
                 duration: float = 3.0, on_error: str = "raise",
                 allow_silent: bool = False) -> None:
        super().__init__(root, image_size=image_size, sample_rate=sample_rate,
                         duration=duration, on_error=on_error, allow_silent=allow_silent)
        annotations = self.root / "Annotations"
        names = self._read_names(list_file, annotations)
        xml_paths = {name: annotations / f"{name}.xml" for name, _ in names}
        if masks is None:
            masks = self._annotated(xml_paths)
        for name, where in names:
            try:
                boxes = self._boxes(xml_paths[name], where) if masks else None
            except DataError as error:
                self.reject(error)
                continue
            self.add_entry(name, where, boxes)
        self.report_coverage(len(names), self.root / list_file if list_file is not None else annotations)

    def boxes_to_mask(self, boxes: Boxes) -> Tensor:
        return flickr_gt(boxes, size=self.image_size)

    def _read_names(self, list_file: str | Path | None,
                    annotations: Path) -> list[tuple[str, str]]:
        """Ids (safe to join under the root), in order, with where each came from."""
        if list_file is None:
            if not annotations.is_dir():
                raise DataError(f"{annotations} does not exist: pass list_file (a text file "
                                "of ids) or add the Annotations/ folder.", annotations)
            return [(path.stem, str(path)) for path in sorted(annotations.glob("*.xml"))]
        return self.read_id_list(list_file)

    @staticmethod
    def _annotated(xml_paths: dict[str, Path]) -> bool:
        present = [name for name, path in xml_paths.items() if path.is_file()]
        if len(present) in (0, len(xml_paths)):
            return bool(present)
        missing = [name for name in xml_paths if not xml_paths[name].is_file()][:3]
        raise DataError(f"{len(present)} of {len(xml_paths)} ids have an annotation XML "
                        f"(missing e.g. {missing}); pass masks=True to require one per id "
                        "or masks=False to ignore annotations.")

    @staticmethod
    def _boxes(xml_path: Path, where: str) -> Boxes:
        if not xml_path.is_file():
            raise DataError(f"{where}: annotation {xml_path} is missing; restore it, remove "
                            "the id, or pass masks=False.", xml_path)
        return parse_flickr_xml(xml_path)

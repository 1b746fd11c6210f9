"""Sources that repeat their planes: the phases of a cine, written into one SEG.

A cine result (say end diastole and end systole of a short-axis stack) has two source images
at every plane, one per phase. highdicom builds a SEG from sources with distinct planes only,
so the sources are split into layers (the k-th source at a plane belongs to layer k; every
layer holds every plane once), each segment must lie in one layer, and the SEG is built on the
first layer's sources with one binary mask per segment; then every frame's derivation
reference is pointed at the source of its segment's layer at its plane, and the other layers'
instances are added to the referenced series. A frame of an end-systole segment so derives
from the end-systole image at that plane (PS3.3 C.7.6.16.2.6).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from seg_writer.errors import WriterInputError
from seg_writer.sources import SourceImage, source_position

__all__ = ["SourceLayers", "fix_layer_references", "layered_masks", "source_layers"]

_SAME_PLANE_MM = 1e-3


@dataclass(frozen=True)
class SourceLayers:
    """layers[j][p]: the index (into the sources) of plane p's source in layer j; planes in
    the order the first layer's sources are given."""

    layers: tuple[tuple[int, ...], ...]
    heights: tuple[float, ...]  # plane p's position along the normal, mm


def _normal(sources: Sequence[SourceImage]) -> npt.NDArray[np.float64]:
    dataset = sources[0].dataset
    if sources[0].frame_number is None:
        orientation = dataset.ImageOrientationPatient
    else:
        shared = dataset.SharedFunctionalGroupsSequence[0]
        orientation = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    values = [float(v) for v in orientation]
    normal: npt.NDArray[np.float64] = np.cross(values[:3], values[3:])
    return normal


def source_layers(sources: Sequence[SourceImage]) -> SourceLayers | None:
    """The sources' layers, or None when no plane repeats (the usual case)."""
    normal = _normal(sources)
    heights = [float(np.asarray(source_position(s)) @ normal) for s in sources]
    planes: list[float] = []
    members: list[list[int]] = []
    for index, height in enumerate(heights):
        for plane, known in enumerate(planes):
            if abs(known - height) < _SAME_PLANE_MM:
                members[plane].append(index)
                break
        else:
            planes.append(height)
            members.append([index])
    counts = {len(group) for group in members}
    if counts == {1}:
        return None
    if len(counts) != 1:
        raise WriterInputError(
            "source planes repeat unevenly: every plane needs the same number of sources "
            "(one per phase)"
        )
    depth = counts.pop()
    layers = tuple(tuple(group[j] for group in members) for j in range(depth))
    return SourceLayers(layers, tuple(planes))


def layered_masks(
    label_map: npt.NDArray[np.integer], labels: Sequence[int], layers: SourceLayers
) -> tuple[npt.NDArray[np.bool_], list[int]]:
    """One mask per label on the first layer's planes, (planes, rows, columns, labels), and
    the layer of each label; a label with voxels in two layers is refused."""
    first = list(layers.layers[0])
    masks = np.zeros((len(first), *label_map.shape[1:], len(labels)), dtype=bool)
    layer_of = []
    for position, label in enumerate(labels):
        found = [
            j for j, layer in enumerate(layers.layers) if np.any(label_map[list(layer)] == label)
        ]
        if len(found) != 1:
            raise WriterInputError(
                f"segment {label} has voxels in {len(found)} source layers (phases); "
                "each segment lies in one"
            )
        masks[..., position] = label_map[list(layers.layers[found[0]])] == label
        layer_of.append(found[0])
    return masks, layer_of


def fix_layer_references(
    segmentation: hd.seg.Segmentation,
    sources: Sequence[SourceImage],
    layers: SourceLayers,
    layer_of_segment: dict[int, int],
) -> None:
    """Point each frame's derivation at the source of its segment's layer at its plane, and
    list every layer's instances in the Referenced Series Sequence."""
    normal = _normal(sources)
    for frame in segmentation.PerFrameFunctionalGroupsSequence:
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        height = float(np.asarray(position) @ normal)
        plane = int(np.argmin([abs(h - height) for h in layers.heights]))
        source = sources[layers.layers[layer_of_segment[number]][plane]]
        # highdicom may share one derivation item between the frames of a plane: own a copy
        frame.DerivationImageSequence = copy.deepcopy(frame.DerivationImageSequence)
        for derivation in frame.DerivationImageSequence:
            for reference in derivation.SourceImageSequence:
                reference.ReferencedSOPClassUID = source.dataset.SOPClassUID
                reference.ReferencedSOPInstanceUID = source.dataset.SOPInstanceUID
                if source.frame_number is not None:
                    reference.ReferencedFrameNumber = source.frame_number
    series = segmentation.ReferencedSeriesSequence[0]
    listed = {str(item.ReferencedSOPInstanceUID) for item in series.ReferencedInstanceSequence}
    extra = []
    for layer in layers.layers:
        for index in layer:
            dataset = sources[index].dataset
            if str(dataset.SOPInstanceUID) not in listed:
                listed.add(str(dataset.SOPInstanceUID))
                item = Dataset()
                item.ReferencedSOPClassUID = dataset.SOPClassUID
                item.ReferencedSOPInstanceUID = dataset.SOPInstanceUID
                extra.append(item)
    if extra:
        series.ReferencedInstanceSequence = DicomSequence(
            [*series.ReferencedInstanceSequence, *extra]
        )

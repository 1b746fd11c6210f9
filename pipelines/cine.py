"""A cine series as the pipelines that take one receive it: one volume per cardiac phase.

Every phase is an `ImageVolume` on the same grid (same shape, origin, spacing, direction);
`trigger_times_ms[k]` is phase k's time after the R wave (the mean over its slices), None when
the series gave only a temporal index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.volume import ImageVolume

__all__ = ["CineVolume"]


@dataclass(frozen=True, eq=False)
class CineVolume:
    phases: tuple[ImageVolume, ...]
    trigger_times_ms: tuple[float | None, ...]

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError("a cine volume has at least one phase")
        if len(self.trigger_times_ms) != len(self.phases):
            raise ValueError(
                f"{len(self.trigger_times_ms)} trigger times for {len(self.phases)} phases"
            )
        first = self.phases[0]
        for phase in self.phases[1:]:
            same = (
                phase.shape == first.shape
                and phase.spacing == first.spacing
                and phase.direction == first.direction
                and np.allclose(phase.origin, first.origin)
            )
            if not same:
                raise ValueError("every phase of a cine volume lies on the same grid")

    @property
    def grid(self) -> ImageVolume:
        """The first phase (its geometry is every phase's)."""
        return self.phases[0]

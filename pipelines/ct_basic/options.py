"""The options of the ct_basic pipeline (the mapping under `pipelines.ct_basic` in the YAML).

All thresholds are Hounsfield units, all sizes millimetres or millilitres; defaults suit adult
CT from 0.5 to 5 mm voxels. A bad value raises a `ValueError` naming the option.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CtBasicOptions"]


class CtBasicOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Gaussian smoothing (sigma, mm) before the body, lung, airway and fat thresholds (whose
    # thresholds sit near the midpoint of the tissues they separate, so blur does not move the
    # edges): keeps noise from sharp kernels out of the masks. 0 turns it off.
    smoothing_sigma_mm: float = Field(default=1.0, ge=0.0, le=5.0)

    # Body: everything denser than this, without thin attachments (table pads, cables).
    body_threshold_hu: float = Field(default=-500.0, ge=-1000.0, le=0.0)
    body_opening_mm: float = Field(default=3.0, ge=0.0, le=20.0)

    # Lungs: air-filled regions inside the body below this, and large enough.
    lung_threshold_hu: float = Field(default=-400.0, ge=-900.0, le=-100.0)
    min_lung_volume_ml: float = Field(default=10.0, ge=0.0)
    # A region where more than this share of voxels is below `gas_threshold_hu` is gas
    # (bowel, stomach), not lung, unless it is larger than `certain_lung_volume_ml` and its
    # mean is above `gas_threshold_hu` (emphysema, noisy sharp kernels).
    gas_threshold_hu: float = Field(default=-950.0, ge=-1024.0, le=-800.0)
    max_lung_gas_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    certain_lung_volume_ml: float = Field(default=400.0, ge=0.0)

    # Airway: air below this connected to a trachea-like seed; a larger result is a leak
    # into the lungs and the threshold is lowered.
    airway_threshold_hu: float = Field(default=-950.0, ge=-1024.0, le=-800.0)
    max_airway_volume_ml: float = Field(default=250.0, gt=0.0)
    min_airway_length_mm: float = Field(default=40.0, ge=0.0)

    # Bone: voxels above `bone_threshold_hu` connected to one above `bone_seed_hu`, with
    # enclosed holes filled when small or when their mean is marrow-like (fat, or above
    # `marrow_min_hu`) rather than soft tissue (the spinal canal).
    bone_threshold_hu: float = Field(default=120.0, ge=0.0, le=1000.0)
    bone_seed_hu: float = Field(default=250.0, ge=0.0, le=2000.0)
    max_bone_hole_mm2: float = Field(default=100.0, ge=0.0)
    marrow_min_hu: float = Field(default=60.0, ge=0.0, le=1000.0)

    # Adipose tissue: the usual fat window, away from air boundaries (partial volume).
    adipose_min_hu: float = Field(default=-190.0, ge=-500.0, le=0.0)
    adipose_max_hu: float = Field(default=-30.0, ge=-500.0, le=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.adipose_min_hu >= self.adipose_max_hu:
            raise ValueError("adipose_min_hu must be below adipose_max_hu")
        if self.bone_seed_hu < self.bone_threshold_hu:
            raise ValueError("bone_seed_hu must not be below bone_threshold_hu")
        if self.airway_threshold_hu >= self.lung_threshold_hu:
            raise ValueError("airway_threshold_hu must be below lung_threshold_hu")
        if not self.adipose_max_hu < self.marrow_min_hu <= self.bone_threshold_hu:
            raise ValueError("adipose_max_hu < marrow_min_hu <= bone_threshold_hu must hold")
        return self

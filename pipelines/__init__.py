"""Segmentation pipelines: volume in, PipelineResult out.

Never imports dicom_node, pynetdicom or the index (see DESIGN.md). The pipelines themselves
arrive with the vertical-slice and model-runtime work; this package is their home.
"""

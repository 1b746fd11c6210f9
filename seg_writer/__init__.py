"""DICOM SEG and TID 1500 SR writing with highdicom.

Never imports dicom_node, pynetdicom or the index (see DESIGN.md). The writer arrives with the
vertical-slice work; this package is its home.
"""

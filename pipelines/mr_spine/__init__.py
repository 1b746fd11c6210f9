"""mr_spine: TotalSpineSeg's two nnU-Net steps and its level labelling (our implementation).

`pipelines.mr_spine.levels` numbers discs and vertebrae along the spine, pure arithmetic;
`pipelines.mr_spine.labelling` applies it to the steps' label maps.
"""

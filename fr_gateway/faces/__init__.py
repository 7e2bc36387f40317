"""Faces: model packs, image decoding, detection, alignment, quality gate and embedding."""

"""The leaf of Beacon: vocabulary, text normalisation, the gazetteer and SMS segments.

Every other package may import from here; nothing here imports another Beacon package.
"""

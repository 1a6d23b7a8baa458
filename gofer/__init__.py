"""The gofer: the one pysentry process that opens host files, serving them over 9P2000.L.

See README.md in this folder for the module map and the protocol choices.
"""

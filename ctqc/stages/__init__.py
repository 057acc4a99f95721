"""The pipeline's stages, one module each: prepare, train, generate, score, filter, qc, selftest, compare, report.

A stage takes a :class:`ctqc.run.Run`, calls the libraries (``gan``, ``classify``,
``ctqc.qc``), and writes its outputs into the run; no stage calls another
(:mod:`ctqc.pipeline` and the CLI chain them).
"""

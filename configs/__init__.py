"""The YAML presets (``default``, ``paper``, ``smoke``), installed as ``ctqc.presets``.

``ctqc.config.resolve_config_path`` finds them by name. This file makes the folder a
package so the presets travel in the wheel and an editable install can map it.
"""

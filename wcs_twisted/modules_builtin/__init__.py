"""
The code of the built-in modules; their drop-in files in plugins/ import it only when started.
"""

__all__: list[str] = []

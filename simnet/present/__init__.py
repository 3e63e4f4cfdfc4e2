"""How the CLI shows what the library returns: tables, progress bars, Markdown.

Library functions (`simnet.run`, `simnet.results`) return data; the modules here turn it into
terminal output and report formats. Only `simnet.cli` imports this package
(`tests/unit/test_import_graph.py` holds everything else to that).
"""

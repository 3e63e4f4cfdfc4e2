"""How the CLI shows what the library returns: tables, progress bars, Markdown, the HTML report.

Library functions (`simnet.run`, `simnet.results`, `simnet.population`) return data; the modules
here turn it into terminal output and report formats, one module per command (`report/` is a
package: the page and its sections). Only `simnet.cli` imports this package
(`tests/unit/test_import_graph.py` holds everything else to that).
"""

"""Grading for the course assignments: nbgrader configuration, source notebooks, checks, release."""

import sys

# jsonschema (which nbformat imports) imports rfc3987_syntax when it is installed, and that module
# builds 38 parsers at import: 2.4-3.6 s in every grading process, for an IRI format that no
# notebook schema uses. jsonschema treats the module as optional.
sys.modules.setdefault("rfc3987_syntax", None)

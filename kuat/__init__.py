"""Kuat: the control system of a licensed digital-mining data centre.

`kuat` holds only what both sides share: the model catalogue (pure data and curves), the versioned wire
schema (`kuat.wire`) and the CLI entry point. The edge (`agent`) and the centre (`controller`, `registry`,
`quota`) depend on `kuat` and never on each other.
"""

__version__ = "0.1.0"

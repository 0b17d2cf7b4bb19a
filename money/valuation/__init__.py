"""Daily value in tenge of a published asset, by the method in force on the date.

`methods` holds the code of each method behind one interface (`Method.value`); `catalog` says which method is in
force on which dates (data/methods.toml); `table` builds the monthly table of values per asset and day, with the
State Revenue Committee's published values as the authority where they are imported.
"""

from money.valuation.base import Method, Valuation
from money.valuation.catalog import MethodCatalog, methods_in_force, value_of

__all__ = ["Method", "MethodCatalog", "Valuation", "methods_in_force", "value_of"]

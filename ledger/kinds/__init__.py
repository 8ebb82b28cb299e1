"""Source kinds: one module per kind of document, registered in `registry` in step order."""

from ledger.kinds import expense, purchase_invoice, sales_invoice  # noqa: F401 - registers the built-in kinds
from ledger.kinds.registry import (
                                   Side,
                                   SourceKind,
                                   UnknownKind,
                                   by_name,
                                   by_step,
                                   by_type,
                                   kind_steps,
                                   kinds,
                                   register,
                                   unregister,
)

__all__ = ["Side", "SourceKind", "UnknownKind", "by_name", "by_step", "by_type", "kind_steps", "kinds", "register",
           "unregister"]

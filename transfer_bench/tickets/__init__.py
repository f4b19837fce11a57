"""Portable lottery tickets: masks + rewound weights in a verified safetensors ``.ticket`` file.

Names are resolved lazily (PEP 562) so that ``transfer_bench.tickets.verify`` and ``.container``,
which ``ticket verify`` / ``ticket inspect`` use, load without importing torch.
"""

from __future__ import annotations

from transfer_bench.errors import TicketError as TicketError
from transfer_bench.lazy import lazy_names

_HOMES = {
    "HEAD_MODES": "apply",
    "apply_ticket": "apply",
    "check_compatible": "apply",
    "head_mismatch": "apply",
    "random_head_mask": "apply",
    "FORMAT_NAME": "verify",
    "FORMAT_VERSION": "verify",
    "REQUIRED_META": "verify",
    "TicketArrays": "verify",
    "read_ticket_arrays": "verify",
    "MAX_HEADER_BYTES": "container",
    "TICKET_SUFFIX": "format",
    "Ticket": "format",
    "check_ticket": "format",
    "derived_meta": "format",
    "describe": "format",
    "load_ticket": "format",
    "save_ticket": "format",
    "ticket_bytes": "format",
    "ticket_from_state": "format",
    "upgrade_ticket": "format",
    "verify_ticket": "format",
}


__getattr__, __dir__, __all__ = lazy_names(__name__, _HOMES, eager=("TicketError",))

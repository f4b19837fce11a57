"""Portable lottery tickets: masks + rewound weights in a verified safetensors ``.ticket`` file."""

from __future__ import annotations

from transfer_bench.errors import TicketError
from transfer_bench.tickets.apply import (
    HEAD_MODES,
    apply_ticket,
    check_compatible,
    head_mismatch,
    random_head_mask,
)
from transfer_bench.tickets.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    REQUIRED_META,
    TICKET_SUFFIX,
    Ticket,
    check_ticket,
    derived_meta,
    describe,
    load_ticket,
    save_ticket,
    ticket_bytes,
    ticket_from_state,
    upgrade_ticket,
    verify_ticket,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HEAD_MODES",
    "MAX_HEADER_BYTES",
    "REQUIRED_META",
    "TICKET_SUFFIX",
    "Ticket",
    "TicketError",
    "apply_ticket",
    "check_compatible",
    "check_ticket",
    "derived_meta",
    "describe",
    "head_mismatch",
    "load_ticket",
    "random_head_mask",
    "save_ticket",
    "ticket_bytes",
    "ticket_from_state",
    "upgrade_ticket",
    "verify_ticket",
]

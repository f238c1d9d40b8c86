"""The private health workspace: where records, personal documents and memory live.

Encrypted at rest (Argon2id + AES-GCM envelope keys, DuckDB database encryption), split into
compartments, governed by a consent ledger, traced by a tamper-evident audit trail.
"""

from workbench.workspace.audit import AuditReport, AuditTrail
from workbench.workspace.consent import ConsentLedger
from workbench.workspace.erasure import erase_source, verify_erasure
from workbench.workspace.export import export_compartment, fhir_bundles
from workbench.workspace.memory import ConversationMemory, MemoryEntry
from workbench.workspace.personal import PersonalIndex
from workbench.workspace.retention import apply_retention, get_retention, set_retention
from workbench.workspace.store import Workspace, open_workspace

__all__ = [
    "AuditReport",
    "AuditTrail",
    "ConsentLedger",
    "ConversationMemory",
    "MemoryEntry",
    "PersonalIndex",
    "Workspace",
    "apply_retention",
    "erase_source",
    "export_compartment",
    "fhir_bundles",
    "get_retention",
    "open_workspace",
    "set_retention",
    "verify_erasure",
]

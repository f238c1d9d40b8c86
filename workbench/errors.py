"""One error tree for the whole workbench.

Every error the workbench raises on purpose derives from :class:`WorkbenchError`,
so callers (CLI, widgets, notebooks) can catch one type and show its message.
Messages name the file, the record and what to do; they never contain PHI.

    WorkbenchError
    ├── ConfigError                    bad or missing settings
    ├── DependencyMissing(ImportError) an optional extra is not installed
    ├── CorpusError
    │   ├── UnknownCorpus(KeyError)    a corpus name that is not shipped or registered
    │   └── ReaderError(ValueError)    a document file that cannot be read (names file + record)
    ├── IndexError_                    evidence index problems
    │   ├── IndexMissing(FileNotFoundError)
    │   ├── IndexCorrupt               partial or damaged index folder, checksum mismatch
    │   └── ModelMismatch              embedding model/dimension differs from the index
    ├── RecordsError
    │   ├── RecordFormatError(ValueError)  malformed FHIR/wellness input (names file + resource id)
    │   └── UnitError(ValueError)          unknown or inconvertible unit
    ├── DeidError
    ├── CohortError(ValueError)        invalid cohort definition
    ├── AnswerError
    │   ├── LLMError                   the model endpoint failed after retries
    │   └── EgressBlocked              identifiable data would leave for an untrusted endpoint
    └── WorkspaceError
        ├── WrongPassphrase
        ├── ConsentError(PermissionError)  no active consent for a source / purpose
        ├── AccessDenied(PermissionError)  role may not see this view
        └── AuditTampered              the hash chain does not verify
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error the workbench raises on purpose."""


class ConfigError(WorkbenchError):
    """Settings are missing or invalid."""


class DependencyMissing(WorkbenchError, ImportError):
    """An optional dependency is not installed; the message says what to install."""


class CorpusError(WorkbenchError):
    """Problems with corpora and documents."""


class UnknownCorpus(CorpusError, KeyError):
    """A corpus name that is neither shipped nor registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown corpus"


class ReaderError(CorpusError, ValueError):
    """A document file could not be read."""


class IndexError_(WorkbenchError):  # noqa: N801 - avoid shadowing the builtin IndexError
    """Evidence index problems."""


class IndexMissing(IndexError_, FileNotFoundError):
    """No index at the given folder."""


class IndexCorrupt(IndexError_):
    """The index folder is partial or damaged."""


class ModelMismatch(IndexError_):
    """The embedding model or its dimension differs from what the index was built with."""


class RecordsError(WorkbenchError):
    """Problems importing or querying records."""


class RecordFormatError(RecordsError, ValueError):
    """Malformed record input; the message names the file and resource id."""


class UnitError(RecordsError, ValueError):
    """A unit that is unknown or cannot be converted."""


class DeidError(WorkbenchError):
    """De-identification failed."""


class CohortError(WorkbenchError, ValueError):
    """An invalid cohort definition."""


class AnswerError(WorkbenchError):
    """Problems producing an answer."""


class LLMError(AnswerError):
    """The model endpoint failed after retries, or answered with something unusable."""


class EgressBlocked(AnswerError):
    """Identifiable data would leave the machine for an endpoint that is not trusted."""


class WorkspaceError(WorkbenchError):
    """Problems with the private health workspace."""


class WrongPassphrase(WorkspaceError):
    """The passphrase does not open this workspace."""


class ConsentError(WorkspaceError, PermissionError):
    """No active consent covers this source and purpose."""


class AccessDenied(WorkspaceError, PermissionError):
    """The current role may not see this view."""


class AuditTampered(WorkspaceError):
    """The audit trail's hash chain does not verify."""

"""Cited answers: evidence and patient context -> model or offline extractive writer -> verified citations.

Public pieces: the tasks (:func:`ask`, :func:`explain_labs`, :func:`prepare_visit`,
:func:`plain_language`), the :class:`Answer` they return, citation parsing and verification,
and the :class:`EgressGuard` that decides what may leave the machine.
"""

from workbench.answer.citations import (
    SUPPORT_THRESHOLD,
    SentenceCheck,
    SupportScorer,
    alce_scores,
    parse_citations,
    verify_text,
)
from workbench.answer.context import ContextItem, select_within_budget
from workbench.answer.egress import EgressGuard, Identifier, workspace_identifiers
from workbench.answer.llm import ChatModel, LLMResult, set_audit_sink
from workbench.answer.offline import extractive_answer
from workbench.answer.pipeline import OFFLINE_MODEL, SYSTEM_PROMPT, load_patient_context
from workbench.answer.result import DISCLAIMER, Answer
from workbench.answer.tasks import ask, explain_labs, plain_language, prepare_visit

__all__ = [
    "DISCLAIMER",
    "OFFLINE_MODEL",
    "SUPPORT_THRESHOLD",
    "SYSTEM_PROMPT",
    "Answer",
    "ChatModel",
    "ContextItem",
    "EgressGuard",
    "Identifier",
    "LLMResult",
    "SentenceCheck",
    "SupportScorer",
    "alce_scores",
    "ask",
    "explain_labs",
    "extractive_answer",
    "load_patient_context",
    "parse_citations",
    "plain_language",
    "prepare_visit",
    "select_within_budget",
    "set_audit_sink",
    "verify_text",
    "workspace_identifiers",
]

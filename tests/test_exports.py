import keel
import keel.errors
import keel.models
import keel.store
import keel.testing
import keel.tools

DOCUMENTED_API = {
    "Agent",
    "Budget",
    "CachePolicy",
    "Escalation",
    "Event",
    "EventKind",
    "KeelError",
    "Model",
    "ModelTiers",
    "Phase",
    "PhaseUsage",
    "RetryPolicy",
    "ReviewQueue",
    "RunReport",
    "RunResult",
    "RunStatus",
    "SpendLimit",
    "Store",
    "Tool",
    "ToolContext",
    "Usage",
    "open_store",
    "tool",
}


def test_top_level_api_is_exactly_the_documented_one():
    assert set(keel.__all__) == DOCUMENTED_API
    assert keel.__all__ == sorted(keel.__all__)
    for name in keel.__all__:
        assert getattr(keel, name) is not None


def test_every_public_module_lists_what_it_exports():
    for module in (keel.errors, keel.models, keel.store, keel.testing, keel.tools):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_all_errors_derive_from_keel_error():
    classes = [
        getattr(keel.errors, name) for name in keel.errors.__all__ if isinstance(getattr(keel.errors, name), type)
    ]
    assert len(classes) >= 15
    for cls in classes:
        assert issubclass(cls, keel.errors.KeelError)


def test_journal_vocabulary_is_the_designed_one():
    assert [k.value for k in keel.EventKind] == [
        "run_started",
        "model_called",
        "tool_called",
        "tool_rejected",
        "guard_verdict",
        "budget_reserved",
        "budget_refused",
        "escalated",
        "review_decided",
        "retry_scheduled",
        "fallback_used",
        "loop_detected",
        "cache_hit",
        "checkpoint",
        "plan_version",
        "run_finished",
    ]
    assert [p.value for p in keel.Phase] == [
        "routing",
        "planning",
        "execution",
        "replanning",
        "recovery",
        "validation",
        "summarization",
    ]
    assert {s.value for s in keel.RunStatus} >= {"completed", "partial", "escalated", "failed", "rejected"}

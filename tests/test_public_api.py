from __future__ import annotations

import controltower


def test_public_api_is_pinned() -> None:
    """The names exported from the package are exactly these; changing them is deliberate."""
    assert sorted(controltower.__all__) == sorted(
        [
            "Condition",
            "ConditionResult",
            "Spec",
            "SpecError",
            "SpecIssue",
            "TowerError",
            "__version__",
            "load_spec",
            "parse_condition",
            "parse_spec",
        ]
    )
    for name in controltower.__all__:
        assert hasattr(controltower, name)

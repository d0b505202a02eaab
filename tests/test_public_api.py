"""The public API of the controltower package is pinned."""

from __future__ import annotations

import controltower
from controltower import spec


class TestPublicApi:
    def test_package_api_is_pinned(self) -> None:
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

    def test_spec_api_is_pinned(self) -> None:
        """controltower.spec exports the model, the loaders and the default file name."""
        assert sorted(spec.__all__) == [
            "DEFAULT_SPEC_FILE",
            "Spec",
            "find_spec_file",
            "load_spec",
            "parse_spec",
            "validate_spec",
        ]
        for name in spec.__all__:
            assert hasattr(spec, name)

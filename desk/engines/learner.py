"""The learner's seat in the pipeline: score intents, record features and outcomes.

For now it has no model: the score is the strategy's own confidence, nothing is
vetoed, and every intent's features and its trade's outcome are journaled so a
model can be trained on exactly what live scoring will see.
"""

from __future__ import annotations

import math
from typing import ClassVar

from desk.config import MLConfig, RiskConfig
from desk.core.events import (
    Event,
    IntentProposed,
    IntentScored,
    LearnerOutcomeRecorded,
    PositionClosed,
    answer_fields,
)


class Learner:
    def __init__(self, ml: MLConfig, risk: RiskConfig) -> None:
        self._ml = ml
        self._risk = risk
        self.samples = 0
        self.outcomes = 0

    def configure(self, ml: MLConfig, risk: RiskConfig) -> None:
        self._ml = ml
        self._risk = risk

    # The event types apply() reacts to: the bus hands it no others (tests/engines/test_bus.py checks the list).
    APPLIES: ClassVar[tuple[type[Event], ...]] = (
        IntentScored,
        LearnerOutcomeRecorded,
    )

    def apply(self, event: Event) -> None:
        if isinstance(event, IntentScored):
            self.samples += 1
        elif isinstance(event, LearnerOutcomeRecorded):
            self.outcomes += 1

    def score(self, intent: IntentProposed, features: dict[str, float]) -> IntentScored:
        clean = {name: float(value) for name, value in features.items() if math.isfinite(float(value))}
        model_score = intent.confidence  # no model yet: the strategy's confidence stands in
        score = (1.0 - self._risk.ml_weight) * intent.confidence + self._risk.ml_weight * model_score
        return IntentScored(
            **answer_fields(intent),
            score=score,
            vetoed=self._ml.enabled and score < self._ml.veto_below,
            features=clean,
        )

    def outcome(self, closed: PositionClosed) -> LearnerOutcomeRecorded:
        return LearnerOutcomeRecorded(
            ts_event=closed.ts_event,
            correlation_id=closed.correlation_id,
            causation_id=closed.id,
            worker=closed.worker,
            symbol=closed.symbol,
            intent_id=closed.correlation_id,
            position_id=closed.position_id,
            net_pnl=closed.net_pnl,
            r_multiple=closed.r_multiple,
            won=closed.net_pnl > 0,
        )

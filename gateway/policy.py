"""The legal checks on a notice (DOMAIN.md): partnership, category, preconditions,
consent, and the person's objection. Pure: values in, a ``Decision`` out.

    partnership   the municipality registered this creditor for this category, and the
                  partnership holds on the day of intake        → partnership_missing
    category      the category has a rule; an experimental category only for the
                  municipalities and creditors of an experiment, within its dates
                                                                → category_not_allowed
    preconditions each rule of the category holds on the notice's attestations
                                                                → precondition_missing:<rule>
    consent       where the category needs it, a valid consent record of this creditor
                  whose tokens the notice shares                → consent_missing
    objection     after matching: the person objected, within the objection's scope
                  → accepted, closed and not delivered; the receipt does not tell

The rules are configuration (``Policy``, shipped as ``gateway/policy.json`` with
DOMAIN.md's defaults, replaced through the settings), validated at start-up. An empty
policy denies: a category without a rule is not allowed.

Consent records and objections identify the person by keyed match tokens, never by
name or BSN. A consent is compared on the notice's own tokens: both come from the
creditor's data, so whether a notice is refused does not depend on the register. An
objection is compared on the person the register matched (the pseudonym the
municipality computed from the BSN when it registered the objection), and, for an
objection whose person is not in the register, on the tokens that carry a birth date
or the BSN (``STRONG_TOKENS``); address-only tokens are shared by a household and
would block the signals of the people living with the one who objected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from gateway.schema import Category, Notice

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]*(\.[A-Za-z0-9]{1,40}){0,3}$")]
AttestationName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z]{1,40}$")]
GemeenteCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
OINStr = Annotated[str, StringConstraints(pattern=r"^[0-9]{20}$")]

Kind = Literal["date", "true", "reminders", "months_before", "working_days_after", "min_amount"]
Basis = Literal["wgs", "experiment", "consent"]

STRONG_TOKENS = frozenset({"bsn", "naam_init_geb", "pc_hnr_geb"})
"""Token types that single out one person: each carries the BSN or a birth date."""

PARTNERSHIP_MISSING = "partnership_missing"
CATEGORY_NOT_ALLOWED = "category_not_allowed"
PRECONDITION_MISSING = "precondition_missing"
CONSENT_MISSING = "consent_missing"
REFUSALS = (PARTNERSHIP_MISSING, CATEGORY_NOT_ALLOWED, PRECONDITION_MISSING, CONSENT_MISSING)
"""The receipt codes a policy refusal uses (docs/reason-codes.md); a precondition's
code is followed by ``:<rule>``."""


# -- the rules: configuration -----------------------------------------------------------


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Precondition(_Rules):
    """One rule a notice's attestations must meet; ``kind`` says how.

    - ``date``: the attestation is a date, not after the signal date;
    - ``true``: the attestation is ``true`` (``false`` contradicts it);
    - ``reminders``: every attestation is a date, in order, each at least ``days``
      before the next and the last at least ``days`` before the signal date;
    - ``months_before``: a date at least ``months`` months before the signal date;
    - ``working_days_after``: a date at least ``days`` working days (Monday to Friday)
      after the signal date;
    - ``min_amount``: ``bedrag`` is at least ``amount`` (no attestation).
    """

    id: RuleId
    kind: Kind
    attestations: tuple[AttestationName, ...] = ()
    days: int | None = Field(default=None, ge=0, le=366)
    months: int | None = Field(default=None, ge=0, le=120)
    amount: Decimal | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _parameters(self) -> Self:
        wanted = {
            "date": (1, ()),
            "true": (1, ()),
            "reminders": (None, ("days",)),
            "months_before": (1, ("months",)),
            "working_days_after": (1, ("days",)),
            "min_amount": (0, ("amount",)),
        }[self.kind]
        count, params = wanted
        if count is not None and len(self.attestations) != count:
            raise ValueError(f"{self.id}: a {self.kind} rule names {count} attestation(s)")
        if count is None and not self.attestations:
            raise ValueError(f"{self.id}: a reminders rule names its attestations")
        for name in ("days", "months", "amount"):
            if (getattr(self, name) is not None) != (name in params):
                raise ValueError(f"{self.id}: {name} does not belong with {self.kind}")
        return self


class CategoryRule(_Rules):
    """What a category needs: its legal basis, preconditions and whether consent."""

    basis: Basis
    preconditions: tuple[Precondition, ...] = ()
    consent: bool = False
    """A valid consent record is needed (pilots and covenants outside the Wgs)."""

    @model_validator(mode="after")
    def _consent_basis(self) -> Self:
        if self.basis == "consent" and not self.consent:
            raise ValueError("a category on the basis of consent needs consent")
        return self


class Experiment(_Rules):
    """An experiment: its categories, only for the named municipalities and creditors,
    from ``starts`` until (not on) ``ends``. Empty lists name nobody."""

    id: RuleId
    categories: tuple[Category, ...] = Field(min_length=1)
    gemeenten: tuple[GemeenteCode, ...] = ()
    creditors: tuple[OINStr, ...] = ()
    starts: date
    ends: date | None = None

    @model_validator(mode="after")
    def _dates(self) -> Self:
        if self.ends is not None and self.ends <= self.starts:
            raise ValueError(f"{self.id}: ends must be after starts")
        return self


class Policy(_Rules):
    """Every category's rule and every experiment; a category without a rule is denied."""

    categories: dict[Category, CategoryRule] = Field(default_factory=dict)
    experiments: tuple[Experiment, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [p.id for r in self.categories.values() for p in r.preconditions]
        ids += [f"experiment.{e.id}" for e in self.experiments]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError("rule ids named twice: " + ", ".join(twice))
        for experiment in self.experiments:
            for category in experiment.categories:
                rule = self.categories.get(category)
                if rule is None or rule.basis != "experiment":
                    raise ValueError(
                        f"experiment {experiment.id}: {category} is not an experimental category"
                    )
        return self

    @classmethod
    def shipped(cls) -> Policy:
        """DOMAIN.md's defaults (``gateway/policy.json``)."""
        return _shipped()


@cache
def _shipped() -> Policy:
    text = resources.files("gateway").joinpath("policy.json").read_text(encoding="utf-8")
    return Policy.model_validate(json.loads(text))


# -- the state: partnerships, consents and objections as read for one batch --------------


@dataclass(frozen=True)
class Period:
    """From ``starts`` until (not on) ``ends``; open-ended when ``ends`` is None."""

    starts: date
    ends: date | None = None

    def state(self, today: date) -> Literal["not_yet_valid", "valid", "ended"]:
        if today < self.starts:
            return "not_yet_valid"
        if self.ends is not None and today >= self.ends:
            return "ended"
        return "valid"


@dataclass(frozen=True)
class Partnership:
    """A municipality's agreement to receive a creditor's signals of some categories."""

    id: int
    gemeente: str
    creditor: str
    categories: frozenset[str]
    period: Period


@dataclass(frozen=True)
class Consent:
    """A person's consent to a creditor's signals: ``tokens`` as ``token_key`` gives them."""

    ref: str
    creditor: str
    gemeente: str
    categories: frozenset[str]
    tokens: frozenset[str]
    period: Period
    withdrawn: bool = False
    person: str | None = None


@dataclass(frozen=True)
class Objection:
    """A person's objection; empty ``creditors`` or ``categories`` cover all."""

    id: int
    gemeente: str
    person: str | None
    tokens: frozenset[str]
    creditors: frozenset[str]
    categories: frozenset[str]
    period: Period

    def covers(self, notice: Notice, today: date) -> bool:
        return (
            self.period.state(today) == "valid"
            and (not self.creditors or notice.iss in self.creditors)
            and (not self.categories or notice.category.value in self.categories)
        )


def token_key(kid: str, type_: str, token: str) -> str:
    """How a token is compared across records: tokens of another linkage key never meet."""
    return f"{kid}\x1f{type_}\x1f{token}"


def strong_tokens(kid: str, values: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """The token keys of ``values`` whose type singles out a person."""
    return frozenset(
        token_key(kid, type_, token)
        for type_, tokens in values.items()
        if type_ in STRONG_TOKENS
        for token in tokens
    )


@dataclass
class PolicyState:
    """What the policy knows besides the notice, indexed for one lookup per notice."""

    partnerships: dict[tuple[str, str], list[Partnership]] = field(default_factory=dict)
    consents: dict[tuple[str, str], list[Consent]] = field(default_factory=dict)
    objected_persons: dict[tuple[str, str], list[Objection]] = field(default_factory=dict)
    objected_tokens: dict[tuple[str, str], list[Objection]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        partnerships: Iterable[Partnership] = (),
        consents: Iterable[Consent] = (),
        objections: Iterable[Objection] = (),
    ) -> PolicyState:
        state = cls()
        for p in partnerships:
            state.partnerships.setdefault((p.gemeente, p.creditor), []).append(p)
        for c in consents:
            for key in c.tokens:
                state.consents.setdefault((c.creditor, key), []).append(c)
        for o in objections:
            if o.person is not None:
                state.objected_persons.setdefault((o.gemeente, o.person), []).append(o)
            for key in o.tokens:
                state.objected_tokens.setdefault((o.gemeente, key), []).append(o)
        return state


# -- the decision ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """Allowed or refused. ``reasons`` are receipt codes (the first one is what the
    creditor is told), ``causes`` the audit log's detail for each, ``rule_ids`` the
    rules that decided: every rule applied when allowed, the failing ones when not."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()
    causes: tuple[str, ...] = ()

    @property
    def code(self) -> str:
        """The receipt's reason for a refusal."""
        return self.reasons[0]

    @property
    def cause(self) -> str:
        """The audit log's cause for a refusal: every failing rule and why."""
        return ";".join(f"{r}:{c}" for r, c in zip(self.reasons, self.causes, strict=True))[:250]

    def audit_fields(self) -> dict[str, str]:
        """The fields the decision adds to the notice's ``notice.accepted`` event."""
        return {
            "policy": "allowed" if self.allowed else "refused",
            "rules": ",".join(self.rule_ids),
        }


def _refused(reason: str, rule: str, cause: str) -> Decision:
    return Decision(False, (reason,), (rule,), (cause,))


def decide(policy: Policy, state: PolicyState, notice: Notice, *, today: date) -> Decision:
    """Whether ``notice`` may be taken on ``today`` (the gateway's clock)."""
    partnership = _partnership(state, notice, today)
    if isinstance(partnership, Decision):
        return partnership
    rule = policy.categories.get(notice.category)
    if rule is None:
        return _refused(CATEGORY_NOT_ALLOWED, "category", "no_rule")
    applied = [f"partnership:{partnership.id}"]
    if rule.basis == "experiment":
        experiment = _experiment(policy, notice, today)
        if isinstance(experiment, Decision):
            return experiment
        applied.append(f"experiment.{experiment.id}")
    failed = [
        (f"{PRECONDITION_MISSING}:{p.id}", p.id, why)
        for p in rule.preconditions
        if (why := check(p, notice)) is not None
    ]
    if failed:
        reasons, ids, causes = zip(*failed, strict=True)
        return Decision(False, reasons, ids, causes)
    applied += [p.id for p in rule.preconditions]
    if rule.consent:
        consent = _consent(state, notice, today)
        if isinstance(consent, Decision):
            return consent
        applied.append(f"consent:{consent.ref}")
    return Decision(True, (), tuple(applied))


def _partnership(state: PolicyState, notice: Notice, today: date) -> Partnership | Decision:
    found = [
        p
        for p in state.partnerships.get((notice.gemeente, notice.iss), ())
        if notice.category.value in p.categories
    ]
    states = {p.period.state(today): p for p in found}
    if "valid" in states:
        return states["valid"]
    why = "ended" if "ended" in states else "not_yet_valid" if states else "none"
    return _refused(PARTNERSHIP_MISSING, "partnership", why)


def _experiment(policy: Policy, notice: Notice, today: date) -> Experiment | Decision:
    why = "not_joined"
    for e in policy.experiments:
        if notice.category not in e.categories:
            continue
        if notice.gemeente not in e.gemeenten or notice.iss not in e.creditors:
            continue
        period = Period(e.starts, e.ends).state(today)
        if period == "valid":
            return e
        why = period
    return _refused(CATEGORY_NOT_ALLOWED, "experiment", why)


def _consent(state: PolicyState, notice: Notice, today: date) -> Consent | Decision:
    found: dict[str, Consent] = {}
    for key in strong_tokens(notice.tokens.kid, notice.tokens.values):
        for c in state.consents.get((notice.iss, key), ()):
            if c.gemeente == notice.gemeente and notice.category.value in c.categories:
                found[c.ref] = c
    valid = [c for c in found.values() if not c.withdrawn and c.period.state(today) == "valid"]
    if valid:
        return min(valid, key=lambda c: c.ref)
    if any(c.withdrawn for c in found.values()):
        why = "withdrawn"
    elif any(c.period.state(today) == "ended" for c in found.values()):
        why = "expired"
    else:
        why = "not_yet_valid" if found else "none"
    return _refused(CONSENT_MISSING, "consent", why)


def objection(
    state: PolicyState, notice: Notice, person: str | None, *, today: date
) -> Objection | None:
    """The objection that stops ``notice``, if any: by the matched ``person``, else by
    a token that singles the person out."""
    if person is not None:
        for o in state.objected_persons.get((notice.gemeente, person), ()):
            if o.covers(notice, today):
                return o
    if state.objected_tokens:
        for key in strong_tokens(notice.tokens.kid, notice.tokens.values):
            for o in state.objected_tokens.get((notice.gemeente, key), ()):
                if o.covers(notice, today):
                    return o
    return None


# -- preconditions -----------------------------------------------------------------------


def check(rule: Precondition, notice: Notice) -> Literal["missing", "contradicting"] | None:
    """Why ``notice`` fails ``rule`` (``missing`` or ``contradicting``), None when it holds.

    A value of the wrong type (a boolean where a date is due) contradicts the rule.
    """
    attested = notice.attestations or {}
    values = [attested.get(name) for name in rule.attestations]
    if any(v is None for v in values):
        return "missing"
    signal = notice.signaaldatum
    if rule.kind == "true":
        return None if values[0] is True else "contradicting"
    if rule.kind == "min_amount":
        assert rule.amount is not None
        return None if Decimal(notice.bedrag) >= rule.amount else "contradicting"
    dates = [v for v in values if isinstance(v, date) and not isinstance(v, bool)]
    if len(dates) != len(values):
        return "contradicting"
    if rule.kind == "working_days_after":
        assert rule.days is not None
        return None if working_days(signal, dates[0]) >= rule.days else "contradicting"
    if any(d > signal for d in dates):
        return "contradicting"
    if rule.kind == "months_before":
        assert rule.months is not None
        return None if dates[0] <= months_before(signal, rule.months) else "contradicting"
    if rule.kind == "reminders":
        assert rule.days is not None
        gap = timedelta(days=rule.days)
        steps = [*dates, signal]
        ordered = all(b - a >= gap for a, b in zip(steps, steps[1:], strict=False))
        return None if ordered else "contradicting"
    return None


def months_before(day: date, months: int) -> date:
    """The same day ``months`` months earlier (the month's last day where it is shorter)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def working_days(start: date, end: date) -> int:
    """Working days (Monday to Friday) after ``start`` up to and including ``end``."""
    if end <= start:
        return 0
    days = (end - start).days
    weeks, rest = divmod(days, 7)
    count = weeks * 5
    for offset in range(1, rest + 1):
        if (start + timedelta(days=weeks * 7 + offset)).weekday() < 5:
            count += 1
    return count

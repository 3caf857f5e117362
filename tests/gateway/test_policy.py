"""The policy's decisions, table by table: every category's preconditions present,
missing and contradicting; partnership, experiment, consent and objection states."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.policy import (
    CategoryRule,
    Consent,
    Decision,
    Experiment,
    Objection,
    Partnership,
    Period,
    Policy,
    PolicyState,
    Precondition,
    check,
    decide,
    months_before,
    objection,
    strong_tokens,
    working_days,
)
from gateway.schema import Category, Notice, notice_jti

TODAY = date(2026, 11, 22)
GEMEENTE = "0363"
CREDITOR = "00000003900000020000"
OTHER = "00000003900000099999"
KID = "lk-test"
TOKENS = {
    "naam_init_geb": ["A" * 21 + "A"],
    "pc_hnr_geb": ["B" * 21 + "A"],
    "naam_pc_hnr": ["C" * 21 + "A"],
}
OTHER_TOKENS = {"naam_init_geb": ["D" * 21 + "A"], "naam_pc_hnr": ["C" * 21 + "A"]}

VALID: dict[Category, dict[str, Any]] = {
    Category.HUUR: {
        "persoonlijkContact": "2026-10-20",
        "schriftelijkeHerinnering": "2026-10-01",
        "gewezenOpSchuldhulp": True,
        "geenBezwaarDoorgifte": True,
    },
    Category.ENERGIE: {
        "eersteHerinnering": "2026-08-15",
        "tweedeHerinnering": "2026-09-05",
        "derdeHerinnering": "2026-09-26",
        "persoonlijkContact": "2026-10-10",
    },
    Category.EINDELEVERING: {"einddatumContract": "2026-12-15"},
    Category.DRINKWATER: {
        "herinnering": "2026-10-01",
        "gewezenOpSchuldhulp": True,
        "geenBezwaar": True,
    },
    Category.ZORG: {"premieachterstandSinds": "2026-08-01"},
    Category.HYPOTHEEK: {"herinnering": "2026-10-01", "persoonlijkContact": "2026-10-10"},
    Category.BELASTINGDIENST: {"aanmaning": "2026-10-01", "geenUitstel": True},
    Category.TOESLAGEN: {"aanmaning": "2026-10-01", "geenUitstel": True},
    Category.GEMEENTEBELASTING: {"aanmaning": "2026-10-01", "geenUitstel": True},
}
"""Attestations that meet every default rule, for a signal dated 2026-11-01."""

CONTRADICTING: dict[str, Any] = {
    "date": "2026-11-02",  # done after the signal: cannot be
    "true": False,  # the person refused, or no pointer to debt help
    "reminders": None,  # filled in per rule: reminders too close together
    "months_before": "2026-10-01",  # one month of arrears, not two
    "working_days_after": "2026-11-20",  # the contract ends in 14 working days
}


def notice(
    category: Category = Category.HUUR,
    attestations: dict[str, Any] | None = None,
    *,
    bedrag: str = "1432.17",
    iss: str = CREDITOR,
    tokens: dict[str, list[str]] | None = None,
) -> Notice:
    ref = "REF-1"
    return Notice.model_validate(
        {
            "v": 1,
            "iss": iss,
            "aud": "gw",
            "gemeente": GEMEENTE,
            "jti": notice_jti(iss, ref),
            "iat": 0,
            "exp": 1,
            "ref": ref,
            "category": category.value,
            "stage": "vroeg",
            "bedrag": bedrag,
            "ontstaansdatum": "2026-06-01",
            "signaaldatum": "2026-11-01",
            "attestations": VALID[category] if attestations is None else attestations,
            "tokens": {"kid": KID, "values": tokens or TOKENS},
            "contact": {},
        }
    )


SHIPPED = Policy.shipped()
POLICY = SHIPPED.model_copy(
    update={
        "experiments": tuple(
            e.model_copy(update={"gemeenten": (GEMEENTE,), "creditors": (CREDITOR,)})
            for e in SHIPPED.experiments
            if e.id != "gemeentebelasting"
        )
        + (
            Experiment(
                id="gemeentebelasting",
                categories=(Category.GEMEENTEBELASTING,),
                gemeenten=(GEMEENTE,),
                creditors=(CREDITOR,),
                starts=date(2026, 1, 1),
            ),
        )
    }
)
"""The shipped rules, with every experiment joined by the test's municipality and
creditor (the shipped experiments name nobody)."""


def partnership(
    starts: date = date(2026, 1, 1), ends: date | None = None, categories: Any = None
) -> Partnership:
    return Partnership(
        1,
        GEMEENTE,
        CREDITOR,
        frozenset(categories or [c.value for c in Category]),
        Period(starts, ends),
    )


STATE = PolicyState.of([partnership()])


def cases() -> list[Any]:
    out = []
    for category, rule in SHIPPED.categories.items():
        for p in rule.preconditions:
            out.append(pytest.param(category, p, "present", id=f"{p.id}-present"))
            if p.attestations:
                out.append(pytest.param(category, p, "missing", id=f"{p.id}-missing"))
            out.append(pytest.param(category, p, "contradicting", id=f"{p.id}-contradicting"))
    return out


@pytest.mark.parametrize(("category", "rule", "state"), cases())
def test_every_precondition_present_missing_and_contradicting(
    category: Category, rule: Precondition, state: str
) -> None:
    attested = dict(VALID[category])
    bedrag = "1432.17"
    if state == "missing":
        del attested[rule.attestations[0]]
    elif state == "contradicting":
        if rule.kind == "min_amount":
            assert rule.amount is not None
            bedrag = f"{rule.amount - 1:.2f}"
        elif rule.kind == "reminders":
            attested[rule.attestations[1]] = attested[rule.attestations[0]]
        else:
            attested[rule.attestations[0]] = CONTRADICTING[rule.kind]
    decision = decide(POLICY, STATE, notice(category, attested, bedrag=bedrag), today=TODAY)
    if state == "present":
        assert decision.allowed and rule.id in decision.rule_ids
        assert decision.rule_ids[0] == "partnership:1"
    else:
        assert not decision.allowed
        assert decision.code == f"precondition_missing:{rule.id}"
        assert decision.causes[0] == state
        assert decision.cause == f"precondition_missing:{rule.id}:{state}"


def test_a_date_where_a_yes_is_due_contradicts_and_a_yes_where_a_date_is_due_too() -> None:
    attested = {**VALID[Category.HUUR], "gewezenOpSchuldhulp": "2026-10-01"}
    assert not decide(POLICY, STATE, notice(attestations=attested), today=TODAY).allowed
    attested = {**VALID[Category.HUUR], "persoonlijkContact": True}
    decision = decide(POLICY, STATE, notice(attestations=attested), today=TODAY)
    assert decision.reasons == ("precondition_missing:huur.persoonlijkContact",)


def test_every_failing_precondition_is_named_and_the_first_goes_in_the_receipt() -> None:
    decision = decide(POLICY, STATE, notice(attestations={}), today=TODAY)
    assert decision.rule_ids == (
        "huur.persoonlijkContact",
        "huur.schriftelijkeHerinnering",
        "huur.gewezenOpSchuldhulp",
        "huur.geenBezwaarDoorgifte",
    )
    assert decision.code == "precondition_missing:huur.persoonlijkContact"


@pytest.mark.parametrize(
    ("partnerships", "allowed", "cause"),
    [
        pytest.param([], False, "none", id="none"),
        pytest.param([partnership(starts=date(2026, 12, 1))], False, "not_yet_valid", id="not-yet"),
        pytest.param([partnership()], True, None, id="valid"),
        pytest.param([partnership(ends=TODAY)], False, "ended", id="ended-today"),
        pytest.param([partnership(ends=date(2026, 11, 23))], True, None, id="ends-tomorrow"),
        pytest.param([partnership(categories=["ZORG"])], False, "none", id="other-category"),
        pytest.param(
            [partnership(ends=date(2026, 6, 1)), partnership(starts=date(2026, 6, 1))],
            True,
            None,
            id="renewed",
        ),
    ],
)
def test_partnership_states(
    partnerships: list[Partnership], allowed: bool, cause: str | None
) -> None:
    decision = decide(POLICY, PolicyState.of(partnerships), notice(), today=TODAY)
    assert decision.allowed is allowed
    if not allowed:
        assert (decision.code, decision.causes) == ("partnership_missing", (cause,))


def test_a_partnership_with_another_municipality_or_creditor_does_not_count() -> None:
    elsewhere = Partnership(1, "0599", CREDITOR, frozenset({"HUUR"}), Period(date(2026, 1, 1)))
    other = Partnership(2, GEMEENTE, OTHER, frozenset({"HUUR"}), Period(date(2026, 1, 1)))
    decision = decide(POLICY, PolicyState.of([elsewhere, other]), notice(), today=TODAY)
    assert decision.code == "partnership_missing"


@pytest.mark.parametrize(
    ("experiments", "cause"),
    [
        pytest.param(SHIPPED.experiments, "not_joined", id="shipped-names-nobody"),
        pytest.param(
            (
                Experiment(
                    id="belastingdienst",
                    categories=(Category.BELASTINGDIENST,),
                    gemeenten=(GEMEENTE,),
                    creditors=(CREDITOR,),
                    starts=date(2025, 1, 1),
                    ends=date(2026, 1, 1),
                ),
            ),
            "ended",
            id="ended",
        ),
        pytest.param(
            (
                Experiment(
                    id="belastingdienst",
                    categories=(Category.BELASTINGDIENST,),
                    gemeenten=(GEMEENTE,),
                    creditors=(OTHER,),
                    starts=date(2025, 1, 1),
                ),
            ),
            "not_joined",
            id="other-creditor",
        ),
    ],
)
def test_an_experimental_category_needs_its_experiment(
    experiments: tuple[Experiment, ...], cause: str
) -> None:
    policy = SHIPPED.model_copy(update={"experiments": experiments})
    decision = decide(policy, STATE, notice(Category.BELASTINGDIENST), today=TODAY)
    assert (decision.allowed, decision.code, decision.causes) == (
        False,
        "category_not_allowed",
        (cause,),
    )


def test_the_municipal_tax_experiment_ended_on_15_may_2025() -> None:
    experiment = next(e for e in SHIPPED.experiments if e.id == "gemeentebelasting")
    joined = experiment.model_copy(update={"gemeenten": (GEMEENTE,), "creditors": (CREDITOR,)})
    policy = SHIPPED.model_copy(update={"experiments": (joined,)})
    on = notice(Category.GEMEENTEBELASTING)
    state = PolicyState.of([partnership(starts=date(2025, 1, 1))])
    assert decide(policy, state, on, today=date(2025, 5, 14)).allowed
    assert decide(policy, state, on, today=date(2025, 5, 15)).causes == ("ended",)


def test_an_empty_policy_denies() -> None:
    decision = decide(Policy(), STATE, notice(), today=TODAY)
    assert (decision.allowed, decision.code) == (False, "category_not_allowed")


def test_the_tax_threshold_is_600_euros() -> None:
    category = Category.BELASTINGDIENST
    assert decide(POLICY, STATE, notice(category, bedrag="600.00"), today=TODAY).allowed
    refused = decide(POLICY, STATE, notice(category, bedrag="599.99"), today=TODAY)
    assert refused.code == "precondition_missing:belastingdienst.bedrag"


def test_thresholds_are_configuration() -> None:
    rule = SHIPPED.categories[Category.ZORG].preconditions[0].model_copy(update={"months": 1})
    policy = POLICY.model_copy(
        update={
            "categories": {
                **POLICY.categories,
                Category.ZORG: CategoryRule(basis="wgs", preconditions=(rule,)),
            }
        }
    )
    one_month = notice(Category.ZORG, {"premieachterstandSinds": "2026-10-01"})
    assert not decide(POLICY, STATE, one_month, today=TODAY).allowed
    assert decide(policy, STATE, one_month, today=TODAY).allowed


# -- consent -------------------------------------------------------------------------------

CONSENT_POLICY = POLICY.model_copy(
    update={
        "categories": {
            **POLICY.categories,
            Category.HUUR: POLICY.categories[Category.HUUR].model_copy(update={"consent": True}),
        }
    }
)


def consent(
    *,
    given: date = date(2026, 1, 1),
    expires: date = date(2027, 1, 1),
    withdrawn: bool = False,
    tokens: dict[str, list[str]] | None = None,
    creditor: str = CREDITOR,
) -> Consent:
    return Consent(
        ref="C-1",
        creditor=creditor,
        gemeente=GEMEENTE,
        categories=frozenset({"HUUR"}),
        tokens=strong_tokens(KID, tokens or TOKENS),
        period=Period(given, expires),
        withdrawn=withdrawn,
    )


@pytest.mark.parametrize(
    ("consents", "allowed", "cause"),
    [
        pytest.param([], False, "none", id="none"),
        pytest.param([consent()], True, None, id="valid"),
        pytest.param([consent(expires=TODAY)], False, "expired", id="expired"),
        pytest.param([consent(withdrawn=True)], False, "withdrawn", id="withdrawn"),
        pytest.param([consent(given=date(2026, 12, 1))], False, "not_yet_valid", id="not-yet"),
        pytest.param([consent(tokens=OTHER_TOKENS)], False, "none", id="other-person"),
        pytest.param([consent(creditor=OTHER)], False, "none", id="other-creditor"),
        pytest.param(
            [consent(withdrawn=True), Consent(**{**consent().__dict__, "ref": "C-2"})],
            True,
            None,
            id="withdrawn-and-renewed",
        ),
    ],
)
def test_consent_states(consents: list[Consent], allowed: bool, cause: str | None) -> None:
    state = PolicyState.of([partnership()], consents)
    decision = decide(CONSENT_POLICY, state, notice(), today=TODAY)
    assert decision.allowed is allowed
    if allowed:
        assert decision.rule_ids[-1].startswith("consent:C-")
    else:
        assert (decision.code, decision.causes) == ("consent_missing", (cause,))


def test_a_category_without_consent_needs_no_consent_record() -> None:
    assert decide(POLICY, STATE, notice(), today=TODAY).allowed


def test_an_address_token_alone_is_no_consent() -> None:
    shared = {"naam_pc_hnr": TOKENS["naam_pc_hnr"]}
    with_address = Consent(**{**consent().__dict__, "tokens": frozenset()})
    assert with_address.tokens == strong_tokens(KID, shared)
    state = PolicyState.of([partnership()], [with_address])
    assert decide(CONSENT_POLICY, state, notice(), today=TODAY).causes == ("none",)


# -- objections ----------------------------------------------------------------------------

PERSON = "p-" + "a" * 22
SINCE_JANUARY = Period(date(2026, 1, 1))


def objected(
    *,
    person: str | None = PERSON,
    tokens: dict[str, list[str]] | None = None,
    creditors: frozenset[str] = frozenset(),
    categories: frozenset[str] = frozenset(),
    period: Period = SINCE_JANUARY,
) -> Objection:
    return Objection(
        1,
        GEMEENTE,
        person,
        strong_tokens(KID, tokens) if tokens else frozenset(),
        creditors,
        categories,
        period,
    )


@pytest.mark.parametrize(
    ("objections", "person", "stops"),
    [
        pytest.param([], PERSON, False, id="none"),
        pytest.param([objected()], PERSON, True, id="matching-person"),
        pytest.param([objected()], "p-" + "b" * 22, False, id="other-person"),
        pytest.param([objected()], None, False, id="notice-not-matched"),
        pytest.param([objected(person=None, tokens=TOKENS)], None, True, id="matching-tokens"),
        pytest.param([objected(person=None, tokens=OTHER_TOKENS)], None, False, id="other-tokens"),
        pytest.param([objected(creditors=frozenset({OTHER}))], PERSON, False, id="other-creditor"),
        pytest.param([objected(creditors=frozenset({CREDITOR}))], PERSON, True, id="this-creditor"),
        pytest.param(
            [objected(categories=frozenset({"ZORG"}))], PERSON, False, id="other-category"
        ),
        pytest.param(
            [objected(period=Period(date(2026, 1, 1), date(2026, 6, 1)))], PERSON, False, id="ended"
        ),
        pytest.param([objected(period=Period(date(2026, 12, 1)))], PERSON, False, id="not-yet"),
    ],
)
def test_objection_states(objections: list[Objection], person: str | None, stops: bool) -> None:
    state = PolicyState.of([partnership()], [], objections)
    assert decide(POLICY, state, notice(), today=TODAY).allowed  # never a refusal
    found = objection(state, notice(), person, today=TODAY)
    assert (found is not None) is stops


# -- the rules themselves -----------------------------------------------------------------


def test_the_shipped_rules_cover_every_category() -> None:
    assert set(SHIPPED.categories) == set(Category)


@pytest.mark.parametrize(
    "bad",
    [
        {"categories": {"HUUR": {"basis": "wgs", "preconditions": [{"id": "x", "kind": "date"}]}}},
        {
            "categories": {
                "HUUR": {
                    "basis": "wgs",
                    "preconditions": [
                        {"id": "x", "kind": "true", "attestations": ["a"], "days": 3}
                    ],
                }
            }
        },
        {
            "categories": {
                "HUUR": {
                    "basis": "wgs",
                    "preconditions": [
                        {"id": "x", "kind": "date", "attestations": ["a"]},
                        {"id": "x", "kind": "date", "attestations": ["b"]},
                    ],
                }
            }
        },
        {
            "categories": {"HUUR": {"basis": "wgs"}},
            "experiments": [{"id": "e", "categories": ["HUUR"], "starts": "2026-01-01"}],
        },
        {"categories": {"HUUR": {"basis": "consent"}}},
        {"categories": {"HUUR": {"basis": "wgs", "unknown": 1}}},
        {"categories": {"NOPE": {"basis": "wgs"}}},
    ],
    ids=[
        "no-attestation",
        "stray-parameter",
        "id-twice",
        "not-experimental",
        "consent-off",
        "unknown-member",
        "unknown-category",
    ],
)
def test_rules_that_do_not_fit_are_refused_at_start_up(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Policy.model_validate(bad)


def test_months_and_working_days() -> None:
    assert months_before(date(2026, 11, 1), 2) == date(2026, 9, 1)
    assert months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_before(date(2026, 1, 15), 2) == date(2025, 11, 15)
    assert working_days(date(2026, 11, 6), date(2026, 11, 9)) == 1  # Friday to Monday
    assert working_days(date(2026, 11, 1), date(2026, 11, 29)) == 20
    assert working_days(date(2026, 11, 1), date(2026, 11, 1)) == 0


def test_a_decision_is_a_value_for_the_audit_log() -> None:
    decision = decide(POLICY, STATE, notice(), today=TODAY)
    assert decision == Decision(True, (), decision.rule_ids)
    assert decision.audit_fields() == {"policy": "allowed", "rules": ",".join(decision.rule_ids)}
    assert check(SHIPPED.categories[Category.HUUR].preconditions[0], notice()) is None

"""Properties of scripts' forms, over generated definitions and values: checking a definition never fails, a
definition found sound builds a form and a JSON Schema, and any value is either cleaned into JSON for the
script or refused with a ValidationError."""

import datetime
import json
import math
import re
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from runs.models import Run
from scripts_app.models import ApiToken
from ui_builder.forms import definition_problems, form_class, json_schema
from ui_builder.models import FieldType
from ui_builder.services import import_definition, spec_for, validate_params

SETTINGS = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}

# --- definitions ---------------------------------------------------------------------------------------------------

NAMES = ["start", "end", "mode", "limit", "x", "_y", "a1", "class", "None", "2nd", "", "a b", "naïve", "start ", "é"]
names = st.one_of(st.sampled_from(NAMES), st.text(max_size=6))
types = st.one_of(st.sampled_from(FieldType.values), st.sampled_from(["", "Text", "string", "int", "select"]))
BOUNDS = ["0", "-1", "1", "3", "10", "1.5", "-0.25", "1e3", "1e400", "-1e400", "NaN", "inf", "-Infinity", "2026-01-01",
          "2026-13-01", "20260101", "2026-01-01T00:00", "2026-01-01T00:00+02:00", "2026-12-31T23:59:59Z",
          "2026-06-01 12:00", "abc", " 3 ", "٣", "99999999999999999999", "0x10", "1_000", "+5"]
bounds = st.one_of(st.just(""), st.sampled_from(BOUNDS), st.integers(-10 ** 6, 10 ** 6).map(str), st.text(max_size=8))
REGEXES = ["[a-z]+", "(", "a{2,3}", "(?i)abc", r"\d+|x", "(?P<n>a)(?P=n)", "[", "a**", "\\", "(?x) a b", "$", "^a",
           r"(a)\1", "a|", ".*", "[^\\W\\d]+", "(?<=a)b", ")(", "x{2,1}", "\\Z"]
regexes = st.one_of(st.just(""), st.sampled_from(REGEXES), st.text(max_size=6))
DEFAULTS = ["0", "5", "-3", "1.25", "NaN", "inf", "1e400", "yes", "no", "true", "2026-03-01", "2026-03-01T10:00",
            "2026-03-01T10:00+05:00", "a@b.example", "https://example.com", "12345678-1234-5678-1234-567812345678",
            '{"a": 1}', "[1, 2]", "null", "1,2,2", "1\n2", "a\nb", "eur", "x\x00y", "abc", "ABC"]
defaults = st.one_of(st.just(""), st.sampled_from(DEFAULTS), st.text(max_size=10))
choices = st.lists(st.fixed_dictionaries({"value": st.one_of(st.sampled_from(["a", "b", "eur", "1", ""]),
                                                               st.text(max_size=4)),
                                          "label": st.text(max_size=4)}), max_size=4)
visible_ifs = st.one_of(st.none(), st.fixed_dictionaries({"field": names, "equals": st.text(max_size=4)}))

wild_fields = st.fixed_dictionaries({
    "name": names, "label": st.text(max_size=10), "type": types, "help_text": st.text(max_size=10),
    "placeholder": st.text(max_size=5), "required": st.booleans(), "default": defaults, "min": bounds,
    "max": bounds, "regex": regexes, "regex_message": st.text(max_size=10), "choices": choices,
    "visible_if": visible_ifs, "section": st.sampled_from(["", "Main", "More"]), "order": st.integers(0, 5),
})

# fields as a builder would plausibly declare them, so that many generated definitions are sound
T = FieldType
GOOD_NAMES = ["start", "end", "mode", "limit", "batch", "note", "ids", "when", "_x1"]
DATES = ["2020-01-01", "2026-03-01", "2026-12-31", "2030-06-15", "0001-01-01", "9999-12-31"]
MOMENTS = ["2020-01-01T00:00", "2026-03-01T10:30", "2026-03-01T10:30:00+05:00", "2030-12-31T23:59:59Z",
           "2026-06-01 12:00", "2026-03-01T10:30-08:00"]
TYPED_BOUNDS = {
    T.INTEGER: st.one_of(st.integers(-10 ** 20, 10 ** 20), st.integers(-10, 10)).map(str),
    T.DECIMAL: st.one_of(st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
                         st.sampled_from(["1e400", "-1e400", "1E-30", "0.000", "-0"])),
    T.DATE: st.sampled_from(DATES), T.DATETIME: st.sampled_from(MOMENTS),
}
TYPED_DEFAULTS = {
    T.TEXT: st.one_of(st.text(max_size=8), st.sampled_from(["abc", "ABC", "x\x00y"])),
    T.LONG_TEXT: st.text(max_size=20),
    T.INTEGER: st.integers(-10 ** 20, 10 ** 20).map(str), T.DECIMAL: st.sampled_from(["1.5", "-2", "1e400", "NaN"]),
    T.BOOLEAN: st.sampled_from(["yes", "no", "true", "0", "on", "maybe"]),
    T.CHOICE: st.sampled_from(["a", "b", "z"]), T.RADIO: st.sampled_from(["a", "c", ""]),
    T.MULTI_CHOICE: st.sampled_from(["a", "a\nb", "a\nb\nc", "z"]), T.DATE: st.sampled_from(DATES + ["2026-02-30"]),
    T.DATETIME: st.sampled_from(MOMENTS), T.EMAIL: st.sampled_from(["a@b.example", "nope"]),
    T.URL: st.sampled_from(["https://example.com/x", "example"]),
    T.UUID: st.sampled_from(["12345678-1234-5678-1234-567812345678", "123"]),
    T.JSON: st.sampled_from(['{"a": [1, null]}', "NaN", "Infinity", "1e400", "[", '"s"']),
    T.ID_LIST: st.sampled_from(["1,2,2", "1\n2\n3", "x", " 4 "]), T.FILE: st.just("x.csv"),
}


@st.composite
def plausible_fields(draw, name=None, others=()):
    kind = draw(st.sampled_from(T.values))
    counted = kind in (T.TEXT, T.LONG_TEXT, T.EMAIL, T.URL, T.MULTI_CHOICE, T.ID_LIST, T.FILE)
    bound = TYPED_BOUNDS.get(kind, st.integers(0, 30).map(str) if counted else st.nothing())
    maybe_bound = st.one_of(st.just(""), bound) if counted or kind in TYPED_BOUNDS else st.just("")
    takes_choices = kind in (T.CHOICE, T.RADIO, T.MULTI_CHOICE)
    return {
        "name": name or draw(st.sampled_from(GOOD_NAMES)), "label": draw(st.text(max_size=6)), "type": kind,
        "help_text": draw(st.text(max_size=6)), "placeholder": "", "required": draw(st.booleans()),
        "default": draw(st.one_of(st.just(""), st.just(""), TYPED_DEFAULTS[kind])),
        "min": draw(maybe_bound), "max": draw(maybe_bound),
        "regex": draw(st.one_of(st.just(""), st.sampled_from(REGEXES))) if kind in (T.TEXT, T.LONG_TEXT) else "",
        "regex_message": draw(st.text(max_size=6)),
        "choices": draw(st.lists(st.sampled_from(["a", "b", "c", "eur", "1"]), min_size=1, max_size=3, unique=True)
                        .map(lambda vs: [{"value": v, "label": v.upper()} for v in vs])) if takes_choices else [],
        "visible_if": draw(st.one_of(st.none(), st.none(), st.fixed_dictionaries({
            "field": st.sampled_from([*others, "ghost"]), "equals": st.sampled_from(["a", "yes", "1", ""])}))),
        "section": draw(st.sampled_from(["", "Main", "More"])), "order": draw(st.integers(0, 5)),
    }


@st.composite
def plausible_definitions(draw):
    """Distinct names; conditions name an earlier field (or, now and then, none of them)."""
    chosen = draw(st.lists(st.sampled_from(GOOD_NAMES), min_size=1, max_size=5, unique=True))
    return [draw(plausible_fields(name, chosen[:i])) for i, name in enumerate(chosen)]


definitions = st.fixed_dictionaries({
    "format": st.just(1), "intro": st.text(max_size=10), "supports_dry_run": st.booleans(),
    "fields": st.one_of(plausible_definitions(), plausible_definitions(),
                        st.lists(st.one_of(plausible_fields(), wild_fields), max_size=4)),
})
def finite_bounds(schema):
    """Every number in the schema is finite (JSON has no infinity)."""
    return all(not (isinstance(v, float) and not math.isfinite(v))
               for prop in schema["properties"].values() for v in prop.values())


@settings(max_examples=1000, **SETTINGS)
@given(spec=definitions)
def test_checking_any_definition_never_fails_and_a_sound_one_builds(spec):
    problems = definition_problems(spec)
    assert isinstance(problems, dict)
    assert set(problems) <= set(range(len(spec["fields"])))
    assert all(isinstance(m, str) and m for messages in problems.values() for m in messages)
    if problems:
        return
    assert all(f["name"].isidentifier() for f in spec["fields"])
    form = form_class(spec)(prefix="p")
    assert list(form.fields) == [f["name"] for f in sorted(spec["fields"], key=lambda f: f["order"])]
    assert isinstance(form.as_div(), str)  # renders (the run page and the admin preview)
    schema = json_schema(spec)
    assert set(schema["properties"]) == {f["name"] for f in spec["fields"]}
    json.dumps(schema)
    if finite_bounds(schema):
        json.dumps(schema, allow_nan=False)  # what DRF's strict renderer needs


@settings(max_examples=300, **SETTINGS)
@given(spec=definitions)
def test_the_preview_of_any_builder_state_lists_problems_instead_of_failing(spec):
    """What the admin preview does: drop the unsound fields, render the rest."""
    problems = definition_problems(spec)
    sound = {**spec, "fields": [f for i, f in enumerate(spec["fields"]) if i not in problems]}
    names_ = [f["name"] for f in sound["fields"]]
    if len(set(names_)) != len(names_):
        return  # two fields both named alike are both unsound; nothing else can collide
    assert form_class(sound)(prefix="p").as_div() is not None


# --- values --------------------------------------------------------------------------------------------------------

ABC = [{"value": v, "label": v.upper()} for v in ("a", "b", "c")]
SOUND = {"intro": "", "supports_dry_run": True, "fields": [
    {"name": "text", "type": "text", "min": "1", "max": "20", "regex": r"[\w ]+", "regex_message": "words"},
    {"name": "long", "type": "long_text", "max": "200"},
    {"name": "count", "type": "integer", "min": "-5", "max": "1000000000000"},
    {"name": "amount", "type": "decimal", "min": "-1.5", "max": "1e30"},
    {"name": "flag", "type": "boolean"},
    {"name": "one", "type": "choice", "choices": ABC},
    {"name": "radio", "type": "radio", "choices": ABC},
    {"name": "many", "type": "multi_choice", "choices": ABC, "min": "1", "max": "2"},
    {"name": "day", "type": "date", "min": "2020-01-01", "max": "2030-12-31"},
    {"name": "at", "type": "datetime", "min": "2020-01-01T00:00", "max": "2030-12-31T00:00"},
    {"name": "mail", "type": "email"},
    {"name": "link", "type": "url"},
    {"name": "ref", "type": "uuid"},
    {"name": "payload", "type": "json"},
    {"name": "ids", "type": "id_list", "max": "5"},
    {"name": "rows", "type": "file", "max": "10"},
    {"name": "shown", "type": "integer", "required": True, "visible_if": {"field": "one", "equals": "b"}},
]}
for _order, _field in enumerate(SOUND["fields"]):
    _field.update(label=_field["name"], order=_order)
FIELDS = {f["name"]: f for f in SOUND["fields"]}
assert definition_problems(SOUND) == {}

TEXTS = ["", " ", "a", "a b", "x\x00y", "NaN", "inf", "-inf", "1e400", "0", "-1", "5", "1.5", "1,2,3", "1\n2", " 7 ",
         "true", "false", "no", "b", "2026-03-01", "2026-03-01T10:00", "2026-03-01T10:00+05:00", "1999-01-01",
         "a@b.example", "https://example.com", "12345678-1234-5678-1234-567812345678", '{"a": 1}', "[1, 2]",
         "null", "日本 😀", "$(rm -rf /)", "٣", "1" * 30]
texts = st.one_of(st.sampled_from(TEXTS), st.text(max_size=12))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-10 ** 400, 10 ** 400),
                    st.floats(), texts)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(texts, inner, max_size=3)), max_leaves=6)
finite_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30), st.floats(allow_nan=False,
                                                                                    allow_infinity=False), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)), max_leaves=6)


GOOD_VALUES = {
    "text": ["hello world", "x", "A_1 b"], "long": ["a\nb", "日本 😀 $(x)"], "count": [5, "7", -5, 10 ** 12],
    "amount": ["1.5", 2, "-1.5", "1e30"], "flag": [True, False, "true"], "one": ["a", "b", "c", ""],
    "radio": ["b"], "many": [["a"], ["b", "c"]], "day": ["2026-03-01", "2020-01-01"],
    "at": ["2026-03-01T10:00", "2026-03-01T10:00+05:00"], "mail": ["a@b.example"], "link": ["https://example.com"],
    "ref": ["12345678-1234-5678-1234-567812345678"], "payload": [{"a": [1, None]}, '"s"', 0],
    "ids": ["1,2,2", [3, 4], "5\n6"], "rows": [None], "shown": [3, "0"],
}


def value_for(name, wild=None):
    """A good value for the field, or any JSON-ish value."""
    good = GOOD_VALUES.get(name)
    if wild is None:
        wild = json_values
    return st.one_of(st.sampled_from(good), wild) if good else wild


params_strategy = st.lists(st.sampled_from([*FIELDS, "unknown", "Text", "params"]), max_size=8, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({key: value_for(key) for key in keys}))


def check_clean(params, cleaned):
    assert set(cleaned) <= set(FIELDS)
    assert cleaned.get("rows") is None  # a file comes as a file, never as a value
    assert set(params) <= set(FIELDS)  # names that are not fields are refused
    json.dumps(cleaned, allow_nan=False)
    for name, value in cleaned.items():
        kind = FIELDS[name]["type"]
        if kind in ("text", "long_text", "choice", "radio", "email", "url"):
            assert isinstance(value, str)
        if kind in ("text", "long_text"):
            assert "\x00" not in value
        if kind == "text" and value:
            assert 1 <= len(value) <= 20 and re.fullmatch(r"[\w ]+", value)
        elif kind == "integer" and value is not None:
            assert type(value) is int and -5 <= value <= 10 ** 12
        elif kind == "decimal" and value is not None:
            assert isinstance(value, str) and Decimal(value).is_finite()
            assert Decimal("-1.5") <= Decimal(value) <= 10 ** 30
        elif kind == "boolean":
            assert isinstance(value, bool)
        elif kind in ("choice", "radio"):
            assert value in ("", "a", "b", "c")
        elif kind == "multi_choice":
            assert set(value) <= {"a", "b", "c"} and len(value) <= 2
        elif kind == "date" and value is not None:
            assert datetime.date(2020, 1, 1) <= datetime.date.fromisoformat(value) <= datetime.date(2030, 12, 31)
        elif kind == "datetime" and value is not None:
            assert datetime.datetime.fromisoformat(value).tzinfo is not None
        elif kind == "uuid" and value is not None:
            assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value)
        elif kind == "id_list":
            assert all(type(i) is int and i >= 0 for i in value) and len(value) == len(set(value)) <= 5
    if cleaned.get("one") != "b":
        assert "shown" not in cleaned  # hidden: never passed
    else:
        assert type(cleaned["shown"]) is int  # shown: required


@settings(max_examples=1000, **SETTINGS)
@given(params=params_strategy)
def test_any_value_is_cleaned_into_json_or_refused(params):
    try:
        cleaned, files = validate_params(SOUND, params)
    except ValidationError as error:
        assert error.message_dict
        assert all(key == "params" or key.startswith("params.") for key in error.message_dict)
        return
    assert files == {}
    check_clean(params, cleaned)


@settings(max_examples=100, **SETTINGS)
@given(params=st.one_of(json_values, st.lists(json_values, max_size=2)))
def test_anything_but_an_object_is_refused(params):
    if isinstance(params, dict):
        return
    with pytest.raises(ValidationError):
        validate_params(SOUND, params)


# --- the same through the API, a few times ----------------------------------------------------------------------------

@pytest.fixture
def api(engineer):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(engineer, 't')[1]}")
    return client


@pytest.fixture
def prop(make_script):
    """Made once for all the examples of a test (hypothesis runs them inside one test's transaction)."""
    script = make_script("print(1)\n", slug="prop")
    import_definition(script, SOUND)
    return script


api_params = st.lists(st.sampled_from([*FIELDS, "unknown"]), max_size=6, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({key: value_for(key, finite_json) for key in keys}))


@pytest.mark.django_db
@settings(max_examples=40, **SETTINGS)
@given(params=api_params)
def test_any_value_through_the_api_is_a_run_or_a_400(api, prop, params):
    before = Run.objects.count()
    response = api.post("/api/runs/", {"script": "prop", "environment": "staging", "params": params}, format="json")
    assert response.status_code in (201, 400), response.content
    if response.status_code == 201:
        run = Run.objects.get(pk=response.json()["id"])
        check_clean(params, run.params)
        assert run.form_snapshot == spec_for(prop)
    else:
        assert Run.objects.count() == before
        assert set(response.json()) == {"params"}

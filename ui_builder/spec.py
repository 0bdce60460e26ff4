"""A form definition as plain data (the "spec"): what is exported, imported, snapshotted on runs,
previewed in the admin and turned into a Django form. Also: what makes a definition itself wrong."""

import datetime
import keyword
import re
from decimal import Decimal, InvalidOperation

from django.utils import timezone

from ui_builder.models import FieldType

SPEC_FORMAT = 1
T = FieldType
CHOICE_TYPES = {T.CHOICE, T.RADIO, T.MULTI_CHOICE}
LENGTH_TYPES = {T.TEXT, T.LONG_TEXT, T.EMAIL, T.URL}
REGEX_TYPES = {T.TEXT, T.LONG_TEXT}
COUNT_TYPES = {T.MULTI_CHOICE}
FIELD_KEYS = ["name", "label", "type", "help_text", "placeholder", "required", "default", "min", "max", "regex",
              "regex_message", "choices", "visible_if", "section", "order"]


def parse_choices(text):
    """'value | label' lines into [{"value", "label"}]; a line without a label is its own label."""
    choices = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        value, _, label = line.partition("|")
        choices.append({"value": value.strip(), "label": label.strip() or value.strip()})
    return choices


def choices_text(choices):
    return "\n".join(c["value"] if c["label"] == c["value"] else f"{c['value']} | {c['label']}" for c in choices)


def field_spec(field):
    """One FormField (saved or not) as data."""
    return {
        "name": field.name, "label": field.label or field.name, "type": field.type, "help_text": field.help_text,
        "placeholder": field.placeholder, "required": field.required, "default": field.default,
        "min": field.min, "max": field.max, "regex": field.regex, "regex_message": field.regex_message,
        "choices": parse_choices(field.choices),
        "visible_if": ({"field": field.visible_if_field, "equals": field.visible_if_value}
                       if field.visible_if_field else None),
        "section": field.section, "order": field.order,
    }


def definition_spec(definition, fields=None):
    """The whole definition as data; `fields` (unsaved FormField objects) replaces the stored ones."""
    fields = definition.fields.all() if fields is None else fields
    return {
        "format": SPEC_FORMAT, "intro": definition.intro, "supports_dry_run": definition.supports_dry_run,
        "fields": sorted((field_spec(f) for f in fields), key=lambda f: f["order"]),
    }


def field_kwargs(spec):
    """FormField attributes from one field's data (the import's inverse of field_spec)."""
    visible_if = spec.get("visible_if") or {}
    return {
        "name": spec["name"], "label": spec.get("label") or spec["name"], "type": spec["type"],
        "help_text": spec.get("help_text", ""), "placeholder": spec.get("placeholder", ""),
        "required": bool(spec.get("required", False)), "default": str(spec.get("default", "") or ""),
        "min": str(spec.get("min", "") or ""), "max": str(spec.get("max", "") or ""),
        "regex": spec.get("regex", ""), "regex_message": spec.get("regex_message", ""),
        "choices": choices_text(spec.get("choices") or []),
        "visible_if_field": visible_if.get("field", ""), "visible_if_value": str(visible_if.get("equals", "")),
        "section": spec.get("section", ""), "order": int(spec.get("order", 0) or 0),
    }


# --- what makes a definition wrong ------------------------------------------------------------------

def parse_bound(field_type, text):
    """A min or max as the value it bounds: a number, a date, or a length/count. ValueError if it is not."""
    if text in ("", None):
        return None
    text = str(text).strip()
    if field_type == T.INTEGER:
        return int(text)
    if field_type == T.DECIMAL:
        value = Decimal(text)
        if not value.is_finite():
            raise ValueError(text)
        return value
    if field_type == T.DATE:
        return datetime.date.fromisoformat(text)
    if field_type == T.DATETIME:
        moment = datetime.datetime.fromisoformat(text)  # without a zone: the service's time zone
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment)
    number = int(text)
    if number < 0:
        raise ValueError(text)
    return number


def bound_meaning(field_type):
    if field_type in (T.INTEGER, T.DECIMAL):
        return "a number"
    if field_type == T.DATE:
        return "a date (YYYY-MM-DD)"
    if field_type == T.DATETIME:
        return "a date and time (YYYY-MM-DDTHH:MM)"
    return "a whole number, 0 or more"


def field_problems(spec, names):
    """What is wrong with one field's own declaration (not its default), as messages."""
    problems = []
    name, field_type = spec.get("name", ""), spec.get("type")
    if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)):
        problems.append(f"“{name}” is not a valid name: use letters, digits and _, not starting with a digit.")
    if field_type not in T.values:
        problems.append(f"“{field_type}” is not a field type.")
        return problems
    bounds = {}
    for key in ("min", "max"):
        try:
            bounds[key] = parse_bound(field_type, spec.get(key))
        except (ValueError, InvalidOperation, TypeError):
            problems.append(f"{key} must be {bound_meaning(field_type)}.")
    if bounds.get("min") is not None and bounds.get("max") is not None and bounds["min"] > bounds["max"]:
        problems.append("min is greater than max.")
    if spec.get("regex"):
        if field_type not in REGEX_TYPES:
            problems.append("Only text fields take a regular expression.")
        else:
            try:
                re.compile(spec["regex"])
            except (re.error, RecursionError, OverflowError) as exc:
                problems.append(f"The regular expression is not valid: {exc}.")
    choices = spec.get("choices") or []
    if field_type in CHOICE_TYPES:
        values = [c["value"] for c in choices]
        if not values:
            problems.append("A choice field needs at least one choice.")
        if len(set(values)) != len(values):
            problems.append("Two choices have the same value.")
    elif choices:
        problems.append(f"A {T(field_type).label.lower()} field takes no choices.")
    visible_if = spec.get("visible_if")
    if visible_if:
        if visible_if.get("field") == name:
            problems.append("A field cannot depend on itself.")
        elif visible_if.get("field") not in names:
            problems.append(f"“Show only when” names a field that is not in this form: “{visible_if.get('field')}”.")
    return problems

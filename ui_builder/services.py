"""Forms of scripts: validating a run's parameters against them, and importing / exporting them."""

import math

from django.core.exceptions import ValidationError
from django.db import transaction

from ui_builder.forms import TRUE_WORDS, as_json, definition_problems, form_class, initial_value
from ui_builder.models import FormDefinition, FormField
from ui_builder.spec import SPEC_FORMAT, T, definition_spec, field_kwargs, field_spec


def spec_for(script):
    """The script's form as data, or None when it has none (parameters are then a free JSON object)."""
    definition = FormDefinition.objects.filter(script=script).prefetch_related("fields").first()
    return definition_spec(definition) if definition else None


def params_form(spec, data=None, files=None, prefix=None):
    return form_class(spec)(data=data, files=files, prefix=prefix)


def validate_params(spec, params, files=None):
    """The parameters as the script will get them, checked against the form `spec`.

    Raises ValidationError with one entry per field ("params.<name>"), including names that are
    not fields of the form. Fields hidden by their condition are dropped.
    """
    if not isinstance(params, dict):
        raise ValidationError({"params": "Parameters must be a JSON object."})
    params = dict(with_defaults(spec, params))
    errors = {}
    for field in spec["fields"]:
        if field["name"] in params:
            params[field["name"]], problem = json_value(field, params[field["name"]])
            if problem:
                errors[f"params.{field['name']}"] = [problem]
                del params[field["name"]]  # the field's own rules never see a value of the wrong kind
    form = params_form(spec, data=params, files=files)
    errors |= {f"params.{name}": ["Not a field of this form."] for name in params if name not in form.fields}
    if not form.is_valid():
        for name, messages in form.errors.items():
            errors.setdefault("params" if name == "__all__" else f"params.{name}", list(messages))
    if errors:
        raise ValidationError(errors)
    return form.params(), form.files_given()


TEXT_TYPES = {T.TEXT, T.LONG_TEXT, T.DATE, T.DATETIME, T.EMAIL, T.URL, T.UUID, T.CHOICE, T.RADIO}
FALSE_WORDS = {"false", "no", "off", "0", ""}


def json_value(field, value):
    """(value, problem): a JSON value checked for the kind its field takes, before the field's own rules.

    Forms expect text from a browser; JSON can carry numbers, lists and objects anywhere.
    """
    kind = field["type"]
    if value is None:
        return value, None
    if not finite(value):
        return value, "Numbers must be finite."
    if kind in TEXT_TYPES and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value), None  # {"tenant": 42} for a text field means "42"
    if kind in TEXT_TYPES and not isinstance(value, str):
        return value, "Enter text (a JSON string), not a list, object or true/false."
    if kind == T.INTEGER and isinstance(value, float) and value.is_integer():
        return int(value), None
    if kind == T.INTEGER and (isinstance(value, bool) or not isinstance(value, int | str)):
        return value, "Enter a whole number."
    if kind == T.DECIMAL and (isinstance(value, bool) or not isinstance(value, int | float | str)):
        return value, "Enter a number."
    if kind == T.BOOLEAN:
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS, None
        return value, "Enter true or false."
    if kind == T.MULTI_CHOICE and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return value, "Enter a list of values."
    if kind == T.ID_LIST and not isinstance(value, list | str):
        return value, "Enter a list of ids, or text with one per line."
    if kind == T.FILE:
        return value, "Upload the file (multipart/form-data), not a value."
    return value, None


def finite(value):
    """No NaN or infinity anywhere in the value (JSON and the database cannot hold them)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(finite(v) for v in value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    return True


def with_defaults(spec, params):
    """A field left out takes its default, as the form page would have shown it filled in."""
    defaults = {f["name"]: as_json(initial_value(f)) for f in spec["fields"]
                if f.get("default") not in ("", None) and f["type"] != "file"}
    return {**{k: v for k, v in defaults.items() if k not in params}, **params}


def export_definition(definition):
    return {**definition_spec(definition), "script": definition.script.slug}


def import_definition(script, data):
    """Replace the script's form with `data` (an export), all or nothing; the reasons when it is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("fields"), list):
        raise ValidationError('A form definition is a JSON object with a "fields" list.')
    if data.get("format", SPEC_FORMAT) != SPEC_FORMAT:
        raise ValidationError(f"Unknown format {data.get('format')!r}: this version reads format {SPEC_FORMAT}.")
    try:
        fields = [field_kwargs(f) for f in data["fields"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValidationError(f"A field lacks its name or type, or has a value of the wrong kind ({exc}).") from exc
    spec = {"fields": [field_spec(FormField(**f)) for f in fields]}
    problems = definition_problems(spec)
    if problems:
        raise ValidationError([f"{fields[i]['name']}: {message}" for i, messages in problems.items()
                               for message in messages])
    with transaction.atomic():
        definition, _ = FormDefinition.objects.update_or_create(script=script, defaults={
            "intro": str(data.get("intro", "")), "supports_dry_run": bool(data.get("supports_dry_run", False)),
        })
        definition.fields.all().delete()
        FormField.objects.bulk_create(FormField(definition=definition, **f) for f in fields)
    return definition


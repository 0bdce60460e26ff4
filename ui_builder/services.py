"""Forms of scripts: validating a run's parameters against them, and importing / exporting them."""

from django.core.exceptions import ValidationError
from django.db import transaction

from ui_builder.forms import as_json, definition_problems, form_class, initial_value
from ui_builder.models import FormDefinition, FormField
from ui_builder.spec import SPEC_FORMAT, definition_spec, field_kwargs, field_spec


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
    params = with_defaults(spec, params)
    form = params_form(spec, data=params, files=files)
    errors = {f"params.{name}": ["Not a field of this form."] for name in params if name not in form.fields}
    if not form.is_valid():
        for name, messages in form.errors.items():
            errors["params" if name == "__all__" else f"params.{name}"] = list(messages)
    if errors:
        raise ValidationError(errors)
    return form.params(), form.files_given()


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


"""The one function that turns a definition (its spec) into a Django form, and what follows from it:
the values as JSON for the script, the JSON Schema for the API, and the definition's own checks."""

import datetime
import math
import re
import uuid
from decimal import Decimal

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

from ui_builder.spec import CHOICE_TYPES, T, field_problems, parse_bound

ID_SEPARATORS = re.compile(r"[\s,;]+")
TRUE_WORDS = {"true", "yes", "on", "1"}


class IdListField(forms.Field):
    """Ids one per line or separated by commas (or a JSON list): whole numbers, deduplicated in order."""

    widget = forms.Textarea(attrs={"rows": 4})
    default_error_messages = {"invalid": "“%(value)s” is not an id: ids are whole numbers.",
                              "too_many": "At most %(max)s ids (this list has %(count)s)."}

    def __init__(self, *, max_count=None, **kwargs):
        self.max_count = max_count
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return []
        items = value if isinstance(value, list) else [i for i in ID_SEPARATORS.split(str(value).strip()) if i]
        ids = []
        for item in items:
            whole = isinstance(item, int) and not isinstance(item, bool) and item >= 0
            if not (whole or (isinstance(item, str) and item.isascii() and item.isdecimal())):
                raise ValidationError(self.error_messages["invalid"], code="invalid",
                                      params={"value": str(item)[:50]})
            number = int(item)
            if number not in ids:
                ids.append(number)
        return ids

    def validate(self, value):
        super().validate(value)
        if self.max_count is not None and len(value) > self.max_count:
            raise ValidationError(self.error_messages["too_many"], code="too_many",
                                  params={"max": self.max_count, "count": len(value)})


class FullMatch:
    """The whole value must match the pattern (as written, flags like (?i) included)."""

    def __init__(self, pattern, message):
        self.pattern = re.compile(pattern)
        self.message = message

    def __call__(self, value):
        if not self.pattern.fullmatch(str(value)):
            raise ValidationError(self.message, code="invalid")


class CountedMultipleChoiceField(forms.MultipleChoiceField):
    """Several choices, with the fewest and most picks checked even when none is picked."""

    def __init__(self, *, fewest=None, most=None, **kwargs):
        self.fewest, self.most = fewest, most
        super().__init__(**kwargs)

    def validate(self, value):
        super().validate(value)
        if self.fewest is not None and len(value) < self.fewest:
            raise ValidationError(f"Pick at least {self.fewest}.")
        if self.most is not None and len(value) > self.most:
            raise ValidationError(f"Pick at most {self.most}.")


def file_size_cap(max_kb):
    cap = min(max_kb * 1024, settings.BACKFILL_MAX_UPLOAD_BYTES) if max_kb else settings.BACKFILL_MAX_UPLOAD_BYTES

    def check(upload):
        if upload is not None and upload.size > cap:
            raise ValidationError(f"The file is {upload.size:,} bytes; at most {cap:,} are allowed.")

    return check


def build_field(spec):
    """The Django form field for one sound field spec."""
    field_type = T(spec["type"])
    low, high = parse_bound(field_type, spec.get("min")), parse_bound(field_type, spec.get("max"))
    common = {"label": spec.get("label") or spec["name"], "help_text": spec.get("help_text", ""),
              "required": bool(spec.get("required")) and not spec.get("visible_if")}
    placeholder = {"placeholder": spec["placeholder"]} if spec.get("placeholder") else {}
    choices = [(c["value"], c["label"]) for c in spec.get("choices") or []]
    lengths = {"min_length": low, "max_length": high} if field_type in (T.TEXT, T.LONG_TEXT, T.EMAIL, T.URL) else {}
    bounds = ([MinValueValidator(low)] if low is not None else []) + (
        [MaxValueValidator(high)] if high is not None else [])
    regex = [FullMatch(spec["regex"], spec.get("regex_message") or "Enter a value in the expected format.")
             ] if spec.get("regex") else []

    if field_type == T.TEXT:
        return forms.CharField(strip=False, validators=regex, widget=forms.TextInput(placeholder), **lengths, **common)
    if field_type == T.LONG_TEXT:
        return forms.CharField(strip=False, validators=regex, widget=forms.Textarea({"rows": 4, **placeholder}),
                               **lengths, **common)
    if field_type == T.INTEGER:
        return forms.IntegerField(min_value=low, max_value=high, widget=forms.NumberInput(placeholder), **common)
    if field_type == T.DECIMAL:
        return forms.DecimalField(min_value=low, max_value=high,
                                  widget=forms.NumberInput({"step": "any", **placeholder}), **common)
    if field_type == T.BOOLEAN:
        return forms.BooleanField(**common)
    if field_type == T.CHOICE:
        return forms.ChoiceField(choices=[("", "—")] + choices, **common)
    if field_type == T.RADIO:
        return forms.ChoiceField(choices=choices, widget=forms.RadioSelect, **common)
    if field_type == T.MULTI_CHOICE:
        return CountedMultipleChoiceField(choices=choices, widget=forms.CheckboxSelectMultiple, fewest=low, most=high,
                                          **common)
    if field_type == T.DATE:
        return forms.DateField(widget=forms.DateInput({"type": "date"}, format="%Y-%m-%d"), validators=bounds,
                               **common)
    if field_type == T.DATETIME:
        return forms.DateTimeField(widget=forms.DateTimeInput({"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
                                   validators=bounds, **common)
    if field_type == T.EMAIL:
        return forms.EmailField(widget=forms.EmailInput(placeholder), **lengths, **common)
    if field_type == T.URL:
        return forms.URLField(widget=forms.URLInput(placeholder), **lengths, **common)
    if field_type == T.UUID:
        return forms.UUIDField(widget=forms.TextInput(placeholder), **common)
    if field_type == T.JSON:
        return forms.JSONField(widget=forms.Textarea({"rows": 4, "class": "mono", **placeholder}), **common)
    if field_type == T.ID_LIST:
        return IdListField(max_count=high, widget=forms.Textarea({"rows": 4, **placeholder}), **common)
    return forms.FileField(validators=[file_size_cap(high)],
                           widget=forms.ClearableFileInput({"accept": ".csv,text/csv"}), **common)


def initial_value(spec):
    """The default as the form shows it at first."""
    default = spec.get("default")
    if default in ("", None):
        return None
    if spec["type"] == T.BOOLEAN:
        return str(default).strip().lower() in TRUE_WORDS
    if spec["type"] == T.MULTI_CHOICE:
        return [line.strip() for line in str(default).splitlines() if line.strip()]
    return default


def default_problem(spec):
    """Why the field's default fails the field's own rules, or None."""
    field = build_field({**spec, "visible_if": None})
    try:
        if spec["type"] == T.FILE:
            return "a file field has no default."
        field.clean(initial_value(spec))
    except ValidationError as error:
        return " ".join(error.messages)
    return None


def definition_problems(spec):
    """{field index: [messages]} for every field that is wrong; {} when the definition is sound."""
    fields = spec.get("fields") or []
    names = [f.get("name") for f in fields]
    problems = {}
    for index, field in enumerate(fields):
        found = field_problems(field, set(names))
        if names.count(field.get("name")) > 1:
            found.append(f"Another field is also named “{field.get('name')}”: names must be unique.")
        if not found and field.get("default") not in ("", None):
            problem = default_problem(field)
            if problem:
                found.append(f"The default does not pass this field's own rules: {problem}")
        if found:
            problems[index] = found
    return problems


def typed_default(spec):
    """The default as the JSON value the API would take (5, not "5")."""
    try:
        return as_json(build_field({**spec, "visible_if": None, "required": False}).clean(initial_value(spec)))
    except ValidationError:
        return initial_value(spec)


def shown(value, expected):
    """Whether a controlling field's value equals a `visible_if` value (compared as the form shows it)."""
    if isinstance(value, bool):
        return value == (str(expected).strip().lower() in TRUE_WORDS)
    if isinstance(value, list):
        return str(expected) in [str(v) for v in value]
    return ("" if value is None else str(value)) == str(expected)


class DefinedForm(forms.Form):
    """A form built from a spec. Fields hidden by `visible_if` are neither required nor passed."""

    spec = None

    def visible_names(self):
        values = self.cleaned_data
        visible = set()
        for field in self.spec["fields"]:  # in order, so a condition on a hidden field hides too
            condition = field.get("visible_if")
            if not condition or (condition["field"] in visible and shown(values.get(condition["field"]),
                                                                          condition["equals"])):
                visible.add(field["name"])
        return visible

    def clean(self):
        cleaned = super().clean()
        visible = self.visible_names()
        for field in self.spec["fields"]:
            name = field["name"]
            if name not in visible:
                self.errors.pop(name, None)
                cleaned.pop(name, None)
            elif (field.get("visible_if") and field.get("required") and name not in self.errors
                  and cleaned.get(name) in (None, "", [], {})):
                self.add_error(name, "This field is required.")
        return cleaned

    def params(self):
        """The cleaned values as JSON for the script (files are left to the caller)."""
        return {name: as_json(value) for name, value in self.cleaned_data.items()
                if not hasattr(value, "read")}

    def files_given(self):
        return {name: value for name, value in self.cleaned_data.items() if hasattr(value, "read")}


def as_json(value):
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value


def form_class(spec):
    """The one function that turns a definition into a Django Form class."""
    ordered = sorted(spec.get("fields") or [], key=lambda f: f.get("order", 0))
    fields = {}
    for field in ordered:
        fields[field["name"]] = build_field(field)
        fields[field["name"]].initial = initial_value(field)
    return type("DefinedForm", (DefinedForm,), {**fields, "spec": {**spec, "fields": ordered}})


def sections(form):
    """The form's bound fields grouped by section, in order: [(section, [(bound field, spec)])]."""
    groups = []
    for field in form.spec["fields"]:
        if not groups or groups[-1][0] != field.get("section", ""):
            groups.append((field.get("section", ""), []))
        groups[-1][1].append((form[field["name"]], field))
    return groups


JSON_TYPES = {
    T.TEXT: {"type": "string"}, T.LONG_TEXT: {"type": "string"}, T.INTEGER: {"type": "integer"},
    T.DECIMAL: {"type": ["number", "string"], "format": "decimal"}, T.BOOLEAN: {"type": "boolean"},
    T.DATE: {"type": "string", "format": "date"}, T.DATETIME: {"type": "string", "format": "date-time"},
    T.EMAIL: {"type": "string", "format": "email"}, T.URL: {"type": "string", "format": "uri"},
    T.UUID: {"type": "string", "format": "uuid"}, T.JSON: {},
    T.ID_LIST: {"type": "array", "items": {"type": "integer", "minimum": 0}, "uniqueItems": True},
    T.FILE: {"type": "string", "format": "binary"},
}


def json_schema(spec):
    """The definition as JSON Schema (draft 2020-12), with `x-visible-if` and `x-section` where set."""
    properties, required = {}, []
    for field in sorted(spec.get("fields") or [], key=lambda f: f.get("order", 0)):
        field_type = T(field["type"])
        low, high = parse_bound(field_type, field.get("min")), parse_bound(field_type, field.get("max"))
        schema = {"title": field.get("label") or field["name"]}
        if field_type in CHOICE_TYPES:
            values = [c["value"] for c in field["choices"]]
            schema |= ({"type": "array", "items": {"enum": values}, "uniqueItems": True}
                       if field_type == T.MULTI_CHOICE else {"type": "string", "enum": values})
        else:
            schema |= JSON_TYPES[field_type]
        schema |= bound_keywords(field_type, low, high)
        if field.get("regex") and not field["regex"].startswith("(?"):
            schema["pattern"] = rf"^(?:{field['regex']})$"
        if field.get("help_text"):
            schema["description"] = field["help_text"]
        if field.get("default") not in ("", None):
            schema["default"] = typed_default(field)
        if field.get("visible_if"):
            schema["x-visible-if"] = field["visible_if"]
        if field.get("section"):
            schema["x-section"] = field["section"]
        properties[field["name"]] = schema
        if field.get("required") and not field.get("visible_if"):
            required.append(field["name"])
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "properties": properties, "required": required, "additionalProperties": False}


def bound_keywords(field_type, low, high):
    keys = {T.INTEGER: ("minimum", "maximum"), T.DECIMAL: ("minimum", "maximum"),
            T.MULTI_CHOICE: ("minItems", "maxItems"), T.ID_LIST: (None, "maxItems"),
            T.DATE: ("formatMinimum", "formatMaximum"), T.DATETIME: ("formatMinimum", "formatMaximum")}
    low_key, high_key = keys.get(field_type, ("minLength", "maxLength") if field_type in
                                 (T.TEXT, T.LONG_TEXT, T.EMAIL, T.URL) else (None, None))
    if field_type == T.FILE:
        low_key, high_key = None, None
    out = {}
    for key, value in ((low_key, low), (high_key, high)):
        if key and value is not None:
            if isinstance(value, Decimal):
                if not math.isfinite(float(value)):
                    continue  # beyond what a JSON number holds: the server still checks it
                value = float(value)
            out[key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out

"""A script's form, declared (no code): fields with types, limits, choices, conditions and sections."""

from django.db import models

from scripts_app.models import Script


class FieldType(models.TextChoices):
    TEXT = "text", "Text"
    LONG_TEXT = "long_text", "Long text"
    INTEGER = "integer", "Whole number"
    DECIMAL = "decimal", "Decimal number"
    BOOLEAN = "boolean", "Yes / no"
    CHOICE = "choice", "One choice (dropdown)"
    RADIO = "radio", "One choice (radio buttons)"
    MULTI_CHOICE = "multi_choice", "Several choices"
    DATE = "date", "Date"
    DATETIME = "datetime", "Date and time"
    EMAIL = "email", "Email address"
    URL = "url", "URL"
    UUID = "uuid", "UUID"
    JSON = "json", "JSON"
    ID_LIST = "id_list", "List of ids"
    FILE = "file", "File upload (CSV)"


class FormDefinition(models.Model):
    """The form ops staff fill to run one script."""

    script = models.OneToOneField(Script, on_delete=models.CASCADE, related_name="form_definition")
    intro = models.TextField(blank=True, help_text="What this tool does, in plain words, shown above the form.")
    supports_dry_run = models.BooleanField(
        default=False, help_text="The script honours BACKFILL_DRY_RUN: offer a dry-run switch.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"Form of {self.script}"


class FormField(models.Model):
    definition = models.ForeignKey(FormDefinition, on_delete=models.CASCADE, related_name="fields")
    name = models.CharField(max_length=60, help_text="How the script receives it (a Python identifier).")
    label = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=FieldType.choices, default=FieldType.TEXT)
    help_text = models.CharField(max_length=500, blank=True)
    placeholder = models.CharField(max_length=200, blank=True)
    required = models.BooleanField(default=False)
    default = models.TextField(blank=True, help_text="As typed in the form (several choices: one per line).")
    min = models.CharField(max_length=100, blank=True,
                           help_text="Numbers and dates: the lowest value; text: the shortest length; "
                                     "several choices: the fewest picks.")
    max = models.CharField(max_length=100, blank=True,
                           help_text="Numbers and dates: the highest value; text: the longest length; several "
                                     "choices: the most picks; ids: the most ids; file: the largest size in KB.")
    regex = models.CharField(max_length=500, blank=True, help_text="Text must match this regular expression.")
    regex_message = models.CharField(max_length=300, blank=True, help_text="Shown when the text does not match.")
    choices = models.TextField(blank=True, help_text="One per line: value | label (the label is optional).")
    visible_if_field = models.CharField(max_length=60, blank=True, help_text="Show only when this field ...")
    visible_if_value = models.CharField(max_length=200, blank=True, help_text="... has this value.")
    section = models.CharField(max_length=100, blank=True, help_text="Fields with the same section are grouped.")
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        constraints = [models.UniqueConstraint(fields=["definition", "name"], name="one_field_name_per_form")]

    def __str__(self):
        return self.name

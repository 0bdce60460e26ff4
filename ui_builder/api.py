from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scripts_app.api import ScriptDetail, ScriptDetailSerializer
from ui_builder.forms import json_schema
from ui_builder.services import spec_for


class ScriptWithFormSerializer(ScriptDetailSerializer):
    form = serializers.SerializerMethodField(help_text="The script's form, or null when it takes a free JSON object.")

    class Meta(ScriptDetailSerializer.Meta):
        fields = [*ScriptDetailSerializer.Meta.fields, "form"]

    @extend_schema_field({"type": "object", "nullable": True, "properties": {
        "intro": {"type": "string"}, "supports_dry_run": {"type": "boolean"},
        "params_schema": {"type": "object", "description": "JSON Schema of `params` in POST /api/runs/"}}})
    def get_form(self, script):
        spec = spec_for(script)
        if spec is None:
            return None
        return {"intro": spec["intro"], "supports_dry_run": spec["supports_dry_run"],
                "params_schema": json_schema(spec)}


class ScriptWithForm(ScriptDetail):
    """A script you may see, with its code and, where it has one, its form as JSON Schema."""

    serializer_class = ScriptWithFormSerializer

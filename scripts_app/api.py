from django.shortcuts import get_object_or_404
from rest_framework import generics, serializers

from scripts_app.models import Environment, Script
from scripts_app.policy import environments_usable_by
from scripts_app.services import search_scripts


class EnvironmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Environment
        fields = ["slug", "name"]


class ScriptSerializer(serializers.ModelSerializer):
    owner_team = serializers.CharField(source="owner_team.name", default=None)
    allowed_environments = serializers.SlugRelatedField(many=True, read_only=True, slug_field="slug")
    current_version = serializers.IntegerField(source="current_version.number", default=None)

    class Meta:
        model = Script
        fields = ["slug", "name", "description", "language", "owner_team", "allowed_environments",
                  "timeout_seconds", "current_version"]


class ScriptDetailSerializer(ScriptSerializer):
    sha256 = serializers.CharField(source="current_version.sha256", default=None)
    source = serializers.CharField(source="current_version.source", default=None)
    environments_you_may_use = serializers.SerializerMethodField()

    class Meta(ScriptSerializer.Meta):
        fields = [*ScriptSerializer.Meta.fields, "sha256", "source", "environments_you_may_use"]

    def get_environments_you_may_use(self, script) -> list[str]:
        return list(environments_usable_by(self.context["request"].user, script).values_list("slug", flat=True))


class ScriptList(generics.ListAPIView):
    """The scripts you may see (`?q=` searches name, slug and description)."""

    serializer_class = ScriptSerializer

    def get_queryset(self):
        return search_scripts(self.request.user, self.request.query_params.get("q", "").strip())


class ScriptDetail(generics.RetrieveAPIView):
    serializer_class = ScriptDetailSerializer
    lookup_field = "slug"

    def get_object(self):
        scripts = search_scripts(self.request.user).select_related("current_version")
        return get_object_or_404(scripts, slug=self.kwargs["slug"])

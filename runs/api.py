import contextlib
import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from runs import services
from runs.models import Run
from scripts_app.models import Environment
from scripts_app.policy import scripts_visible_to

LOG_PAGE_LIMIT = 100  # chunks of up to 64 KiB each


class RunSerializer(serializers.ModelSerializer):
    script = serializers.SlugRelatedField(read_only=True, slug_field="slug")
    environment = serializers.SlugRelatedField(read_only=True, slug_field="slug")
    version = serializers.IntegerField(source="version.number")
    requested_by = serializers.CharField(source="requested_by.username")
    finished = serializers.BooleanField(source="is_finished")

    class Meta:
        model = Run
        fields = ["id", "script", "version", "environment", "params", "dry_run", "reason", "requested_by", "status",
                  "status_detail", "finished", "exit_code", "created_at", "started_at", "finished_at",
                  "output_bytes", "output_truncated", "resumed_from", "checkpoint", "checkpoint_at",
                  "progress_done", "progress_total", "progress_rate", "paused", "pause_reason", "batch_size",
                  "sleep_seconds"]


class RunRequestSerializer(serializers.Serializer):
    script = serializers.SlugField(help_text="The script's slug.")
    environment = serializers.SlugField(help_text="The environment's slug.")
    params = serializers.DictField(required=False, default=dict, help_text="A JSON object of parameters.")
    dry_run = serializers.BooleanField(required=False, default=False)
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000,
                                   help_text="Why you run it; needed where runs wait for approval.")

    def validate_script(self, slug):
        script = scripts_visible_to(self.context["request"].user).select_related("current_version")
        script = script.filter(slug=slug).first()
        if script is None:
            raise serializers.ValidationError(f"No script '{slug}' that you may see.")
        return script

    def validate_environment(self, slug):
        environment = Environment.objects.filter(slug=slug).first()
        if environment is None:
            raise serializers.ValidationError(f"No environment '{slug}'.")
        return environment


class LogSerializer(serializers.Serializer):
    chunks = serializers.ListField(child=serializers.DictField())
    next_after = serializers.IntegerField()
    status = serializers.CharField()
    finished = serializers.BooleanField()


def visible_run(request, run_id):
    run = services.visible_run_or_none(request.user, run_id)
    if run is None:
        raise Http404
    return run


def nested_errors(message_dict):
    """{"params.start": [...]} as {"params": {"start": [...]}}: a message per field of the script's form."""
    errors = {}
    for key, messages in message_dict.items():
        top, _, field = key.partition(".")
        if field:
            if not isinstance(errors.get(top), dict):
                errors[top] = {"__all__": errors[top]} if top in errors else {}
            errors[top][field] = messages
        elif isinstance(errors.get(top), dict):
            errors[top]["__all__"] = messages
        else:
            errors[top] = messages
    return errors


def request_data(request):
    """The JSON body, or a multipart one (for forms with a file field) whose `params` is JSON text."""
    if not request.content_type.startswith("multipart/"):
        return request.data, None
    data = {key: request.data.get(key) for key in ("script", "environment", "dry_run", "reason")
            if key in request.data}
    try:
        data["params"] = json.loads(request.data.get("params") or "{}")
    except ValueError:
        raise ApiValidationError({"params": "In a multipart request, params is a JSON object as text."}) from None
    return data, request.FILES


@contextlib.contextmanager
def service_errors():
    """A service's refusal as the API's: 403 for PermissionDenied, 400 with messages per field otherwise."""
    try:
        yield
    except PermissionDenied as exc:
        raise ApiPermissionDenied(str(exc)) from exc
    except ValidationError as exc:
        raise ApiValidationError(nested_errors(exc.message_dict)) from exc


class RunCreate(APIView):
    @extend_schema(request=RunRequestSerializer, responses={201: RunSerializer})
    def post(self, request):
        """Start a run. Where the script has a form, `params` is validated against it (see the script's
        `form.params_schema`); a form with a file field takes multipart/form-data, `params` as JSON text and
        each file as a part named after its field."""
        body, files = request_data(request)
        data = RunRequestSerializer(data=body, context={"request": request})
        data.is_valid(raise_exception=True)
        with service_errors():
            run = services.request_run(request.user, files=files, **data.validated_data)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class ControlsSerializer(serializers.Serializer):
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000,
                                          help_text="Rows per batch, from the next batch on.")
    sleep_seconds = serializers.FloatField(required=False, min_value=0, max_value=3600,
                                           help_text="Pause between batches, in seconds.")


def changed_controls(request, run, **changes):
    with service_errors():
        return services.set_controls(run, request.user, **changes)


class RunDetail(APIView):
    @extend_schema(responses=RunSerializer)
    def get(self, request, run_id):
        return Response(RunSerializer(visible_run(request, run_id)).data)

    @extend_schema(request=ControlsSerializer, responses=RunSerializer)
    def patch(self, request, run_id):
        """Change a running backfill's batch size or sleep between batches (it applies them from the next batch)."""
        run = visible_run(request, run_id)
        data = ControlsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(RunSerializer(changed_controls(request, run, **data.validated_data)).data)


class RunPause(APIView):
    paused = True

    @extend_schema(request=None, responses=RunSerializer)
    def post(self, request, run_id):
        """Pause (or resume) a running backfill at its next batch boundary."""
        run = changed_controls(request, visible_run(request, run_id), paused=self.paused)
        return Response(RunSerializer(run).data)


class RunUnpause(RunPause):
    paused = False


class RunResumeFromCheckpoint(APIView):
    @extend_schema(request=None, responses={201: RunSerializer})
    def post(self, request, run_id):
        """Start a new run from this (failed, cancelled, timed out or lost) run's last checkpoint."""
        with service_errors():
            run = services.resume_run(visible_run(request, run_id), request.user)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class RunLog(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="Return chunks with a sequence number above this.")],
        responses=LogSerializer,
    )
    def get(self, request, run_id):
        run = visible_run(request, run_id)
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            raise ApiValidationError({"after": "Must be a whole number (a chunk's sequence number)."}) from None
        chunks = services.chunks_after(run.pk, max(after, 0), LOG_PAGE_LIMIT)
        return Response({
            "chunks": chunks, "next_after": chunks[-1]["seq"] if chunks else max(after, 0),
            "status": run.status, "finished": run.is_finished,
        })


class RunCancel(APIView):
    @extend_schema(request=None, responses=RunSerializer)
    def post(self, request, run_id):
        with service_errors():
            run = services.cancel_run(visible_run(request, run_id), request.user)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

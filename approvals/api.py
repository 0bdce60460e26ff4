from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException
from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals import services
from approvals.models import ApprovalRequest
from scripts_app.api_auth import ApiTokenAuthentication


class Conflict(APIException):
    status_code = 409
    default_code = "conflict"


class ApprovalSerializer(serializers.ModelSerializer):
    run = serializers.IntegerField(source="run_id")
    script = serializers.CharField(source="run.script.slug")
    environment = serializers.CharField(source="run.environment.slug")
    version = serializers.IntegerField(source="run.version.number")
    params = serializers.JSONField(source="run.params")
    dry_run = serializers.BooleanField(source="run.dry_run")
    requested_by = serializers.CharField(source="run.requested_by.username")
    reason = serializers.CharField(source="run.reason")
    approver_team = serializers.CharField(source="approver_team.name", default=None)
    approvals_given = serializers.SerializerMethodField()

    class Meta:
        model = ApprovalRequest
        fields = ["id", "status", "run", "script", "environment", "version", "params", "dry_run", "requested_by",
                  "reason", "approvals_needed", "approvals_given", "approver_team", "created_at", "expires_at"]

    def get_approvals_given(self, request) -> int:
        given = getattr(request, "approvals_given", None)
        return given if given is not None else request.decisions.filter(approved=True).count()


class DecisionSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, default="", allow_blank=True,
                                    max_length=services.COMMENT_MAX_LENGTH)


class ApprovalList(APIView):
    @extend_schema(responses=ApprovalSerializer(many=True))
    def get(self, request):
        """The requests waiting for your decision."""
        return Response(ApprovalSerializer(services.pending_for(request.user), many=True).data)


class Decide(APIView):
    """With an API token only: a browser session decides on the approval page, which asks it to
    confirm its password first."""

    approved = True

    @extend_schema(request=DecisionSerializer, responses=ApprovalSerializer)
    def post(self, request, request_id):
        if not isinstance(request.successful_authenticator, ApiTokenAuthentication):
            raise ApiPermissionDenied("Decide with an API token, or on the approval page in the browser.")
        approval = ApprovalRequest.objects.select_related("run").filter(pk=request_id).first()
        if approval is None or not services.can_see_request(request.user, approval):
            raise Http404
        data = DecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            approval = services.decide(approval.pk, request.user, self.approved, data.validated_data["comment"])
        except services.ApprovalRefused as refused:
            raise (Conflict(str(refused)) if refused.conflict else ApiPermissionDenied(str(refused))) from refused
        approval.refresh_from_db()
        return Response(ApprovalSerializer(approval).data)


class Approve(Decide):
    approved = True


class Reject(Decide):
    approved = False

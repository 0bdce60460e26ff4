from django.contrib import admin

from approvals.models import ApprovalDecision, ApprovalRequest
from audit.admin import ReadOnlyAdmin
from runs.services import runs_visible_to


class DecisionInline(admin.TabularInline):
    model = ApprovalDecision
    fields = ["approver", "approved", "comment", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    """Decisions are taken on the approval page (by POST, with reauthentication), never here."""

    list_display = ["id", "run", "status", "approvals_needed", "approver_team", "created_at", "expires_at",
                    "closed_at"]
    list_filter = ["status", "run__environment"]
    search_fields = ["=run__id", "run__script__name", "run__requested_by__username"]
    list_select_related = ["run__script", "run__environment", "approver_team"]
    readonly_fields = ["run", "status", "approvals_needed", "approver_team", "created_at", "expires_at", "closed_at"]
    inlines = [DecisionInline]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(run__in=runs_visible_to(request.user).values("pk"))

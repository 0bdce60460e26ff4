from django.contrib import admin

from audit.admin import ReadOnlyAdmin
from runs.models import Delivery, LogChunk, Run, Webhook
from runs.services import runs_visible_to


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["id", "script", "environment", "status", "requested_by", "created_at", "started_at",
                    "finished_at", "exit_code", "output_bytes"]
    list_filter = ["status", "environment", "dry_run"]
    search_fields = ["=id", "script__name", "script__slug", "requested_by__username", "status_detail"]
    list_select_related = ["script", "environment", "requested_by"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_queryset(self, request):
        return runs_visible_to(request.user).select_related(*self.list_select_related)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LogChunk)
class LogChunkAdmin(ReadOnlyAdmin):
    list_display = ["run", "seq", "created_at"]
    list_select_related = ["run__script", "run__environment"]
    search_fields = ["=run__id"]
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(run__in=runs_visible_to(request.user).values("pk"))


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "url", "script", "environment", "only_failures", "active"]
    list_filter = ["kind", "active", "environment"]
    search_fields = ["name", "url"]
    readonly_fields = ["signing_secret"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if request.user.is_superuser else []

    def get_fields(self, request, obj=None):
        fields = [f for f in super().get_fields(request, obj) if f != "signing_secret"]
        return [*fields, "signing_secret"] if request.user.is_superuser else fields

    @admin.display(description="Signing secret (give it to the receiver of a JSON webhook; superusers only)")
    def signing_secret(self, hook):
        return hook.secret if hook.pk else "Made when the webhook is saved."


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """Every email and webhook about ended runs, with each attempt and its answer."""

    list_display = ["id", "run", "email", "webhook", "status", "attempts", "next_attempt_at", "sent_at"]
    list_filter = ["status", "webhook"]
    search_fields = ["=run__id", "email"]
    list_select_related = ["run__script", "run__environment", "webhook"]
    readonly_fields = ["run", "email", "webhook", "status", "attempts", "next_attempt_at", "attempt_log",
                       "created_at", "sent_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(run__in=runs_visible_to(request.user).values("pk"))
